package icmp

import (
	"encoding/binary"
	"slices"
)

// PayloadHeaderLen is the size of the probe header at the start of a
// payload: an 8-byte token that identifies the sender (ping sockets
// rewrite the echo identifier, so it cannot be trusted for matching) and
// an 8-byte sequence number that does not wrap like the 16-bit echo
// sequence.
const PayloadHeaderLen = 16

// AppendPayload appends a probe payload of size bytes to b. When size is
// at least PayloadHeaderLen the payload starts with token and seq, both
// big-endian; every byte at offset i past the header is byte(i), the
// iputils fill pattern, so that corruption on the path is detectable and
// looks familiar in packet dumps. A shorter payload is pattern only. A
// negative size appends nothing.
func AppendPayload(b []byte, size int, token, seq uint64) []byte {
	if size <= 0 {
		return b
	}
	b = slices.Grow(b, size)
	i := 0
	if size >= PayloadHeaderLen {
		b = binary.BigEndian.AppendUint64(b, token)
		b = binary.BigEndian.AppendUint64(b, seq)
		i = PayloadHeaderLen
	}
	for ; i < size; i++ {
		b = append(b, byte(i))
	}
	return b
}

// ParsePayload returns the token and sequence number at the start of a
// probe payload. ok is false, and the numbers zero, when p is shorter than
// PayloadHeaderLen.
func ParsePayload(p []byte) (token, seq uint64, ok bool) {
	if len(p) < PayloadHeaderLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(p[0:8]), binary.BigEndian.Uint64(p[8:16]), true
}

// CheckPattern reports the first offset at or after min(PayloadHeaderLen,
// len(p)) whose byte is not the fill pattern byte(offset), or -1 if the
// pattern is intact. The header bytes are never checked, since they carry
// the token and sequence number, so a payload shorter than
// PayloadHeaderLen always reports -1.
func CheckPattern(p []byte) int {
	for i := PayloadHeaderLen; i < len(p); i++ {
		if p[i] != byte(i) {
			return i
		}
	}
	return -1
}
