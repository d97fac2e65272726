package icmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"

	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// xnetTimeExceeded marshals an RFC 4884 compliant time exceeded message
// with golang.org/x/net/icmp, an independent encoder.
func xnetTimeExceeded(t *testing.T, f Family, quote []byte, exts ...xicmp.Extension) []byte {
	t.Helper()
	var typ xicmp.Type = ipv4.ICMPTypeTimeExceeded
	if f == IPv6 {
		typ = ipv6.ICMPTypeTimeExceeded
	}
	m := xicmp.Message{Type: typ, Body: &xicmp.TimeExceeded{Data: quote, Extensions: exts}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExtensionsFromXNet(t *testing.T) {
	labels := []xicmp.MPLSLabel{{Label: 16014, TC: 3, S: false, TTL: 254}, {Label: 0xfffff, TC: 7, S: true, TTL: 1}}
	wantLabels := []MPLSLabel{{16014, 3, false, 254}, {0xfffff, 7, true, 1}}
	for _, f := range []Family{IPv4, IPv6} {
		addr, quote := routerAddr, udpProbe4(t, 1, 40000, 33434, []byte("x"))
		if f == IPv6 {
			addr, quote = netip.MustParseAddr("2001:db8:5::1"), udpProbe6(t, 1, 40000, 33434, []byte("x"))
		}
		ifInfo := &xicmp.InterfaceInfo{
			Class:     classInterfaceInfo,
			Type:      2<<6 | ifInfoIfIndex | ifInfoIPAddr | ifInfoName | ifInfoMTU, // outgoing interface
			Interface: &net.Interface{Index: 17, Name: "ge-0/0/1", MTU: 9000},
			Addr:      &net.IPAddr{IP: net.IP(addr.AsSlice())},
		}
		msg := xnetTimeExceeded(t, f, quote,
			&xicmp.MPLSLabelStack{Class: classMPLS, Type: ctypeMPLSIncoming, Labels: labels}, ifInfo)
		m := mustParse(t, f, msg)
		if m.Kind != KindTimeExceeded || !m.ChecksumOK || m.Extensions == nil {
			t.Fatalf("%v: kind %v checksum %v extensions %v", f, m.Kind, m.ChecksumOK, m.Extensions != nil)
		}
		if !m.Quote.Valid || m.Quote.DstPort != 33434 || string(m.Quote.Payload) != "x" {
			t.Errorf("%v: quote %+v", f, m.Quote)
		}
		objs, err := ParseExtensions(m.Extensions)
		if err != nil || len(objs) != 2 {
			t.Fatalf("%v: ParseExtensions = %d objects, %v", f, len(objs), err)
		}
		got, ok := objs[0].MPLS()
		if !ok || !reflect.DeepEqual(got, wantLabels) {
			t.Errorf("%v: MPLS = %+v %v", f, got, ok)
		}
		if _, ok := objs[0].Interface(); ok {
			t.Errorf("%v: MPLS object decoded as interface", f)
		}
		info, ok := objs[1].Interface()
		want := InterfaceInfo{Role: 2, IfIndex: 17, Addr: addr, Name: "ge-0/0/1", MTU: 9000, HasIfIndex: true, HasMTU: true}
		if !ok || info != want {
			t.Errorf("%v: Interface = %+v %v, want %+v", f, info, ok, want)
		}
		if _, ok := objs[1].MPLS(); ok {
			t.Errorf("%v: interface object decoded as MPLS", f)
		}
	}
}

func TestExtensionPlacement(t *testing.T) {
	probe := udpProbe4(t, 1, 40000, 33434, []byte("data"))
	ext := extStruct(testObject{classMPLS, ctypeMPLSIncoming, mplsEntry(100, 0, true, 1)})
	noSum := bytes.Clone(ext)
	noSum[2], noSum[3] = 0, 0
	badSum := bytes.Clone(ext)
	badSum[3] ^= 1
	padded := padQuote(probe, 128)
	long := padQuote(probe, 160)
	tests := []struct {
		name    string
		f       Family
		word    [4]byte
		quote   []byte
		ext     []byte
		wantExt bool
	}{
		{"v4 compliant", IPv4, [4]byte{0, 128 / 4}, padded, ext, true},
		{"v4 compliant long quote", IPv4, [4]byte{0, 160 / 4}, long, ext, true},
		{"v4 compliant without checksum", IPv4, [4]byte{0, 128 / 4}, padded, noSum, true},
		{"v4 legacy", IPv4, [4]byte{}, padded, ext, true},
		{"v4 legacy bad checksum", IPv4, [4]byte{}, padded, badSum, false},
		{"v4 legacy without checksum", IPv4, [4]byte{}, padded, noSum, false},
		{"v4 legacy after long quote", IPv4, [4]byte{}, long, ext, false},
		{"v4 length under 128", IPv4, [4]byte{0, 64 / 4}, padded, ext, false},
		{"v4 length past end", IPv4, [4]byte{0, 255}, padded, ext, false},
		{"v4 length exact, nothing after", IPv4, [4]byte{0, 128 / 4}, padded, nil, false},
		{"v4 parameter problem", IPv4, [4]byte{3, 128 / 4}, padded, ext, true},
		{"v6 compliant", IPv6, [4]byte{128 / 8}, padded, ext, true},
		{"v6 legacy", IPv6, [4]byte{}, padded, ext, true},
		{"v6 wrong version", IPv6, [4]byte{128 / 8}, padded, append([]byte{0x10}, ext[1:]...), false},
	}
	for _, tt := range tests {
		typ := uint8(11)
		if tt.f == IPv6 {
			typ = 3
		}
		if tt.name == "v4 parameter problem" {
			typ = 12
		}
		msg := errorMsg(tt.f, typ, 0, tt.word, tt.quote, tt.ext)
		m := mustParse(t, tt.f, msg)
		if got := m.Extensions != nil; got != tt.wantExt {
			t.Errorf("%s: extensions found = %v, want %v", tt.name, got, tt.wantExt)
			continue
		}
		if tt.wantExt && !bytes.Equal(m.Extensions, tt.ext) {
			t.Errorf("%s: extensions % x, want % x", tt.name, m.Extensions, tt.ext)
		}
		// The quote is trimmed to the datagram whether or not the
		// extensions were recognised.
		if !m.Quote.Valid || string(m.Quote.Payload) != "data" || m.Quote.Truncated {
			t.Errorf("%s: quote payload %q truncated %v", tt.name, m.Quote.Payload, m.Quote.Truncated)
		}
	}
	// ICMPv6 packet too big has no length field: octet 4 is MTU.
	msg := errorMsg(IPv6, 2, 0, [4]byte{128 / 8, 0, 0x05, 0}, padded, ext)
	if m := mustParse(t, IPv6, msg); m.Extensions != nil || m.MTU != 128/8<<24|0x500 {
		t.Errorf("packet too big: extensions %v MTU %d", m.Extensions != nil, m.MTU)
	}
}

func TestQuotePayloadStopsAtExtensions(t *testing.T) {
	// A 200-byte probe quoted whole with an honest length: the
	// extensions follow the datagram, not its padding.
	payload := bytes.Repeat([]byte{0xee}, 200-28)
	probe := udpProbe4(t, 1, 1, 2, payload)
	ext := extStruct(testObject{classMPLS, ctypeMPLSIncoming, mplsEntry(5, 0, true, 9)})
	msg := errorMsg(IPv4, 11, 0, [4]byte{0, 200 / 4}, probe, ext)
	m := mustParse(t, IPv4, msg)
	if !bytes.Equal(m.Quote.Payload, payload) || !bytes.Equal(m.Extensions, ext) {
		t.Errorf("payload len %d, extensions % x", len(m.Quote.Payload), m.Extensions)
	}
	// Lie about the datagram length: the quote must still end where the
	// extensions start.
	binary.BigEndian.PutUint16(probe[2:4], 1500)
	msg = errorMsg(IPv4, 11, 0, [4]byte{0, 200 / 4}, probe, ext)
	m = mustParse(t, IPv4, msg)
	if len(m.Quote.Payload) != len(payload) || !m.Quote.Truncated {
		t.Errorf("lying length: payload len %d truncated %v", len(m.Quote.Payload), m.Quote.Truncated)
	}
}

func TestParseExtensionsErrors(t *testing.T) {
	good := extStruct(testObject{1, 1, mplsEntry(1, 0, true, 1)}, testObject{2, 0, nil})
	withLen := func(n uint16) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint16(b[4:6], n)
		b[2], b[3] = 0, 0
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"three bytes", []byte{0x20, 0, 0}, ErrTooShort},
		{"version 1", append([]byte{0x10}, good[1:]...), ErrMalformed},
		{"bad checksum", append(bytes.Clone(good[:3]), good[3]^0xff), ErrMalformed},
		{"object length 0", withLen(0), ErrMalformed},
		{"object length 3", withLen(3), ErrMalformed},
		{"object length past end", withLen(13), ErrMalformed},
		{"object length 0xffff", withLen(0xffff), ErrMalformed},
		{"stray bytes", append(withLen(8), 0, 0), ErrMalformed},
	}
	for _, tt := range tests {
		objs, err := ParseExtensions(tt.b)
		if !errors.Is(err, tt.want) || objs != nil {
			t.Errorf("%s: %v objects, err %v, want %v", tt.name, len(objs), err, tt.want)
		}
	}
	objs, err := ParseExtensions(good)
	if err != nil || len(objs) != 2 || objs[1].Class != 2 || len(objs[1].Data) != 0 {
		t.Fatalf("good: %+v %v", objs, err)
	}
	// With no checksum, every prefix either parses into objects that lie
	// inside it or fails cleanly.
	noSum := withLen(8)
	for n := range len(noSum) + 1 {
		objs, err := ParseExtensions(noSum[:n])
		if err != nil {
			if !errors.Is(err, ErrTooShort) && !errors.Is(err, ErrMalformed) {
				t.Errorf("prefix %d: unexpected error %v", n, err)
			}
			continue
		}
		total := extensionHeaderLen
		for _, o := range objs {
			total += objectHeaderLen + len(o.Data)
		}
		if total != n {
			t.Errorf("prefix %d: objects cover %d bytes", n, total)
		}
	}
}

func TestMPLSDecode(t *testing.T) {
	var data []byte
	want := []MPLSLabel{{0, 0, false, 0}, {1<<20 - 1, 7, true, 255}, {16, 5, false, 64}}
	for _, l := range want {
		data = append(data, mplsEntry(l.Label, l.TC, l.S, l.TTL)...)
	}
	got, ok := ExtensionObject{Class: 1, CType: 1, Data: data}.MPLS()
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("MPLS = %+v %v", got, ok)
	}
	for _, o := range []ExtensionObject{
		{Class: 1, CType: 2, Data: data},
		{Class: 2, CType: 1, Data: data},
		{Class: 1, CType: 1, Data: data[:5]},
		{Class: 1, CType: 1},
	} {
		if l, ok := o.MPLS(); ok || l != nil {
			t.Errorf("MPLS(%d/%d, %d bytes) = %v %v", o.Class, o.CType, len(o.Data), l, ok)
		}
	}
}

func TestInterfaceDecode(t *testing.T) {
	v4 := []byte{0, 1, 0, 0, 198, 18, 5, 1}
	name := []byte{8, 'e', 't', 'h', '0', 0, 0, 0}
	idx := []byte{0, 0, 0, 3}
	mtu := []byte{0, 0, 5, 0xdc}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name  string
		ctype uint8
		data  []byte
		ok    bool
		want  InterfaceInfo
	}{
		{"all", 0x0f, cat(idx, v4, name, mtu), true, InterfaceInfo{IfIndex: 3, Addr: routerAddr, Name: "eth0", MTU: 1500, HasIfIndex: true, HasMTU: true}},
		{"role 3 address only", 3<<6 | ifInfoIPAddr, v4, true, InterfaceInfo{Role: 3, Addr: routerAddr}},
		{"name only, full 64", ifInfoName, append([]byte{64}, bytes.Repeat([]byte{'n'}, 63)...), true, InterfaceInfo{Name: string(bytes.Repeat([]byte{'n'}, 63))}},
		{"nothing", 0, nil, true, InterfaceInfo{}},
		{"short ifindex", ifInfoIfIndex, idx[:3], false, InterfaceInfo{}},
		{"short address", ifInfoIPAddr, v4[:6], false, InterfaceInfo{}},
		{"unknown AFI", ifInfoIPAddr, []byte{0, 9, 0, 0, 1, 2, 3, 4}, false, InterfaceInfo{}},
		{"short IPv6", ifInfoIPAddr, []byte{0, 2, 0, 0, 1, 2, 3, 4}, false, InterfaceInfo{}},
		{"name length 0", ifInfoName, []byte{0, 0, 0, 0}, false, InterfaceInfo{}},
		{"name length 6", ifInfoName, []byte{6, 'a', 'b', 'c', 'd', 'e'}, false, InterfaceInfo{}},
		{"name length 68", ifInfoName, append([]byte{68}, make([]byte, 67)...), false, InterfaceInfo{}},
		{"name past end", ifInfoName, name[:5], false, InterfaceInfo{}},
		{"no name byte", ifInfoName, nil, false, InterfaceInfo{}},
		{"short MTU", ifInfoMTU, mtu[:2], false, InterfaceInfo{}},
	}
	for _, tt := range tests {
		got, ok := ExtensionObject{Class: 2, CType: tt.ctype, Data: tt.data}.Interface()
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: Interface = %+v %v, want %+v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
