// Package icmp encodes and decodes ICMP for IPv4 (RFC 792) and ICMPv6
// (RFC 4443): echo request and reply, destination unreachable, time
// exceeded, packet too big and parameter problem, including the invoking
// datagram quoted in error messages.
//
// It also understands the multi-part message layout of RFC 4884, the MPLS
// label stack object of RFC 4950 and the interface information object of
// RFC 5837, and reports the next-hop MTU of RFC 1191 (IPv4) and RFC 8201
// (IPv6) path MTU discovery.
//
// The package does no I/O and starts no goroutines. Parsing never panics,
// whatever the input, and the hot-path functions (Parse, ParseQuote,
// AppendEchoRequest into a buffer with enough capacity) do not allocate;
// as a consequence, slices in parsed results alias the input buffer, so the
// caller must not reuse the buffer while results are in use. All functions
// are safe for concurrent use because the package holds no state.
package icmp
