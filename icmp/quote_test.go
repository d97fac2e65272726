package icmp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func routerAlert() layers.IPv4Option {
	return layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}
}

// decodeV4 decodes a fixture with gopacket, as an independent reference.
func decodeV4(t *testing.T, b []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("gopacket: %v", e.Error())
	}
	return p
}

func TestQuoteUDP4(t *testing.T) {
	payload := []byte("traceroute probe")
	for _, withOpts := range []bool{false, true} {
		var opts []layers.IPv4Option
		if withOpts {
			opts = append(opts, routerAlert(), layers.IPv4Option{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}, layers.IPv4Option{OptionType: 0})
		}
		probe := udpProbe4(t, 3, 40001, 33435, payload, opts...)
		ref := decodeV4(t, probe)
		ip := ref.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp := ref.Layer(layers.LayerTypeUDP).(*layers.UDP)
		ihl := int(ip.IHL) * 4
		if withOpts && ihl <= 20 {
			t.Fatalf("fixture has no options: IHL %d", ip.IHL)
		}
		for _, tc := range []struct {
			name      string
			quote     []byte
			truncated bool
			payload   []byte
		}{
			{"rfc792 8 octets", probe[:ihl+8], true, []byte{}},
			{"cut inside udp", probe[:ihl+5], true, nil},
			{"full", probe, false, payload},
			{"rfc4884 padded", padQuote(probe, 128), false, payload},
		} {
			var q Quote
			ParseQuote(tc.quote, &q)
			if !q.Valid || q.Family != IPv4 || q.Truncated != tc.truncated {
				t.Errorf("opts=%v %s: valid %v family %v truncated %v", withOpts, tc.name, q.Valid, q.Family, q.Truncated)
			}
			if q.Src != probeSrc4 || q.Dst != probeDst4 || q.TTL != ip.TTL || q.IPID != ip.Id || q.Protocol != protocolUDP || q.TotalLen != int(ip.Length) {
				t.Errorf("opts=%v %s: ip fields %+v", withOpts, tc.name, q)
			}
			if q.SrcPort != uint16(udp.SrcPort) || q.DstPort != uint16(udp.DstPort) {
				t.Errorf("opts=%v %s: ports %d %d", withOpts, tc.name, q.SrcPort, q.DstPort)
			}
			if len(tc.quote) >= ihl+8 && q.UDPChecksum != udp.Checksum {
				t.Errorf("opts=%v %s: UDP checksum %#x, want %#x", withOpts, tc.name, q.UDPChecksum, udp.Checksum)
			}
			if !bytes.Equal(q.Payload, tc.payload) || (tc.payload == nil) != (q.Payload == nil) {
				t.Errorf("opts=%v %s: payload %q, want %q", withOpts, tc.name, q.Payload, tc.payload)
			}
		}
	}
}

// TestQuoteIHLBounds covers CVE-2022-23093: a quoted header length larger
// than the quote must not be trusted.
func TestQuoteIHLBounds(t *testing.T) {
	probe := udpProbe4(t, 1, 1111, 2222, nil)
	hdr := bytes.Clone(probe[:28])
	hdr[0] = 0x4f // IHL 15: 60 bytes of header claimed, 28 present
	var q Quote
	ParseQuote(hdr, &q)
	if !q.Valid || !q.Truncated || q.SrcPort != 0 || q.Payload != nil || q.Src != probeSrc4 {
		t.Errorf("IHL beyond quote: %+v", q)
	}
	// With all 40 option bytes present the transport header follows them.
	long := append(bytes.Clone(probe[:20]), make([]byte, 40)...)
	long[0] = 0x4f
	long = append(long, probe[20:28]...)
	ParseQuote(long, &q)
	if !q.Valid || q.SrcPort != 1111 || q.DstPort != 2222 {
		t.Errorf("IHL 15 with options present: %+v", q)
	}
	for ihl := range 5 {
		bad := bytes.Clone(probe)
		bad[0] = 0x40 | byte(ihl)
		ParseQuote(bad, &q)
		if q.Valid {
			t.Errorf("IHL %d accepted", ihl)
		}
	}
}

func TestQuoteTCPAndICMP4(t *testing.T) {
	tcp := tcpProbe4(t, 45000, 443, 0xdeadbeef)
	var q Quote
	ParseQuote(tcp[:28], &q)
	if q.Protocol != protocolTCP || q.SrcPort != 45000 || q.DstPort != 443 || q.TCPSeq != 0xdeadbeef || !q.Truncated {
		t.Errorf("8-octet TCP quote: %+v", q)
	}
	ParseQuote(tcp, &q)
	if q.TCPSeq != 0xdeadbeef || q.Truncated || q.Payload == nil || len(q.Payload) != 0 {
		t.Errorf("full TCP quote: %+v", q)
	}

	payload := AppendPayload(nil, 40, 77, 88)
	echo := echoProbe4(t, 2, 0x4242, 0x0007, payload)
	ref := decodeV4(t, echo).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	ParseQuote(echo, &q)
	if q.Protocol != protocolICMPv4 || q.ICMPType != 8 || q.ICMPCode != 0 || q.ICMPID != 0x4242 || q.ICMPSeq != 7 ||
		q.ICMPChecksum != ref.Checksum || !bytes.Equal(q.Payload, payload) || q.Truncated {
		t.Errorf("ICMP quote: %+v", q)
	}
	ParseQuote(echo[:24], &q)
	if q.ICMPType != 8 || q.ICMPChecksum != ref.Checksum || q.ICMPID != 0 || !q.Truncated {
		t.Errorf("ICMP quote cut at 4 octets: %+v", q)
	}
}

func TestQuoteFragments(t *testing.T) {
	probe := udpProbe4(t, 1, 1111, 2222, []byte("later fragment"))
	frag := bytes.Clone(probe)
	binary.BigEndian.PutUint16(frag[6:8], 0x2000|3) // MF, offset 24 bytes
	var q Quote
	ParseQuote(frag, &q)
	if !q.Valid || q.SrcPort != 0 || !bytes.Equal(q.Payload, probe[20:]) {
		t.Errorf("non-first IPv4 fragment parsed as UDP: %+v", q)
	}
	binary.BigEndian.PutUint16(frag[6:8], 0x2000) // first fragment
	ParseQuote(frag, &q)
	if q.SrcPort != 1111 {
		t.Errorf("first IPv4 fragment: %+v", q)
	}
}

func TestQuoteTotalLen(t *testing.T) {
	probe := udpProbe4(t, 1, 1, 2, []byte("abcd"))
	ext := extStruct(testObject{classMPLS, ctypeMPLSIncoming, mplsEntry(1, 0, true, 1)})
	// A caller handing ParseQuote a whole body must not get extension
	// bytes back as payload.
	body := append(padQuote(probe, 128), ext...)
	var q Quote
	ParseQuote(body, &q)
	if !bytes.Equal(q.Payload, []byte("abcd")) || q.Truncated {
		t.Errorf("extension bytes in quote: %q truncated %v", q.Payload, q.Truncated)
	}
	// Some stacks quote a mangled total length; one smaller than the
	// header is ignored rather than trusted.
	bogus := bytes.Clone(probe)
	binary.BigEndian.PutUint16(bogus[2:4], 8)
	ParseQuote(bogus, &q)
	if q.TotalLen != 8 || !bytes.Equal(q.Payload, []byte("abcd")) || q.Truncated {
		t.Errorf("bogus total length: %+v", q)
	}
}

func TestQuoteV6(t *testing.T) {
	payload := []byte("hop-by-hop quoted")
	for _, hbh := range []bool{false, true} {
		probe := echoProbe6(t, 1, 0x77, 0x99, payload, hbh)
		p := gopacket.NewPacket(probe, layers.LayerTypeIPv6, gopacket.Default)
		ref := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if hbh && p.Layer(layers.LayerTypeIPv6HopByHop) == nil {
			t.Fatal("fixture has no hop-by-hop header")
		}
		var q Quote
		ParseQuote(probe, &q)
		if !q.Valid || q.Family != IPv6 || q.Src != probeSrc6 || q.Dst != probeDst6 || q.TTL != 1 || q.TotalLen != len(probe) {
			t.Errorf("hbh=%v: ip fields %+v", hbh, q)
		}
		if q.Protocol != protocolICMPv6 || q.ICMPType != 128 || q.ICMPID != 0x77 || q.ICMPSeq != 0x99 || q.ICMPChecksum != ref.Checksum || !bytes.Equal(q.Payload, payload) || q.Truncated {
			t.Errorf("hbh=%v: icmp fields %+v", hbh, q)
		}
		ParseQuote(probe[:len(probe)-len(payload)-8+4], &q)
		if q.Protocol != protocolICMPv6 || !q.Truncated || q.ICMPType != 128 || q.ICMPID != 0 {
			t.Errorf("hbh=%v: cut transport %+v", hbh, q)
		}
	}
	udp := udpProbe6(t, 4, 5555, 33434, []byte("u"))
	var q Quote
	ParseQuote(udp, &q)
	if q.Protocol != protocolUDP || q.SrcPort != 5555 || q.DstPort != 33434 || q.TTL != 4 || string(q.Payload) != "u" {
		t.Errorf("UDP over IPv6: %+v", q)
	}
}

// v6Chain builds an IPv6 header followed by the given extension headers
// (each given as next-header-less bodies) and a UDP header.
func v6Chain(kinds []uint8, bodies [][]byte) []byte {
	udp := []byte{0x13, 0x88, 0x82, 0x9a, 0, 8, 0xab, 0xcd}
	var chain []byte
	for i, body := range bodies {
		next := uint8(protocolUDP)
		if i+1 < len(kinds) {
			next = kinds[i+1]
		}
		chain = append(chain, next)
		chain = append(chain, body...)
	}
	hdr := make([]byte, 40)
	hdr[0] = 0x60
	binary.BigEndian.PutUint16(hdr[4:6], uint16(len(chain)+len(udp)))
	hdr[6] = kinds[0]
	hdr[7] = 9
	copy(hdr[8:24], probeSrc6.AsSlice())
	copy(hdr[24:40], probeDst6.AsSlice())
	return append(append(hdr, chain...), udp...)
}

func TestQuoteV6ExtensionChain(t *testing.T) {
	hbh := []byte{0, 1, 4, 0, 0, 0, 0}                             // len 0: 8 bytes, PadN
	routing := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // len 1: 16 bytes
	dst := []byte{0, 1, 4, 0, 0, 0, 0}
	fragFirst := []byte{0, 0, 0, 0, 0, 0, 1}      // offset 0, id 1
	fragLater := []byte{0, 0, 0x10, 0, 0, 0, 1}   // offset 2 (x8)
	ah := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // payload len 1: 12 bytes
	kinds := []uint8{ipv6HopByHop, ipv6Routing, ipv6DestinationOpts, ipv6Fragment, ipv6AuthHeader}
	full := v6Chain(kinds, [][]byte{hbh, routing, dst, fragFirst, ah})
	var q Quote
	ParseQuote(full, &q)
	if q.Protocol != protocolUDP || q.SrcPort != 5000 || q.DstPort != 33434 || q.UDPChecksum != 0xabcd || q.Truncated {
		t.Fatalf("extension chain: %+v", q)
	}
	for n := 40; n < len(full); n++ {
		ParseQuote(full[:n], &q)
		if !q.Valid || !q.Truncated || q.Src != probeSrc6 {
			t.Fatalf("chain cut at %d: %+v", n, q)
		}
		if n < len(full)-8 && (q.Protocol == protocolUDP || q.SrcPort != 0) {
			t.Fatalf("chain cut at %d inside extension headers reports transport %+v", n, q)
		}
	}
	later := v6Chain([]uint8{ipv6Fragment}, [][]byte{fragLater})
	ParseQuote(later, &q)
	if q.Protocol != protocolUDP || q.SrcPort != 0 || len(q.Payload) != 8 {
		t.Errorf("non-first IPv6 fragment parsed as UDP: %+v", q)
	}
}

func TestQuoteGarbage(t *testing.T) {
	var q Quote
	for _, b := range [][]byte{nil, {0x45}, {0x50, 1, 2, 3}, bytes.Repeat([]byte{0x60}, 39), bytes.Repeat([]byte{0xff}, 100)} {
		ParseQuote(b, &q)
		if q.Valid || q.Src.IsValid() || q.Payload != nil {
			t.Errorf("ParseQuote(% x) = %+v", b, q)
		}
	}
	q.Src = netip.MustParseAddr("192.0.2.1")
	ParseQuote(nil, &q)
	if q.Src.IsValid() {
		t.Error("ParseQuote left a stale address")
	}
}
