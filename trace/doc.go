// Package trace finds the routers on the path to a destination, as traceroute(8) does, with
// ICMP echo requests sent through a shared probe.Engine.
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
package trace
