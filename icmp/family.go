package icmp

import (
	"net/netip"
	"strconv"
)

// Family is an IP version, used to select ICMP (IPv4) or ICMPv6 (IPv6).
// It is a plain value and safe for concurrent use.
type Family uint8

// The two families. The values are the IP version numbers, so a quoted
// datagram's version nibble converts directly.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// FamilyOf returns the family used to reach a: IPv4 for IPv4 and
// IPv4-mapped IPv6 addresses (which the kernel sends as IPv4), else IPv6.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// Protocol returns the IANA protocol number of ICMP for f: 1 for IPv4,
// 58 for IPv6, 0 for any other value.
func (f Family) Protocol() int {
	switch f {
	case IPv4:
		return 1
	case IPv6:
		return 58
	}
	return 0
}

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// EchoRequestType returns the echo request type number: 8 for IPv4, 128
// for IPv6, 0 for any other value.
func (f Family) EchoRequestType() uint8 {
	switch f {
	case IPv4:
		return typeV4EchoRequest
	case IPv6:
		return typeV6EchoRequest
	}
	return 0
}

// EchoReplyType returns the echo reply type number: 0 for IPv4, 129 for
// IPv6, 0 for any other value.
func (f Family) EchoReplyType() uint8 {
	if f == IPv6 {
		return typeV6EchoReply
	}
	return typeV4EchoReply
}

// Kind is the family-neutral meaning of an ICMP type, so that callers can
// handle IPv4 and IPv6 with one piece of code. It is a plain value and safe
// for concurrent use.
type Kind uint8

// Message kinds. KindOther covers every type this package does not decode
// beyond its header (router advertisements, neighbor discovery, ...).
const (
	KindOther Kind = iota
	KindEchoReply
	KindEchoRequest
	KindDestinationUnreachable
	KindTimeExceeded
	KindPacketTooBig
	KindParameterProblem
)

var kindNames = [...]string{
	KindOther:                  "other",
	KindEchoReply:              "echo reply",
	KindEchoRequest:            "echo request",
	KindDestinationUnreachable: "destination unreachable",
	KindTimeExceeded:           "time exceeded",
	KindPacketTooBig:           "packet too big",
	KindParameterProblem:       "parameter problem",
}

// String returns a lowercase description such as "time exceeded".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Type numbers from RFC 792 and RFC 4443.
const (
	typeV4EchoReply    = 0
	typeV4DestUnreach  = 3
	typeV4EchoRequest  = 8
	typeV4TimeExceeded = 11
	typeV4ParamProblem = 12
	codeV4FragNeeded   = 4
	typeV6DestUnreach  = 1
	typeV6PacketTooBig = 2
	typeV6TimeExceeded = 3
	typeV6ParamProblem = 4
	typeV6EchoRequest  = 128
	typeV6EchoReply    = 129
)

// Classify returns the kind of ICMP type typ in family f. IPv4 type 3
// code 4 (fragmentation needed) is KindDestinationUnreachable, as on the
// wire; Parse reports its MTU in Message.MTU.
func Classify(f Family, typ uint8) Kind {
	switch f {
	case IPv4:
		switch typ {
		case typeV4EchoReply:
			return KindEchoReply
		case typeV4EchoRequest:
			return KindEchoRequest
		case typeV4DestUnreach:
			return KindDestinationUnreachable
		case typeV4TimeExceeded:
			return KindTimeExceeded
		case typeV4ParamProblem:
			return KindParameterProblem
		}
	case IPv6:
		switch typ {
		case typeV6EchoReply:
			return KindEchoReply
		case typeV6EchoRequest:
			return KindEchoRequest
		case typeV6DestUnreach:
			return KindDestinationUnreachable
		case typeV6TimeExceeded:
			return KindTimeExceeded
		case typeV6PacketTooBig:
			return KindPacketTooBig
		case typeV6ParamProblem:
			return KindParameterProblem
		}
	}
	return KindOther
}
