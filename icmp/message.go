package icmp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by Parse and ParseExtensions, wrapped with detail; test
// for them with errors.Is.
var (
	ErrTooShort  = errors.New("icmp: message too short")
	ErrMalformed = errors.New("icmp: malformed message")
)

const (
	headerLen          = 8 // every message decoded here has an 8-byte header
	rfc4884MinQuoteLen = 128
	maxInt32           = 1<<31 - 1
)

// Message is one decoded ICMP or ICMPv6 message. Its slices alias the
// buffer given to Parse. A Message is a plain value: it is not safe for
// concurrent use while Parse writes to it, and safe to read concurrently
// afterwards.
type Message struct {
	Family     Family
	Kind       Kind
	Type, Code uint8
	// ChecksumOK is verified here for IPv4. For IPv6 it is always true:
	// the checksum covers a pseudo-header this package does not see, and
	// the kernel drops raw ICMPv6 packets with a bad checksum.
	ChecksumOK bool
	ID, Seq    uint16 // echo request and reply only
	Payload    []byte // echo data, aliases the input
	// MTU is the next-hop MTU of an IPv4 fragmentation-needed message
	// (RFC 1191) or of an IPv6 packet too big message (RFC 8201), 0 if
	// absent.
	MTU int
	// Pointer is the offset of the offending octet of a parameter problem
	// message.
	Pointer int
	// Quote is the invoking datagram of an error message; Quote.Valid says
	// whether one was parsed.
	Quote Quote
	// Extensions is the RFC 4884 extension structure (header and objects,
	// aliasing the input) of an error message, nil if none. Decode it with
	// ParseExtensions.
	Extensions []byte
}

// Parse decodes the ICMP message b of family f into m, overwriting every
// field. b starts at the ICMP header: raw sockets deliver IPv4 packets with
// their IP header, which the caller strips first.
//
// Parse returns an error wrapping ErrTooShort when b cannot hold the header
// of its type, and one wrapping ErrMalformed when f is neither IPv4 nor
// IPv6. A bad checksum is not an error (see Message.ChecksumOK), nor is a
// missing, truncated or odd quote (see Quote.Valid and Quote.Truncated).
// Parse does not allocate and never panics.
func Parse(f Family, b []byte, m *Message) error {
	*m = Message{Family: f}
	if f != IPv4 && f != IPv6 {
		return fmt.Errorf("%w: unknown family %d", ErrMalformed, uint8(f))
	}
	if len(b) < 4 {
		return fmt.Errorf("%w: %d bytes, need at least 4", ErrTooShort, len(b))
	}
	m.Type, m.Code = b[0], b[1]
	m.Kind = Classify(f, m.Type)
	m.ChecksumOK = f == IPv6 || Checksum(b) == 0
	if m.Kind == KindOther {
		return nil
	}
	if len(b) < headerLen {
		return fmt.Errorf("%w: %v %v with %d bytes, need %d", ErrTooShort, f, m.Kind, len(b), headerLen)
	}
	switch m.Kind {
	case KindEchoReply, KindEchoRequest:
		m.ID = binary.BigEndian.Uint16(b[4:6])
		m.Seq = binary.BigEndian.Uint16(b[6:8])
		m.Payload = b[headerLen:]
		return nil
	case KindPacketTooBig:
		m.MTU = clampInt(binary.BigEndian.Uint32(b[4:8]))
	case KindParameterProblem:
		if f == IPv4 {
			m.Pointer = int(b[4])
		} else {
			m.Pointer = clampInt(binary.BigEndian.Uint32(b[4:8]))
		}
	case KindDestinationUnreachable:
		if f == IPv4 && m.Code == codeV4FragNeeded {
			m.MTU = int(binary.BigEndian.Uint16(b[6:8]))
		}
	}
	quote, ext := splitBody(f, m.Kind, b)
	m.Extensions = ext
	ParseQuote(quote, &m.Quote)
	return nil
}

// clampInt converts a 32-bit wire value to int without going negative on
// 32-bit platforms.
func clampInt(v uint32) int {
	if v > maxInt32 {
		return maxInt32
	}
	return int(v)
}

// splitBody splits the body of an error message (after its 8-byte header)
// into the quoted datagram and the RFC 4884 extension structure, if any.
func splitBody(f Family, k Kind, b []byte) (quote, ext []byte) {
	body := b[headerLen:]
	var length int
	switch {
	case f == IPv4:
		// Octet 5, in 32-bit words, for unreachable, time exceeded and
		// parameter problem (RFC 4884).
		length = 4 * int(b[5])
	case f == IPv6 && (k == KindDestinationUnreachable || k == KindTimeExceeded):
		// Octet 4, in 64-bit words; RFC 4884 gives ICMPv6 parameter
		// problem and packet too big no length field.
		length = 8 * int(b[4])
	default:
		return body, nil
	}
	if length != 0 {
		// A compliant sender pads the quote to at least 128 octets; a
		// length that is shorter or points past the end is not RFC 4884,
		// so nothing in the body can be trusted to be an extension.
		if length < rfc4884MinQuoteLen || length > len(body) {
			return body, nil
		}
		if rest := body[length:]; len(rest) >= extensionHeaderLen && rest[0]>>4 == extensionVersion {
			return body[:length], rest
		}
		return body[:length], nil
	}
	// Routers predating RFC 4884 append extensions after a 128-octet
	// quote without setting the length.
	// Accept them, as traceroute does, only when a checksummed version-2
	// header is found there, since the field may just be datagram bytes.
	if len(body) >= rfc4884MinQuoteLen+extensionHeaderLen {
		rest := body[rfc4884MinQuoteLen:]
		if rest[0]>>4 == extensionVersion && binary.BigEndian.Uint16(rest[2:4]) != 0 && Checksum(rest) == 0 {
			return body[:rfc4884MinQuoteLen], rest
		}
	}
	return body, nil
}
