package icmp

// Checksum returns the RFC 1071 internet checksum of b: the ones'
// complement of the ones' complement sum of its 16-bit big-endian words,
// an odd final byte being padded with zero. Computed over a message whose
// checksum field is zero it gives the value to store there; computed over
// a message with a correct checksum it gives 0.
func Checksum(b []byte) uint16 {
	var sum uint64
	// Summing 32-bit words into a 64-bit accumulator defers the carry
	// folding; ones' complement addition is byte-order independent up to a
	// final fold (RFC 1071 section 2).
	for len(b) >= 4 {
		sum += uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
