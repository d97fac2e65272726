package icmp

import (
	"net/netip"
	"testing"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func TestFamilyOf(t *testing.T) {
	tests := []struct {
		addr string
		want Family
	}{
		{"127.0.0.1", IPv4},
		{"198.18.0.1", IPv4},
		{"::ffff:127.0.0.1", IPv4},
		{"::1", IPv6},
		{"2001:db8::1", IPv6},
		{"fe80::1%lo", IPv6},
	}
	for _, tt := range tests {
		if got := FamilyOf(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("FamilyOf(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestFamilyNumbers(t *testing.T) {
	tests := []struct {
		f                      Family
		proto                  int
		str                    string
		request, reply         uint8
		requestKind, replyKind Kind
	}{
		{IPv4, 1, "IPv4", uint8(ipv4.ICMPTypeEcho), uint8(ipv4.ICMPTypeEchoReply), KindEchoRequest, KindEchoReply},
		{IPv6, 58, "IPv6", uint8(ipv6.ICMPTypeEchoRequest), uint8(ipv6.ICMPTypeEchoReply), KindEchoRequest, KindEchoReply},
	}
	for _, tt := range tests {
		if got := tt.f.Protocol(); got != tt.proto {
			t.Errorf("%v.Protocol() = %d, want %d", tt.f, got, tt.proto)
		}
		if got := tt.f.String(); got != tt.str {
			t.Errorf("String() = %q, want %q", got, tt.str)
		}
		if got := tt.f.EchoRequestType(); got != tt.request {
			t.Errorf("%v.EchoRequestType() = %d, want %d", tt.f, got, tt.request)
		}
		if got := tt.f.EchoReplyType(); got != tt.reply {
			t.Errorf("%v.EchoReplyType() = %d, want %d", tt.f, got, tt.reply)
		}
		if k := Classify(tt.f, tt.f.EchoRequestType()); k != tt.requestKind {
			t.Errorf("Classify(%v, request) = %v", tt.f, k)
		}
		if k := Classify(tt.f, tt.f.EchoReplyType()); k != tt.replyKind {
			t.Errorf("Classify(%v, reply) = %v", tt.f, k)
		}
	}
	if p := Family(5).Protocol(); p != 0 {
		t.Errorf("Family(5).Protocol() = %d, want 0", p)
	}
	if s := Family(5).String(); s != "Family(5)" {
		t.Errorf("Family(5).String() = %q", s)
	}
}

// TestClassify checks every type number of both families against the IANA
// constants of golang.org/x/net.
func TestClassify(t *testing.T) {
	v4 := map[ipv4.ICMPType]Kind{
		ipv4.ICMPTypeEchoReply:              KindEchoReply,
		ipv4.ICMPTypeEcho:                   KindEchoRequest,
		ipv4.ICMPTypeDestinationUnreachable: KindDestinationUnreachable,
		ipv4.ICMPTypeTimeExceeded:           KindTimeExceeded,
		ipv4.ICMPTypeParameterProblem:       KindParameterProblem,
	}
	v6 := map[ipv6.ICMPType]Kind{
		ipv6.ICMPTypeEchoReply:              KindEchoReply,
		ipv6.ICMPTypeEchoRequest:            KindEchoRequest,
		ipv6.ICMPTypeDestinationUnreachable: KindDestinationUnreachable,
		ipv6.ICMPTypeTimeExceeded:           KindTimeExceeded,
		ipv6.ICMPTypePacketTooBig:           KindPacketTooBig,
		ipv6.ICMPTypeParameterProblem:       KindParameterProblem,
	}
	for typ := range 256 {
		if got, want := Classify(IPv4, uint8(typ)), v4[ipv4.ICMPType(typ)]; got != want {
			t.Errorf("Classify(IPv4, %d) = %v, want %v", typ, got, want)
		}
		if got, want := Classify(IPv6, uint8(typ)), v6[ipv6.ICMPType(typ)]; got != want {
			t.Errorf("Classify(IPv6, %d) = %v, want %v", typ, got, want)
		}
		if got := Classify(Family(0), uint8(typ)); got != KindOther {
			t.Errorf("Classify(0, %d) = %v, want other", typ, got)
		}
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindOther; k <= KindParameterProblem; k++ {
		s := k.String()
		if s == "" || seen[s] {
			t.Errorf("Kind(%d).String() = %q: empty or duplicate", k, s)
		}
		seen[s] = true
	}
	if got := KindTimeExceeded.String(); got != "time exceeded" {
		t.Errorf("KindTimeExceeded.String() = %q", got)
	}
	if got := Kind(200).String(); got != "Kind(200)" {
		t.Errorf("Kind(200).String() = %q", got)
	}
}
