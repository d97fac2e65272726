package responder

import (
	"net/netip"
	"time"

	"github.com/gping/gping/icmp"
)

// Kind is what an Action sends. It is a plain value, safe for concurrent use.
type Kind uint8

const (
	// KindEcho sends an echo reply: the zero value, so the zero Action is a normal reply.
	KindEcho Kind = iota
	// KindDrop sends nothing.
	KindDrop
	// KindTimeExceeded sends a Time Exceeded (code 0) quoting the request.
	KindTimeExceeded
	// KindUnreachable sends a Destination Unreachable with Action.Code quoting the request.
	KindUnreachable
)

// Quote selects how much of the request an ICMP error quotes. It is a plain value, safe for
// concurrent use.
type Quote uint8

const (
	// QuoteLong quotes the whole request, up to what fits in 576 (IPv4) or 1280 (IPv6) bytes.
	QuoteLong Quote = iota
	// QuoteShort quotes the IP header and the first 8 octets of the ICMP message only.
	QuoteShort
	// QuoteOptions (IPv4) quotes a header carrying 40 bytes of options (an empty Record Route,
	// IHL 15) and the whole request; on IPv6 it is QuoteLong.
	QuoteOptions
)

// Limits that keep a script from making the responder's memory grow without bound.
const (
	MaxActions = 16   // actions per request; further ones are ignored
	MaxCopies  = 64   // Action.Copies is clamped to this
	MaxDelayed = 4096 // answers waiting on a Delay timer; further delayed answers are dropped
	// DefaultMaxLog is Config.MaxLog when it is 0.
	DefaultMaxLog = 1 << 16
)

// Action is one answer to a request: one packet, plus Copies identical ones. A Script returns a
// list of them, each sent independently, so {Normal(), Delay(d)} answers at once and again
// later. The zero Action is a normal echo reply. Fields combine: an Action with Delay and
// CorruptPayload sends a corrupted reply late. An Action is a plain value; Rewrite, if set, is
// called on the reader goroutine of the request's family.
type Action struct {
	Kind  Kind
	Code  uint8 // Destination Unreachable code (KindUnreachable)
	Quote Quote // how errors quote the request
	// Extensions, if set on an error, is an RFC 4884 extension structure (header and objects)
	// appended after the quote, which is padded to the 128 octets RFC 4884 asks for and
	// announced in the length field.
	Extensions []byte

	Copies int           // extra identical copies sent right after the packet
	Delay  time.Duration // send this long after the request arrived (time.AfterFunc)
	// Reorder holds the answer back and sends it right after the answers to the next request of
	// the same family. An answer still held at Close is discarded. Delay takes precedence.
	Reorder bool

	// CorruptPayload flips the last byte of the echoed payload (with the iputils fill pattern
	// that byte lies past the 16-byte probe header when the payload is longer than 16 bytes).
	// The checksum is computed afterwards, so only the payload is wrong.
	CorruptPayload bool
	// BadChecksum sends the packet with a wrong ICMP checksum (IPv4 only, see package doc).
	BadChecksum bool
	// WrongSource sends the packet from Config.AltSource4 / AltSource6 instead of the address
	// the request was sent to.
	WrongSource bool
	// Truncate cuts this many bytes off the end of the echoed payload (all of it if larger).
	Truncate int
	// ForeignID answers with another echo identifier than the request's.
	ForeignID bool
	// Rewrite, if set, edits a copy of the echoed payload before CorruptPayload and Truncate,
	// for example to put an older 64-bit sequence in the probe header.
	Rewrite func(payload []byte)
}

// Normal is a plain echo reply.
func Normal() Action { return Action{} }

// Drop answers nothing.
func Drop() Action { return Action{Kind: KindDrop} }

// Duplicate is a reply followed by n identical copies.
func Duplicate(n int) Action { return Action{Copies: n} }

// Delay is a reply sent d after the request arrived.
func Delay(d time.Duration) Action { return Action{Delay: d} }

// Reorder is a reply held back until the next request of its family has been answered.
func Reorder() Action { return Action{Reorder: true} }

// CorruptPayload is a reply with one payload byte flipped and a correct checksum.
func CorruptPayload() Action { return Action{CorruptPayload: true} }

// BadChecksum is a reply with a wrong ICMP checksum (IPv4 only).
func BadChecksum() Action { return Action{BadChecksum: true} }

// WrongSource is a reply from the configured alternative source address.
func WrongSource() Action { return Action{WrongSource: true} }

// Truncate is a reply whose payload lacks its last n bytes.
func Truncate(n int) Action { return Action{Truncate: n} }

// ForeignID is a reply carrying another echo identifier.
func ForeignID() Action { return Action{ForeignID: true} }

// TimeExceeded is a Time Exceeded (TTL exceeded in transit) quoting the request as q says.
func TimeExceeded(q Quote) Action { return Action{Kind: KindTimeExceeded, Quote: q} }

// Unreachable is a Destination Unreachable with the given code quoting the request as q says.
func Unreachable(code uint8, q Quote) Action {
	return Action{Kind: KindUnreachable, Code: code, Quote: q}
}

// Request is one echo request the responder received. In the log Payload is nil.
type Request struct {
	N        int // arrival order from 0, over both families
	Family   icmp.Family
	Src, Dst netip.Addr // Dst: the responder's address the request was sent to
	ID, Seq  uint16
	Len      int // payload bytes after the 8-byte ICMP header
	TTL      int // TTL / hop limit as received, -1 if unknown
	Time     time.Time
	// Payload is the echo payload. It is valid only during the Script call.
	Payload []byte
}

// Script decides the answers to request number n (counted from 0 over both families). It is
// called on the reader goroutine of the request's family, so possibly concurrently with itself
// when both families are in use, and must not block. A nil or empty result answers nothing.
type Script func(n int, req *Request) []Action

// Always is a Script that answers every request with the same actions.
func Always(acts ...Action) Script {
	return func(int, *Request) []Action { return acts }
}
