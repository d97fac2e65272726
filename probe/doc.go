// Package probe is the probing engine shared by gping, gtrace and Go programs that import this
// module: one ICMP socket per address family, one reader goroutine per socket, and a table of
// pending probes in which every reply is matched exactly once to the probe that caused it.
//
// # Use
//
// Create one Engine per process and share it: every raw ICMP socket receives every ICMP packet on
// the host, so an engine per target would make N engines parse N² packets. The Engine is safe for
// concurrent use; Reachable, Ping and Send may be called from any number of goroutines at once.
//
//	e := probe.New(nil) // nil: automatic socket choice, defaults everywhere
//	defer e.Close()
//	sum, err := e.Ping(ctx, netip.MustParseAddr("127.0.0.1"), &probe.PingConfig{Count: 3})
//
// Sweep probes many targets as fping does, each paced by SweepConfig.Period or, in throughput
// mode (SweepConfig.Window), kept at a number of probes in flight that its answers refill; for a
// Count of probes, or until its context ends (SweepConfig.Loop).
//
// One raw socket sends on one core at a time (the kernel locks it for each send). A program that
// must send faster than that sets Config.Senders: the engine then opens send-only raw sockets
// beside each reading one, which take in no packet at all, and StartBatch and Sweep send on them
// from several goroutines at once.
//
// # Matching
//
// Echo requests carry the engine's random 64-bit token and a 64-bit sequence in their payload
// (see icmp.AppendPayload). A reply is matched on (destination, 16-bit ICMP sequence), and then
// confirmed by the token and the 64-bit sequence, and on raw sockets also by the ICMP identifier.
// Datagram ("ping") sockets rewrite the identifier to the socket's ident, which is why it alone
// cannot tell two engines apart; the token can. Probes whose payload is shorter than
// icmp.PayloadHeaderLen are matched on identifier and sequence only, as iputils does.
//
// A probe is registered before its request is written, so a quick reply cannot race its own
// registration. It stays registered until its Timeout passes, so that duplicates of an answered
// probe are recognised as duplicates; every entry is removed exactly once, by the timer, by
// cancellation, by Close, or when a newer probe to the same destination takes its 16-bit
// sequence (a flood wraps it every 65,536 probes). The engine's memory is bounded by the probes
// sent within a Timeout and, per destination, by those 65,536.
//
// # Late replies
//
// A reply that arrives after its probe's Timeout is not a reply: the probe has already been
// reported lost. The engine remembers an unanswered probe for one more Timeout and hands such
// an answer to the probe's OnResult as Late (Ping counts it in stats.Summary.Late); after that,
// or when the answer comes from another address than the probe went to, or duplicates an
// answered probe after its Timeout, it is only counted in Counters.Late. Choose Timeout as the
// longest round-trip time that should still count as an answer (iputils' -W).
//
// # Round-trip time
//
// The send time is read from the monotonic clock just before the write. The receive time is the
// kernel's receive timestamp (SO_TIMESTAMPNS): the RTT is the monotonic time from send to the
// moment the reader saw the packet, less the time the packet waited in the socket queue as the
// kernel measured it. Clock steps therefore cannot distort an RTT, and scheduling delays of the
// reader goroutine do not inflate it.
//
// # Privileges
//
// The engine opens its sockets lazily, through package rawsock, on the first probe to each
// family; see rawsock for the privilege model (raw sockets need CAP_NET_RAW, datagram sockets need
// net.ipv4.ping_group_range to admit the process's group). The engine never changes privileges.
package probe
