// Package trace finds the routers on the path to a destination, as traceroute(8) does, with
// probes sent through a Prober: ICMP echo requests through a shared probe.Engine, or UDP
// datagrams and TCP SYNs (RFC 768, RFC 9293) through an l4.Prober.
//
// A probe with TTL (IPv4) or hop limit (IPv6) n expires at the n-th router, which answers with
// ICMP Time Exceeded (RFC 792, RFC 4443 section 3.3); the destination itself answers with an
// Echo Reply, and a router or host that will not forward says so with Destination Unreachable
// (RFC 792, RFC 1812 section 5.2.7.1, RFC 4443 section 3.1) or Packet Too Big (RFC 4443 section
// 3.2, RFC 1191). Run sends the probes of every TTL in parallel, bounded as traceroute -N does,
// and reports hops in TTL order as soon as each hop and every hop before it is settled.
//
// # Rate limits
//
// Routers limit the ICMP errors they send (RFC 1812 section 4.3.2.8, RFC 4443 section 2.4 (f)).
// Linux keeps a token bucket per destination: a burst of 6, then one message per
// net.ipv4.icmp_ratelimit (1 s by default; net.ipv6.icmp.ratelimit is 100 ms on recent kernels).
// Spacing probes by less than that buys nothing, so a query that got no answer is instead sent
// once more, Config.RetryAfter after the first attempt, while the answer still fits in
// Config.Wait. Once a hop has needed a retry, all its further probes are spaced by RetryAfter,
// so that none of them takes the router's next token from another. A retry takes over the
// place of the attempt it repeats under Config.Parallel, so that lost first attempts cannot
// hold back their own retries. A query is reported as a timeout only when both attempts went
// unanswered.
//
// # Flows
//
// Routers that balance equal-cost paths hash a packet's addresses, protocol and ports (and,
// on some, the ICMP checksum). Paris traceroute's rule, which Run follows by default, is to
// keep all of those fixed for every probe of a trace, so that the hops reported are those of
// one path rather than a mix of several: the ICMP probes carry one checksum (Config.Flow,
// kept by a compensating payload word) and the l4.Prober keeps its ports. Config.Classic lets
// them vary, as traceroute does.
//
// # A destination's own rate limit
//
// A UDP probe that reaches the destination is answered by a port unreachable, an ICMP error
// and as rate limited as any other. Probes with TTLs past the destination's, sent in parallel
// before its distance is known, would spend its burst of 6 and leave the queries at its own
// TTL to wait a second each. Config.Lookahead (set from the Prober's AnswerBurst when zero)
// bounds the probes in flight past the last router that has answered: with Lookahead plus
// Queries at most 6, a UDP trace through kernel-default limits needs no retry.
//
// # Path MTU
//
// With Config.MTU, probes are that large and unfragmentable, and one answered by Packet Too
// Big or Fragmentation Needed (RFC 1191, RFC 8201) is sent again at the MTU it names: the trace
// reports where the path narrows (traceroute --mtu's F=NUM) as well as the hops.
//
// # Waits
//
// Config.Wait is traceroute's -w MAX; Config.Here and Config.Near are its HERE and NEAR
// (Debian traceroute 2.1): once a hop has answered, its other queries wait only Here times
// that answer's RTT, and a hop with no answer waits Near times the RTT of a later hop's
// answer. They meet retries thus. A hop that answered some queries and lost others is rate
// limiting, so its lost queries still get their retry, and the shortened wait runs from the
// retry. A hop with no answer at all, past which a router has answered with Time Exceeded, is
// taken for a silent router and given up after its Near wait, without a retry: a trace past a
// silent router ends a fraction of a second after the destination answers. That is not done
// once the trace has seen a rate limit (a retry answered, or a hop that answered some queries
// and not others), nor while no router past the hop has answered (after earlier traces every
// router's token bucket may be empty at once, and only the destination, whose Echo Reply is
// not rate limited, answers at first). A router whose bucket alone is empty, among neighbours
// that answer at once, cannot be told from a silent one by a single trace: it gets "*".
//
// # Repeated traces
//
// Tally sums up the hops of repeated traces of one path, as mtr's report does, in memory
// bounded by MaxTTL whatever the number of rounds.
package trace
