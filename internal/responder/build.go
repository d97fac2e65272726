package responder

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/gping/gping/icmp"
)

var (
	// ErrNoAltSource is counted in Stats.SendErrors when an Action asks for WrongSource and
	// the Config has no alternative source for the family.
	ErrNoAltSource = errors.New("responder: no alternative source address for wrong-source answer")
	// ErrClosed is returned by waits on a closed Responder.
	ErrClosed = errors.New("responder: closed")
)

// Largest whole error messages: RFC 1812 section 4.3.2.3 (576 bytes of IPv4 datagram) and
// RFC 4443 section 2.4 (c) (the IPv6 minimum MTU).
const (
	maxError4 = 576 - 20
	maxError6 = 1280 - 40
)

// optRecordRoute is 40 bytes of IPv4 options: an empty Record Route (type 7, length 39, pointer
// 4, nine free slots) and End of Option List, the most a header can carry (IHL 15).
var optRecordRoute = func() [40]byte {
	var o [40]byte
	o[0], o[1], o[2] = 7, 39, 4
	return o
}()

// inbound is a received echo request with what answering and quoting it need.
type inbound struct {
	req Request
	msg []byte // the request's ICMP message, header included
	// IPv4 header fields as received, for quotes.
	tos  uint8
	ipID uint16
	frag uint16 // flags and fragment offset
}

// packet is one ICMP message ready to be written.
type packet struct {
	fam      icmp.Family
	src, dst netip.Addr
	msg      []byte
}

// answer builds the packet Action a sends in reply to in. alt is the family's alternative source.
func answer(a *Action, in *inbound, alt netip.Addr) (packet, error) {
	r := &in.req
	p := packet{fam: r.Family, src: r.Dst, dst: r.Src}
	if a.WrongSource {
		if !alt.IsValid() {
			return p, ErrNoAltSource
		}
		p.src = alt
	}
	switch a.Kind {
	case KindTimeExceeded, KindUnreachable:
		p.msg = errorMessage(a, in)
	default:
		payload := append([]byte(nil), r.Payload...)
		if a.Rewrite != nil {
			a.Rewrite(payload)
		}
		if a.CorruptPayload && len(payload) > 0 {
			payload[len(payload)-1] ^= 0xff
		}
		if a.Truncate > 0 {
			payload = payload[:len(payload)-min(a.Truncate, len(payload))]
		}
		id := r.ID
		if a.ForeignID {
			id ^= 0x5a5a
		}
		p.msg = icmp.AppendEchoReply(nil, r.Family, id, r.Seq, payload)
	}
	if a.BadChecksum && r.Family == icmp.IPv4 {
		// Any change of the checksum word by other than a multiple of 0xffff is detected.
		p.msg[2] ^= 0xff
	}
	return p, nil
}

// errorMessage builds a Time Exceeded or Destination Unreachable quoting the request in.
func errorMessage(a *Action, in *inbound) []byte {
	r := &in.req
	typ, code := uint8(11), uint8(0)
	if a.Kind == KindUnreachable {
		typ, code = 3, a.Code
	}
	limit := maxError4
	if r.Family == icmp.IPv6 {
		typ = 3
		if a.Kind == KindUnreachable {
			typ = 1
		}
		limit = maxError6
	}
	b := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	var opts []byte
	if a.Quote == QuoteOptions && r.Family == icmp.IPv4 {
		opts = optRecordRoute[:]
	}
	b = appendIPHeader(b, in, opts)
	quoted := in.msg
	if a.Quote == QuoteShort {
		quoted = quoted[:min(8, len(quoted))]
	}
	if room := limit - len(b); len(quoted) > room {
		quoted = quoted[:max(room, 0)]
	}
	b = append(b, quoted...)
	if len(a.Extensions) > 0 {
		// RFC 4884: the original datagram, zero-padded to 128 octets, its length in the header
		// (32-bit words for ICMPv4, 64-bit words for ICMPv6), then the extension structure.
		for len(b) < 8+128 {
			b = append(b, 0)
		}
		b = b[:8+128]
		if r.Family == icmp.IPv4 {
			b[5] = 128 / 4
		} else {
			b[4] = 128 / 8
		}
		b = append(b, a.Extensions...)
	}
	if r.Family == icmp.IPv4 {
		binary.BigEndian.PutUint16(b[2:], icmp.Checksum(b))
	}
	return b
}

// appendIPHeader appends the header request in was sent with, as a router would quote it: with
// opts (IPv4) inserted and the lengths adjusted to match.
func appendIPHeader(b []byte, in *inbound, opts []byte) []byte {
	r := &in.req
	ttl := uint8(max(r.TTL, 0))
	if r.Family == icmp.IPv6 {
		b = append(b, 6<<4, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(in.msg)))
		b = append(b, 58, ttl)
		src, dst := r.Src.As16(), r.Dst.As16()
		b = append(b, src[:]...)
		return append(b, dst[:]...)
	}
	start := len(b)
	hl := 20 + len(opts)
	b = append(b, 4<<4|byte(hl/4), in.tos)
	b = binary.BigEndian.AppendUint16(b, uint16(hl+len(in.msg)))
	b = binary.BigEndian.AppendUint16(b, in.ipID)
	b = binary.BigEndian.AppendUint16(b, in.frag)
	b = append(b, ttl, 1, 0, 0)
	src, dst := r.Src.As4(), r.Dst.As4()
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	b = append(b, opts...)
	binary.BigEndian.PutUint16(b[start+10:], icmp.Checksum(b[start:]))
	return b
}
