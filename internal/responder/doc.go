// Package responder is a scriptable, misbehaving ICMP echo responder for the integration tests
// of gping, gtrace and the probe engine. It runs inside a netlab namespace whose kernel echo
// replies are turned off (netlab.NS.NoEchoReply), reads every echo request (RFC 792 type 8,
// RFC 4443 type 128) from raw sockets of both families, logs it as the ground truth of what a
// pinger sent, and answers as a Script says: normally, not at all, several times, late,
// out of order, with a corrupted or truncated payload, a bad checksum, another source address or
// another echo identifier, or with an ICMP error (Time Exceeded, Destination Unreachable) whose
// quote of the request is the 8 octets RFC 792 requires, as long as RFC 1812 section 4.3.2.3
// and RFC 4443 section 2.4 (c) allow, or (IPv4) led by a header carrying 40 bytes of IP options
// (RFC 791), the shape behind FreeBSD's CVE-2022-23093.
//
// It is test infrastructure: it needs CAP_NET_RAW in the namespace, sends only what its Script
// asks for in answer to requests it received, and bounds everything it holds: the log, the
// actions per request, the copies per action and the replies waiting on a timer.
//
// IPv4 answers are written with IP_HDRINCL (raw(7)), so the responder chooses their source
// address and the ICMP checksum is left exactly as built. On IPv6 the kernel always computes the
// ICMPv6 checksum of raw sockets (RFC 3542 section 3.1), so Action.BadChecksum has no effect
// there, and the source of an answer must be an address the namespace owns.
package responder
