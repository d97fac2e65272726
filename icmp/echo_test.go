package icmp

import (
	"bytes"
	"testing"

	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// xnetEcho marshals an echo message with golang.org/x/net/icmp, an
// independent encoder.
func xnetEcho(t *testing.T, f Family, request bool, id, seq uint16, data []byte) []byte {
	t.Helper()
	var typ xicmp.Type = ipv4.ICMPTypeEcho
	switch {
	case f == IPv4 && !request:
		typ = ipv4.ICMPTypeEchoReply
	case f == IPv6 && request:
		typ = ipv6.ICMPTypeEchoRequest
	case f == IPv6:
		typ = ipv6.ICMPTypeEchoReply
	}
	m := xicmp.Message{Type: typ, Body: &xicmp.Echo{ID: int(id), Seq: int(seq), Data: data}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func echoSizes() []int {
	sizes := make([]int, 0, 102)
	for n := 0; n <= 100; n++ {
		sizes = append(sizes, n)
	}
	return append(sizes, 65507) // largest IPv4 ICMP payload
}

func TestEchoRoundTrip(t *testing.T) {
	for _, f := range []Family{IPv4, IPv6} {
		for _, request := range []bool{true, false} {
			for _, size := range echoSizes() {
				id, seq := uint16(0xbeef+size), uint16(0xfff0+size)
				token, bigSeq := uint64(0x0123456789abcdef), uint64(1)<<40+uint64(size)
				payload := AppendPayload(nil, size, token, bigSeq)
				prefix := []byte{0xaa, 0xbb} // appending must not disturb existing bytes
				var b []byte
				if request {
					b = AppendEchoRequest(prefix, f, id, seq, payload)
				} else {
					b = AppendEchoReply(prefix, f, id, seq, payload)
				}
				if !bytes.Equal(b[:2], prefix) {
					t.Fatalf("prefix clobbered: % x", b[:2])
				}
				b = b[2:]
				if want := xnetEcho(t, f, request, id, seq, payload); !bytes.Equal(b, want) {
					t.Fatalf("%v size %d request=%v: encoding differs from x/net:\n got % x\nwant % x", f, size, request, b[:min(len(b), 32)], want[:min(len(want), 32)])
				}
				m := mustParse(t, f, b)
				wantKind := KindEchoReply
				if request {
					wantKind = KindEchoRequest
				}
				if m.Kind != wantKind || m.Family != f || m.Code != 0 || !m.ChecksumOK {
					t.Fatalf("%v size %d: got kind %v family %v code %d checksumOK %v", f, size, m.Kind, m.Family, m.Code, m.ChecksumOK)
				}
				if m.ID != id || m.Seq != seq || !bytes.Equal(m.Payload, payload) {
					t.Fatalf("%v size %d: id %#x seq %#x payload len %d", f, size, m.ID, m.Seq, len(m.Payload))
				}
				gotToken, gotSeq, ok := ParsePayload(m.Payload)
				if ok != (size >= PayloadHeaderLen) {
					t.Fatalf("size %d: ParsePayload ok = %v", size, ok)
				}
				if ok && (gotToken != token || gotSeq != bigSeq) {
					t.Fatalf("size %d: token %#x seq %d", size, gotToken, gotSeq)
				}
				if off := CheckPattern(m.Payload); off != -1 {
					t.Fatalf("size %d: CheckPattern = %d", size, off)
				}
			}
		}
	}
}

func TestEchoAgainstXNetParser(t *testing.T) {
	payload := AppendPayload(nil, 56, 7, 9)
	b := AppendEchoRequest(nil, IPv4, 0x1234, 0x5678, payload)
	m, err := xicmp.ParseMessage(1, b)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.Body.(*xicmp.Echo)
	if !ok || m.Type != ipv4.ICMPTypeEcho || e.ID != 0x1234 || e.Seq != 0x5678 || !bytes.Equal(e.Data, payload) {
		t.Fatalf("x/net parsed %+v %+v", m, m.Body)
	}
}

func TestEchoAllocs(t *testing.T) {
	payload := AppendPayload(nil, 56, 1, 2)
	buf := make([]byte, 0, 128)
	for _, f := range []Family{IPv4, IPv6} {
		n := testing.AllocsPerRun(100, func() {
			buf = AppendEchoRequest(buf[:0], f, 1, 2, payload)
		})
		if n != 0 {
			t.Errorf("%v: AppendEchoRequest allocates %v times", f, n)
		}
	}
}
