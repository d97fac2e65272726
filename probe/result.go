package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/gping/gping/icmp"
)

var (
	// ErrTimeout is the error of a probe whose Timeout passed with no reply.
	ErrTimeout = errors.New("probe: timeout")
	// ErrClosed is the error of probes still pending when the Engine was closed, and of calls
	// made after Close.
	ErrClosed = errors.New("probe: engine closed")
	// ErrICMP is wrapped by the error of a probe answered by an ICMP error message.
	ErrICMP = errors.New("probe: icmp error")
	// ErrInvalidAddr is returned for a zero or unspecified destination.
	ErrInvalidAddr = errors.New("probe: invalid destination address")
	// ErrSize is returned for a payload size outside what one datagram can carry.
	ErrSize = errors.New("probe: payload size out of range")
	// ErrBusy is returned when every 16-bit sequence towards one destination is in flight.
	ErrBusy = errors.New("probe: no free sequence number for destination")
)

// Outcome says how a probe, or one packet caused by it, ended.
type Outcome uint8

const (
	// Reply: the first echo reply to the probe.
	Reply Outcome = iota + 1
	// Duplicate: a further reply to a probe that was already answered.
	Duplicate
	// ICMPError: the probe was answered by an ICMP error (unreachable, time exceeded, packet
	// too big, parameter problem), or the kernel reported a local error for it.
	ICMPError
	// Timeout: the probe's Timeout passed with no answer.
	Timeout
	// Canceled: the probe was given up before its Timeout (context canceled or Engine closed).
	Canceled
	// Late: an answer to an unanswered probe that came after its Timeout (within one more
	// Timeout, while the engine still remembers the probe). The probe itself ended earlier, as Timeout, Reply or
	// ICMPError; a late answer changes nothing of that.
	Late
)

func (o Outcome) String() string {
	switch o {
	case Reply:
		return "reply"
	case Duplicate:
		return "duplicate"
	case ICMPError:
		return "icmp-error"
	case Timeout:
		return "timeout"
	case Canceled:
		return "canceled"
	case Late:
		return "late"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Result describes one outcome of one probe. A probe yields exactly one of Reply, ICMPError,
// Timeout or Canceled; after a Reply or ICMPError any number of Duplicates until its Timeout;
// and, if it was unanswered, any number of Late answers for one more Timeout.
type Result struct {
	Outcome Outcome
	Dst     netip.Addr // the probe's destination
	Seq     uint64     // engine sequence number; the ICMP sequence on the wire is uint16(Seq)
	Tag     uint64     // the probe's Request.Tag
	From    netip.Addr // who answered: the replying host or the router that sent the error
	TTL     int        // TTL / hop limit of the answer as received, -1 if unknown
	Size    int        // bytes of the ICMP answer (header included), as ping prints them
	RTT     time.Duration
	Sent    time.Time // monotonic send time
	// ICMPError details: the family-neutral Kind, the raw Type and Code, the MTU of a packet-too-
	// big or fragmentation-needed message, and Errno for errors the local kernel raised itself
	// (for example EMSGSIZE), in which case From is the local host.
	Kind       icmp.Kind
	Type, Code uint8
	MTU        int
	Errno      syscall.Errno
	// Extensions is the RFC 4884 extension structure of an ICMP error, for icmp.ParseExtensions
	// (MPLS label stacks, interface information); nil when the error had none, and always on
	// datagram sockets, whose error queue does not pass it on.
	Extensions []byte
	// Corrupted is set on a reply whose payload differs from the request's.
	Corrupted bool
	// Err is the reason for a Canceled outcome (ErrClosed or the context's error).
	Err error
}

// Error returns nil for Reply and Duplicate, ErrTimeout for Timeout, an *ICMPErr for ICMPError
// and the cancellation cause for Canceled.
func (r *Result) Error() error {
	switch r.Outcome {
	case Reply, Duplicate, Late:
		return nil
	case Timeout:
		return ErrTimeout
	case ICMPError:
		return &ICMPErr{Family: icmp.FamilyOf(r.Dst), From: r.From, Kind: r.Kind, Type: r.Type, Code: r.Code, MTU: r.MTU, Errno: r.Errno}
	}
	if r.Err != nil {
		return r.Err
	}
	return ErrClosed
}

// ICMPErr is the error of a probe answered by an ICMP error. errors.Is(err, ErrICMP) is true.
type ICMPErr struct {
	Family     icmp.Family
	From       netip.Addr
	Kind       icmp.Kind
	Type, Code uint8
	MTU        int
	Errno      syscall.Errno
}

func (e *ICMPErr) Error() string {
	s := fmt.Sprintf("probe: %s from %s (type %d code %d)", e.Kind, e.From, e.Type, e.Code)
	if e.MTU > 0 {
		s += fmt.Sprintf(" mtu %d", e.MTU)
	}
	if e.Errno != 0 {
		s += ": " + e.Errno.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrICMP) true.
func (e *ICMPErr) Is(target error) bool { return target == ErrICMP }
