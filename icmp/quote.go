package icmp

import (
	"encoding/binary"
	"net/netip"
)

// Protocol numbers and IPv6 extension headers walked in quotes.
const (
	protocolICMPv4      = 1
	protocolICMPv6      = 58
	protocolTCP         = 6
	protocolUDP         = 17
	ipv4MinHeaderLen    = 20
	ipv4FragOffsetMask  = 0x1fff
	ipv6HeaderLen       = 40
	ipv6HopByHop        = 0
	ipv6Routing         = 43
	ipv6Fragment        = 44
	ipv6AuthHeader      = 51
	ipv6DestinationOpts = 60
	ipv6FragmentLen     = 8
	ipv6FragOffsetMask  = 0xfff8
)

// Quote is the invoking datagram quoted in an ICMP error message: its IP
// header and as much of its transport header and payload as the sender
// included. RFC 792 guarantees only the IP header and 8 octets; RFC 1812
// and RFC 4443 routers send more. Payload aliases the parsed buffer. A
// Quote is a plain value: it is not safe for concurrent use while
// ParseQuote writes to it, and safe to read concurrently afterwards.
type Quote struct {
	// Valid reports whether an IP header was parsed: Family, Src, Dst,
	// Protocol, TTL and TotalLen are meaningful only when it is true.
	Valid bool
	// Truncated reports that the quote ended before the end of the IP or
	// transport header or before the length stated in the IP header.
	// Quotes of 8 transport octets are normal, so it is usually true.
	Truncated bool
	Family    Family // from the quoted IP version nibble
	Src, Dst  netip.Addr
	// Protocol is the transport protocol. For IPv6 it is the one found
	// after walking the extension headers or, if the quote ends inside the
	// chain, the number of the extension header it ends in.
	Protocol uint8
	TTL      uint8  // quoted TTL or hop limit, as the datagram left the sender's last hop
	IPID     uint16 // IPv4 identification
	// TotalLen is the datagram length stated in the quoted header: IPv4
	// total length, IPv6 payload length plus 40.
	TotalLen int

	// Transport header fields; only those of Protocol are set, and only
	// those the quote reaches.
	ICMPType, ICMPCode uint8
	ICMPID, ICMPSeq    uint16
	ICMPChecksum       uint16
	SrcPort, DstPort   uint16 // UDP or TCP
	UDPChecksum        uint16
	TCPSeq             uint32
	// Payload holds the bytes after the transport header (after the IP
	// headers for other protocols), at most up to TotalLen so that RFC 4884
	// padding is excluded. It aliases the input and may be short or empty.
	Payload []byte
}

// ParseQuote parses a bare quoted datagram b, starting at its IP header,
// into q, overwriting every field. The IP version is taken from b itself,
// so an IPv4 datagram quoted in an ICMPv6 message (or the reverse) is
// decoded correctly. ParseQuote does not allocate and never panics; bad
// input only leaves q.Valid false or sets q.Truncated.
func ParseQuote(b []byte, q *Quote) {
	*q = Quote{}
	if len(b) == 0 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		parseQuoteV4(b, q)
	case 6:
		parseQuoteV6(b, q)
	}
}

func parseQuoteV4(b []byte, q *Quote) {
	if len(b) < ipv4MinHeaderLen {
		q.Truncated = true
		return
	}
	// The header length comes from the sender and must be bounds-checked
	// before use: FreeBSD's ping trusted it to copy a quoted header with
	// options into a fixed buffer (CVE-2022-23093).
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4MinHeaderLen {
		return
	}
	q.Valid = true
	q.Family = IPv4
	q.TotalLen = int(binary.BigEndian.Uint16(b[2:4]))
	q.IPID = binary.BigEndian.Uint16(b[4:6])
	fragOffset := binary.BigEndian.Uint16(b[6:8]) & ipv4FragOffsetMask
	q.TTL = b[8]
	q.Protocol = b[9]
	q.Src = netip.AddrFrom4([4]byte(b[12:16]))
	q.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	if ihl > len(b) {
		q.Truncated = true
		return
	}
	b = trimToStated(b, q.TotalLen, ihl, q)
	if fragOffset != 0 {
		// A non-first fragment carries no transport header.
		q.Payload = b[ihl:]
		return
	}
	parseTransport(b[ihl:], q)
}

func parseQuoteV6(b []byte, q *Quote) {
	if len(b) < ipv6HeaderLen {
		q.Truncated = true
		return
	}
	q.Valid = true
	q.Family = IPv6
	payloadLen := int(binary.BigEndian.Uint16(b[4:6]))
	q.TotalLen = payloadLen + ipv6HeaderLen
	q.Protocol = b[6]
	q.TTL = b[7]
	q.Src = netip.AddrFrom16([16]byte(b[8:24]))
	q.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	if payloadLen != 0 {
		// Zero means a jumbogram (RFC 2675), whose length is elsewhere.
		b = trimToStated(b, q.TotalLen, ipv6HeaderLen, q)
	}
	off := ipv6HeaderLen
	// Every extension header is at least 8 bytes long, so the walk ends
	// after at most len(b)/8 steps.
	for {
		switch q.Protocol {
		case ipv6HopByHop, ipv6Routing, ipv6DestinationOpts, ipv6AuthHeader:
			if len(b)-off < 2 {
				q.Truncated = true
				return
			}
			n := (int(b[off+1]) + 1) * 8
			if q.Protocol == ipv6AuthHeader {
				n = (int(b[off+1]) + 2) * 4 // RFC 4302: in 32-bit words, minus 2
			}
			if len(b)-off < n {
				q.Truncated = true
				return
			}
			q.Protocol = b[off]
			off += n
		case ipv6Fragment:
			if len(b)-off < ipv6FragmentLen {
				q.Truncated = true
				return
			}
			q.Protocol = b[off]
			fragOffset := binary.BigEndian.Uint16(b[off+2:off+4]) & ipv6FragOffsetMask
			off += ipv6FragmentLen
			if fragOffset != 0 {
				q.Payload = b[off:]
				return
			}
		default:
			parseTransport(b[off:], q)
			return
		}
	}
}

// trimToStated cuts b to the datagram length its header states, dropping
// the zero padding RFC 4884 adds and anything after the quote. A stated
// length beyond the data marks the quote truncated; one shorter than the
// header is nonsense (some stacks have quoted it byte-swapped) and ignored.
func trimToStated(b []byte, stated, hdrLen int, q *Quote) []byte {
	switch {
	case stated < hdrLen:
		return b
	case stated < len(b):
		return b[:stated]
	case stated > len(b):
		q.Truncated = true
	}
	return b
}

// parseTransport decodes the start of the quoted transport header t, using
// whatever prefix of it is present.
func parseTransport(t []byte, q *Quote) {
	switch q.Protocol {
	case protocolICMPv4, protocolICMPv6:
		if len(t) >= 2 {
			q.ICMPType, q.ICMPCode = t[0], t[1]
		}
		if len(t) >= 4 {
			q.ICMPChecksum = binary.BigEndian.Uint16(t[2:4])
		}
		if len(t) < 8 {
			q.Truncated = true
			return
		}
		q.ICMPID = binary.BigEndian.Uint16(t[4:6])
		q.ICMPSeq = binary.BigEndian.Uint16(t[6:8])
		q.Payload = t[8:]
	case protocolUDP:
		parsePorts(t, q)
		if len(t) < 8 {
			q.Truncated = true
			return
		}
		q.UDPChecksum = binary.BigEndian.Uint16(t[6:8])
		q.Payload = t[8:]
	case protocolTCP:
		parsePorts(t, q)
		if len(t) < 8 {
			q.Truncated = true
			return
		}
		q.TCPSeq = binary.BigEndian.Uint32(t[4:8])
		// The rest of the header (its length is at octet 12) is usually
		// beyond an 8-octet quote.
		if len(t) < 13 {
			q.Truncated = true
			return
		}
		off := int(t[12]>>4) * 4
		if off < 20 || off > len(t) {
			q.Truncated = off >= 20
			return
		}
		q.Payload = t[off:]
	default:
		q.Payload = t
	}
}

func parsePorts(t []byte, q *Quote) {
	if len(t) >= 4 {
		q.SrcPort = binary.BigEndian.Uint16(t[0:2])
		q.DstPort = binary.BigEndian.Uint16(t[2:4])
	}
}
