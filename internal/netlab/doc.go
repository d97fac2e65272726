// Package netlab builds throw-away network-namespace labs for the integration
// tests of gping, gtrace and the engine: namespaces joined by veth pairs, a
// host–routers–target chain with IPv4 and IPv6 on every link, and fault
// injection (loss, administrative filtering, silent routers, ICMP rate
// limiting) with nftables and per-namespace sysctls.
//
// netlab is test infrastructure: it shells out to ip(8) from iproute2, nft(8)
// and sysctl(8), always under "ip netns exec" or "ip -n", so nothing is ever
// configured in the host's own namespace. It needs root; [New] skips the test
// (or fails it when GPING_REQUIRE_LAB=1) when the lab cannot run.
//
// Addresses come from ranges reserved for exactly this use: 198.18.0.0/15 for
// network benchmarking (RFC 2544, RFC 5735) and 2001:db8::/32 for documentation
// (RFC 3849). The faults model what RFC 792 and RFC 4443 let routers do:
// Time Exceeded, Destination Unreachable code 13 "communication
// administratively prohibited" (RFC 1812 section 5.2.7.1) and its ICMPv6
// counterpart code 1, and ICMP error rate limiting (RFC 1812 section 4.3.2.8,
// RFC 4443 section 2.4 (f)).
package netlab
