package icmp

import (
	"bytes"
	"testing"
)

func TestPayloadLayout(t *testing.T) {
	p := AppendPayload(nil, 20, 0x0102030405060708, 0x1112131415161718)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 16, 17, 18, 19}
	if !bytes.Equal(p, want) {
		t.Fatalf("AppendPayload = % x, want % x", p, want)
	}
	short := AppendPayload(nil, 5, 0xffff, 0xffff)
	if !bytes.Equal(short, []byte{0, 1, 2, 3, 4}) {
		t.Fatalf("short payload = % x", short)
	}
	if p := AppendPayload([]byte{9}, -3, 1, 1); !bytes.Equal(p, []byte{9}) {
		t.Fatalf("negative size appended: % x", p)
	}
	// Past 256 bytes the pattern wraps, as iputils' does.
	big := AppendPayload(nil, 600, 1, 2)
	if big[256] != 0 || big[300] != 300-256 || len(big) != 600 {
		t.Fatalf("pattern does not wrap at 256: %d %d", big[256], big[300])
	}
}

func TestPayloadAppends(t *testing.T) {
	prefix := []byte("hdr")
	p := AppendPayload(prefix, 32, 5, 6)
	if string(p[:3]) != "hdr" || len(p) != 35 {
		t.Fatalf("prefix lost: %q len %d", p[:3], len(p))
	}
	tok, seq, ok := ParsePayload(p[3:])
	if !ok || tok != 5 || seq != 6 {
		t.Fatalf("ParsePayload = %d %d %v", tok, seq, ok)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(50, func() { buf = AppendPayload(buf[:0], 64, 1, 2) }); n != 0 {
		t.Errorf("AppendPayload into capacity allocates %v times", n)
	}
}

func TestParsePayloadShort(t *testing.T) {
	for n := range PayloadHeaderLen {
		tok, seq, ok := ParsePayload(make([]byte, n))
		if ok || tok != 0 || seq != 0 {
			t.Errorf("len %d: ParsePayload = %d %d %v, want not ok", n, tok, seq, ok)
		}
	}
}

func TestCheckPattern(t *testing.T) {
	for _, size := range []int{0, 1, 15, 16, 17, 64, 1000} {
		p := AppendPayload(nil, size, 0xffffffffffffffff, 0xffffffffffffffff)
		if got := CheckPattern(p); got != -1 {
			t.Errorf("size %d: intact payload reports %d", size, got)
		}
		// The header carries data, not pattern, and is never checked.
		for i := range min(size, PayloadHeaderLen) {
			p[i] ^= 0x5a
		}
		if got := CheckPattern(p); got != -1 {
			t.Errorf("size %d: header change reported at %d", size, got)
		}
		for _, bad := range []int{16, 17, size / 2, size - 1} {
			if bad < PayloadHeaderLen || bad >= size {
				continue
			}
			q := bytes.Clone(p)
			q[bad] ^= 1
			q[size-1] ^= 0x80 // a later error must not hide the first
			if got := CheckPattern(q); got != bad {
				t.Errorf("size %d: corruption at %d reported at %d", size, bad, got)
			}
		}
	}
}
