package icmp

// FlowWordOffset is the payload offset of the 16-bit word that FixChecksum rewrites: right
// after the token and sequence that AppendPayload writes.
const FlowWordOffset = PayloadHeaderLen

// FixChecksum rewrites the payload word at FlowWordOffset of the echo request msg (ICMP header
// onwards, checksum field included) so that its checksum is want, whatever its sequence number
// and the rest of its payload. Paris traceroute needs this: routers that spread traffic over
// equal-cost paths hash ICMP messages on their checksum, so probes that differ only in sequence
// would otherwise take different paths.
//
// IPv4: the checksum field is written. IPv6: the field stays zero for the kernel, which sums
// the pseudo-header (the same for every probe of a flow) and the message; fixing the message's
// own sum fixes the checksum the kernel writes. It reports false, changing nothing, when the
// payload is too short to hold the word.
func FixChecksum(msg []byte, f Family, want uint16) bool {
	w := 8 + FlowWordOffset
	if len(msg) < w+2 {
		return false
	}
	msg[2], msg[3] = 0, 0
	msg[w], msg[w+1] = 0, 0
	// Checksum is the complement of the ones'-complement sum S. The word x must bring the sum
	// to ^want: x = ^want - S, that is ^want + ^S in ones'-complement arithmetic.
	s := ^Checksum(msg)
	x := uint32(^want) + uint32(^s)
	x = x&0xffff + x>>16
	msg[w], msg[w+1] = byte(x>>8), byte(x)
	if f == IPv4 {
		c := Checksum(msg)
		msg[2], msg[3] = byte(c>>8), byte(c)
	}
	return true
}

// CheckPatternAfter is CheckPattern for a payload whose bytes before start are not pattern
// (a flow word): the first offset at or after start whose byte is not byte(offset), or -1.
func CheckPatternAfter(p []byte, start int) int {
	for i := start; i < len(p); i++ {
		if p[i] != byte(i) {
			return i
		}
	}
	return -1
}
