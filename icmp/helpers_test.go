package icmp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Fixture addresses: documentation and benchmarking ranges only.
var (
	probeSrc4  = netip.MustParseAddr("198.18.0.1")
	probeDst4  = netip.MustParseAddr("198.19.7.9")
	probeSrc6  = netip.MustParseAddr("2001:db8::1")
	probeDst6  = netip.MustParseAddr("2001:db8:77::9")
	routerAddr = netip.MustParseAddr("198.18.5.1")
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

func ipv4Layer(proto layers.IPProtocol, ttl uint8, id uint16, opts ...layers.IPv4Option) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, TTL: ttl, Id: id, Protocol: proto, Options: opts,
		SrcIP: net.IP(probeSrc4.AsSlice()), DstIP: net.IP(probeDst4.AsSlice()),
	}
}

func ipv6Layer(next layers.IPProtocol, hop uint8) *layers.IPv6 {
	return &layers.IPv6{
		Version: 6, HopLimit: hop, NextHeader: next,
		SrcIP: net.IP(probeSrc6.AsSlice()), DstIP: net.IP(probeDst6.AsSlice()),
	}
}

// udpProbe4 is a traceroute-style UDP probe datagram.
func udpProbe4(t testing.TB, ttl uint8, sport, dport uint16, payload []byte, opts ...layers.IPv4Option) []byte {
	ip := ipv4Layer(layers.IPProtocolUDP, ttl, 0x1234, opts...)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

func tcpProbe4(t testing.TB, sport, dport uint16, seq uint32) []byte {
	ip := ipv4Layer(layers.IPProtocolTCP, 3, 0x4321)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, SYN: true, Window: 1024}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, tcp)
}

func echoProbe4(t testing.TB, ttl uint8, id, seq uint16, payload []byte) []byte {
	ip := ipv4Layer(layers.IPProtocolICMPv4, ttl, 0x0101)
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: id, Seq: seq}
	return serialize(t, ip, ic, gopacket.Payload(payload))
}

// echoProbe6 is an ICMPv6 echo request, optionally behind a hop-by-hop
// header with a router alert option.
func echoProbe6(t testing.TB, hop uint8, id, seq uint16, payload []byte, hbh bool) []byte {
	ip := ipv6Layer(layers.IPProtocolICMPv6, hop)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
	if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	echo := &layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}
	ls := []gopacket.SerializableLayer{ip}
	if hbh {
		h := &layers.IPv6HopByHop{}
		h.NextHeader = layers.IPProtocolICMPv6
		h.Options = []*layers.IPv6HopByHopOption{
			{OptionType: 5, OptionData: []byte{0, 0}}, // router alert
			{OptionType: 1, OptionData: []byte{}},     // PadN to 8 bytes
		}
		ip.HopByHop = h
	}
	ls = append(ls, ic, echo, gopacket.Payload(payload))
	return serialize(t, ls...)
}

func udpProbe6(t testing.TB, hop uint8, sport, dport uint16, payload []byte) []byte {
	ip := ipv6Layer(layers.IPProtocolUDP, hop)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

// errorMsg builds an ICMP error message by hand: type, code, the four
// type-specific octets, the quote, then ext. The IPv4 checksum is set.
func errorMsg(f Family, typ, code uint8, word [4]byte, quote, ext []byte) []byte {
	b := []byte{typ, code, 0, 0, word[0], word[1], word[2], word[3]}
	b = append(b, quote...)
	b = append(b, ext...)
	if f == IPv4 {
		c := Checksum(b)
		binary.BigEndian.PutUint16(b[2:4], c)
	}
	return b
}

// padQuote zero-pads q to n bytes, as RFC 4884 senders do.
func padQuote(q []byte, n int) []byte {
	out := make([]byte, max(n, len(q)))
	copy(out, q)
	return out
}

type testObject struct {
	class, ctype uint8
	data         []byte
}

// extStruct builds an RFC 4884 extension structure with a correct
// checksum.
func extStruct(objs ...testObject) []byte {
	b := []byte{extensionVersion << 4, 0, 0, 0}
	for _, o := range objs {
		b = binary.BigEndian.AppendUint16(b, uint16(objectHeaderLen+len(o.data)))
		b = append(b, o.class, o.ctype)
		b = append(b, o.data...)
	}
	binary.BigEndian.PutUint16(b[2:4], Checksum(b))
	return b
}

func mplsEntry(label uint32, tc uint8, s bool, ttl uint8) []byte {
	v := label<<12 | uint32(tc&7)<<9 | uint32(ttl)
	if s {
		v |= 0x100
	}
	return binary.BigEndian.AppendUint32(nil, v)
}

// mustParse parses b and fails the test on error.
func mustParse(t testing.TB, f Family, b []byte) Message {
	t.Helper()
	var m Message
	if err := Parse(f, b, &m); err != nil {
		t.Fatalf("Parse(%v, % x): %v", f, b, err)
	}
	return m
}
