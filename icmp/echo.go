package icmp

// AppendEchoRequest appends an ICMP echo request (type 8 for IPv4, 128 for
// IPv6, code 0) with the given identifier, sequence number and payload to b
// and returns the extended slice. It does not allocate when b has enough
// spare capacity.
//
// For IPv4 the checksum is filled in. For IPv6 it is left 0: the ICMPv6
// checksum covers a pseudo-header with the source address, which only the
// kernel knows, and Linux computes it on raw ICMPv6 sockets (RFC 3542
// section 3.1).
func AppendEchoRequest(b []byte, f Family, id, seq uint16, payload []byte) []byte {
	return appendEcho(b, f, f.EchoRequestType(), id, seq, payload)
}

// AppendEchoReply is AppendEchoRequest for an echo reply (type 0 for IPv4,
// 129 for IPv6). It exists for responders and for tests that fake one.
func AppendEchoReply(b []byte, f Family, id, seq uint16, payload []byte) []byte {
	return appendEcho(b, f, f.EchoReplyType(), id, seq, payload)
}

func appendEcho(b []byte, f Family, typ uint8, id, seq uint16, payload []byte) []byte {
	start := len(b)
	b = append(b, typ, 0, 0, 0, byte(id>>8), byte(id), byte(seq>>8), byte(seq))
	b = append(b, payload...)
	if f == IPv4 {
		c := Checksum(b[start:])
		b[start+2], b[start+3] = byte(c>>8), byte(c)
	}
	return b
}
