package icmp

import (
	"encoding/binary"
	"testing"
)

// TestFixChecksum: probes that differ in sequence, token and sequence word all end up with the
// same checksum, which verifies; for IPv6 the message sum (what the kernel adds the fixed
// pseudo-header to) is the same.
func TestFixChecksum(t *testing.T) {
	for _, f := range []Family{IPv4, IPv6} {
		for _, want := range []uint16{0x1234, 0xbeef, 0x0001, 0xfffe} {
			var sums []uint16
			for seq := uint64(0); seq < 300; seq += 7 {
				for _, size := range []int{18, 56, 1000} {
					p := AppendPayload(nil, size, 0xfeedface^seq*31, seq)
					msg := AppendEchoRequest(nil, f, 0x4242, uint16(seq), p)
					if !FixChecksum(msg, f, want) {
						t.Fatalf("size %d: FixChecksum refused", size)
					}
					var m Message
					if err := Parse(f, msg, &m); err != nil || m.Seq != uint16(seq) || !m.ChecksumOK {
						t.Fatalf("%v: parse %+v %v", f, m, err)
					}
					if tok, s64, ok := ParsePayload(m.Payload); !ok || s64 != seq || tok != 0xfeedface^seq*31 {
						t.Fatalf("header damaged: %x %d", tok, s64)
					}
					if off := CheckPatternAfter(m.Payload, FlowWordOffset+2); off >= 0 {
						t.Fatalf("pattern damaged at %d", off)
					}
					if f == IPv4 {
						sums = append(sums, binary.BigEndian.Uint16(msg[2:4]))
					} else {
						sums = append(sums, Checksum(msg)) // field 0: the complement of the message sum
					}
				}
			}
			for _, s := range sums {
				if s != sums[0] {
					t.Fatalf("%v want %#x: checksums differ: %#x vs %#x", f, want, s, sums[0])
				}
			}
			if f == IPv4 && sums[0] != want {
				t.Errorf("IPv4 checksum %#x, want %#x", sums[0], want)
			}
		}
	}
	short := AppendEchoRequest(nil, IPv4, 1, 1, AppendPayload(nil, 17, 1, 1))
	if FixChecksum(short, IPv4, 0x1234) {
		t.Error("17-byte payload accepted")
	}
}
