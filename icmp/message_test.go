package icmp

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestParseEveryKind(t *testing.T) {
	udp4 := udpProbe4(t, 1, 40000, 33434, []byte("probe-payload"))
	echo6 := echoProbe6(t, 1, 7, 8, []byte("xyz"), false)
	tests := []struct {
		name        string
		f           Family
		msg         []byte
		kind        Kind
		mtu, ptr    int
		quoteValid  bool
		quoteFamily Family
	}{
		{"v4 echo reply", IPv4, AppendEchoReply(nil, IPv4, 1, 2, nil), KindEchoReply, 0, 0, false, 0},
		{"v4 echo request", IPv4, AppendEchoRequest(nil, IPv4, 1, 2, nil), KindEchoRequest, 0, 0, false, 0},
		{"v4 port unreachable", IPv4, errorMsg(IPv4, 3, 3, [4]byte{}, udp4, nil), KindDestinationUnreachable, 0, 0, true, IPv4},
		{"v4 frag needed", IPv4, errorMsg(IPv4, 3, 4, [4]byte{0, 0, 0x05, 0x78}, udp4, nil), KindDestinationUnreachable, 1400, 0, true, IPv4},
		{"v4 time exceeded", IPv4, errorMsg(IPv4, 11, 0, [4]byte{}, udp4[:28], nil), KindTimeExceeded, 0, 0, true, IPv4},
		{"v4 parameter problem", IPv4, errorMsg(IPv4, 12, 0, [4]byte{20, 0, 0, 0}, udp4, nil), KindParameterProblem, 0, 20, true, IPv4},
		{"v4 timestamp", IPv4, errorMsg(IPv4, 13, 0, [4]byte{0, 1, 0, 1}, make([]byte, 12), nil), KindOther, 0, 0, false, 0},
		{"v6 echo reply", IPv6, AppendEchoReply(nil, IPv6, 1, 2, nil), KindEchoReply, 0, 0, false, 0},
		{"v6 echo request", IPv6, AppendEchoRequest(nil, IPv6, 1, 2, nil), KindEchoRequest, 0, 0, false, 0},
		{"v6 unreachable", IPv6, errorMsg(IPv6, 1, 4, [4]byte{}, echo6, nil), KindDestinationUnreachable, 0, 0, true, IPv6},
		{"v6 packet too big", IPv6, errorMsg(IPv6, 2, 0, [4]byte{0, 0, 0x05, 0x00}, echo6, nil), KindPacketTooBig, 1280, 0, true, IPv6},
		{"v6 time exceeded", IPv6, errorMsg(IPv6, 3, 1, [4]byte{}, echo6, nil), KindTimeExceeded, 0, 0, true, IPv6},
		{"v6 parameter problem", IPv6, errorMsg(IPv6, 4, 1, [4]byte{0, 1, 0, 2}, echo6, nil), KindParameterProblem, 0, 0x10002, true, IPv6},
		{"v6 neighbor solicitation", IPv6, errorMsg(IPv6, 135, 0, [4]byte{}, make([]byte, 16), nil), KindOther, 0, 0, false, 0},
		{"v4 error quoting IPv6", IPv4, errorMsg(IPv4, 11, 0, [4]byte{}, echo6, nil), KindTimeExceeded, 0, 0, true, IPv6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, tt.f, tt.msg)
			if m.Family != tt.f || m.Kind != tt.kind || m.Type != tt.msg[0] || m.Code != tt.msg[1] {
				t.Errorf("got family %v kind %v type %d code %d", m.Family, m.Kind, m.Type, m.Code)
			}
			if !m.ChecksumOK {
				t.Error("ChecksumOK = false")
			}
			if m.MTU != tt.mtu || m.Pointer != tt.ptr {
				t.Errorf("MTU %d pointer %d, want %d %d", m.MTU, m.Pointer, tt.mtu, tt.ptr)
			}
			if m.Quote.Valid != tt.quoteValid || m.Quote.Family != tt.quoteFamily {
				t.Errorf("quote valid %v family %v, want %v %v", m.Quote.Valid, m.Quote.Family, tt.quoteValid, tt.quoteFamily)
			}
			if m.Extensions != nil {
				t.Errorf("unexpected extensions % x", m.Extensions)
			}
			isEcho := tt.kind == KindEchoReply || tt.kind == KindEchoRequest
			if isEcho != (m.ID == 1 && m.Seq == 2) {
				t.Errorf("ID %d Seq %d for %v", m.ID, m.Seq, tt.kind)
			}
		})
	}
}

func TestParseV4UnreachableCodes(t *testing.T) {
	quote := udpProbe4(t, 9, 1000, 2000, nil)
	for code := range 256 {
		msg := errorMsg(IPv4, 3, uint8(code), [4]byte{0, 0, 0x02, 0x40}, quote, nil)
		m := mustParse(t, IPv4, msg)
		if m.Kind != KindDestinationUnreachable || m.Code != uint8(code) || !m.ChecksumOK {
			t.Fatalf("code %d: kind %v code %d checksumOK %v", code, m.Kind, m.Code, m.ChecksumOK)
		}
		wantMTU := 0
		if code == 4 {
			wantMTU = 0x240
		}
		if m.MTU != wantMTU {
			t.Errorf("code %d: MTU %d, want %d", code, m.MTU, wantMTU)
		}
		if !m.Quote.Valid || m.Quote.SrcPort != 1000 || m.Quote.DstPort != 2000 {
			t.Errorf("code %d: quote %+v", code, m.Quote)
		}
	}
}

func TestParseBadChecksum(t *testing.T) {
	msgs := [][]byte{
		AppendEchoReply(nil, IPv4, 0x1111, 0x2222, AppendPayload(nil, 33, 1, 2)),
		errorMsg(IPv4, 11, 0, [4]byte{}, udpProbe4(t, 1, 5, 6, nil), nil),
	}
	for _, msg := range msgs {
		for i := range msg {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(msg)
				bad[i] ^= bit
				var m Message
				if err := Parse(IPv4, bad, &m); err != nil {
					t.Fatalf("flip byte %d: %v", i, err)
				}
				if m.ChecksumOK {
					t.Errorf("type %d: flipping bit %#x of byte %d not detected", msg[0], bit, i)
				}
			}
		}
	}
	// IPv6 checksums need the pseudo-header; the kernel verifies them.
	v6 := AppendEchoReply(nil, IPv6, 1, 2, nil)
	v6[2], v6[3] = 0xde, 0xad
	if m := mustParse(t, IPv6, v6); !m.ChecksumOK {
		t.Error("IPv6 ChecksumOK = false")
	}
}

func TestParseErrors(t *testing.T) {
	var m Message
	for _, f := range []Family{IPv4, IPv6} {
		for _, typ := range []uint8{f.EchoReplyType(), f.EchoRequestType(), 3, 11} {
			for n := range headerLen {
				b := make([]byte, n)
				if n > 0 {
					b[0] = typ
				}
				err := Parse(f, b, &m)
				if Classify(f, typ) == KindOther && n >= 4 {
					if err != nil {
						t.Errorf("%v type %d len %d: %v", f, typ, n, err)
					}
					continue
				}
				if !errors.Is(err, ErrTooShort) {
					t.Errorf("%v type %d len %d: err = %v, want ErrTooShort", f, typ, n, err)
				}
			}
		}
	}
	err := Parse(Family(5), AppendEchoReply(nil, IPv4, 1, 1, nil), &m)
	if !errors.Is(err, ErrMalformed) || m.Family != Family(5) || m.Kind != KindOther {
		t.Errorf("unknown family: err %v, m %+v", err, m)
	}
}

// fixtures returns one valid message of each shape the parser handles.
func fixtures(t testing.TB) []struct {
	f   Family
	msg []byte
} {
	udp4 := udpProbe4(t, 1, 40000, 33434, []byte("0123456789abcdef"))
	opts4 := udpProbe4(t, 1, 40000, 33435, []byte("opts"), routerAlert())
	echo6 := echoProbe6(t, 1, 7, 8, []byte("hop-by-hop quoted"), true)
	mpls := extStruct(testObject{classMPLS, ctypeMPLSIncoming, mplsEntry(16014, 0, true, 1)})
	long4 := errorMsg(IPv4, 11, 0, [4]byte{0, 128 / 4, 0, 0}, padQuote(udp4, 128), mpls)
	return []struct {
		f   Family
		msg []byte
	}{
		{IPv4, AppendEchoReply(nil, IPv4, 1, 2, AppendPayload(nil, 56, 3, 4))},
		{IPv4, errorMsg(IPv4, 11, 0, [4]byte{}, udp4[:28], nil)},
		{IPv4, long4},
		{IPv4, errorMsg(IPv4, 3, 3, [4]byte{}, opts4, nil)},
		{IPv4, errorMsg(IPv4, 3, 4, [4]byte{0, 0, 0x05, 0xdc}, udp4, nil)},
		{IPv4, errorMsg(IPv4, 12, 0, [4]byte{1, 0, 0, 0}, tcpProbe4(t, 1, 80, 99), nil)},
		{IPv6, AppendEchoReply(nil, IPv6, 1, 2, AppendPayload(nil, 56, 3, 4))},
		{IPv6, errorMsg(IPv6, 2, 0, [4]byte{0, 0, 0x05, 0x00}, echo6, nil)},
		{IPv6, errorMsg(IPv6, 3, 0, [4]byte{}, echo6, nil)},
		{IPv6, errorMsg(IPv6, 1, 4, [4]byte{128 / 8, 0, 0, 0}, padQuote(udpProbe6(t, 1, 1, 2, nil), 128), mpls)},
		{IPv6, errorMsg(IPv6, 4, 0, [4]byte{0, 0, 0, 6}, echo6, nil)},
	}
}

// TestParseEveryPrefix parses every truncation of every fixture, reusing one
// Message so that stale fields would show.
func TestParseEveryPrefix(t *testing.T) {
	var m Message
	for _, fx := range fixtures(t) {
		full := mustParse(t, fx.f, fx.msg)
		for n := 0; n <= len(fx.msg); n++ {
			prefix := fx.msg[:n]
			err := Parse(fx.f, prefix, &m)
			if n < headerLen {
				if !errors.Is(err, ErrTooShort) {
					t.Fatalf("type %d len %d: err %v, want ErrTooShort", fx.msg[0], n, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("type %d len %d: %v", fx.msg[0], n, err)
			}
			var fresh Message
			if err := Parse(fx.f, prefix, &fresh); err != nil || !reflect.DeepEqual(fresh, m) {
				t.Fatalf("type %d len %d: reused Message differs from fresh one", fx.msg[0], n)
			}
			if m.Kind != full.Kind || m.Type != full.Type || m.Code != full.Code {
				t.Fatalf("type %d len %d: header fields changed", fx.msg[0], n)
			}
			if n < len(fx.msg) && full.Quote.Valid && m.Quote.Valid && !m.Quote.Truncated && m.Extensions == nil && full.Extensions == nil {
				t.Fatalf("type %d len %d of %d: cut quote neither invalid nor truncated: %+v", fx.msg[0], n, len(fx.msg), m.Quote)
			}
			if m.Quote.Valid && (m.Quote.Src != full.Quote.Src || m.Quote.Dst != full.Quote.Dst) {
				t.Fatalf("type %d len %d: quote addresses changed", fx.msg[0], n)
			}
		}
	}
}

func TestParseOverwrites(t *testing.T) {
	fx := fixtures(t)
	var m Message
	if err := Parse(IPv4, fx[2].msg, &m); err != nil || m.Extensions == nil || !m.Quote.Valid {
		t.Fatalf("setup: err %v ext %v quote %v", err, m.Extensions != nil, m.Quote.Valid)
	}
	if err := Parse(IPv6, fx[6].msg, &m); err != nil {
		t.Fatal(err)
	}
	if m.Extensions != nil || !reflect.DeepEqual(m.Quote, Quote{}) || m.MTU != 0 || m.Family != IPv6 {
		t.Errorf("fields left over from the previous message: %+v", m)
	}
}

func TestParseAllocs(t *testing.T) {
	var m Message
	for _, fx := range fixtures(t) {
		n := testing.AllocsPerRun(100, func() {
			if err := Parse(fx.f, fx.msg, &m); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%v type %d: Parse allocates %v times", fx.f, fx.msg[0], n)
		}
	}
}
