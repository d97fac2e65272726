package icmp

import (
	"math/rand/v2"
	"testing"
)

// naiveChecksum is RFC 1071 written as plainly as possible, word by word.
func naiveChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		sum += w
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: these bytes sum to 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b); got != ^uint16(0xddf2) {
		t.Errorf("Checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	if got := Checksum(nil); got != 0xffff {
		t.Errorf("Checksum(nil) = %#04x, want 0xffff", got)
	}
}

func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := Checksum(b), naiveChecksum(b); got != want {
			t.Fatalf("len %d: Checksum = %#04x, naive %#04x", n, got, want)
		}
		// All-ones data exercises the carries.
		for i := range b {
			b[i] = 0xff
		}
		if got, want := Checksum(b), naiveChecksum(b); got != want {
			t.Fatalf("len %d of 0xff: Checksum = %#04x, naive %#04x", n, got, want)
		}
	}
}

func TestChecksumVerifies(t *testing.T) {
	for n := 4; n < 40; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		b[2], b[3] = 0, 0
		c := Checksum(b)
		b[2], b[3] = byte(c>>8), byte(c)
		if got := Checksum(b); got != 0 {
			t.Errorf("len %d: checksum over checksummed data = %#04x, want 0", n, got)
		}
	}
}
