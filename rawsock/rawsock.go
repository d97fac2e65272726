package rawsock

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/gping/gping/icmp"
)

// Sentinel errors. Errors returned by this package wrap them, so test with errors.Is.
var (
	// ErrPermission is wrapped by the error Listen returns when the process may open neither
	// kind of ICMP socket. errors.Is(err, os.ErrPermission) is true for it as well.
	ErrPermission = fmt.Errorf("rawsock: %w", os.ErrPermission)
	// ErrInvalidFamily is returned for an icmp.Family other than IPv4 or IPv6.
	ErrInvalidFamily = errors.New("rawsock: invalid address family")
	// ErrInvalidAddr is returned for an address that is unset or of the wrong family.
	ErrInvalidAddr = errors.New("rawsock: invalid address")
	// ErrInvalidTTL is returned for a WriteOptions.TTL outside 0..255.
	ErrInvalidTTL = errors.New("rawsock: ttl out of range")
	// ErrInvalidMode is returned by ParseMode and for an unknown Mode or PMTU value.
	ErrInvalidMode = errors.New("rawsock: invalid mode")
	// ErrMalformed is returned by ReadPacket for a packet it cannot make sense of (a raw IPv4
	// packet without a valid IP header). It concerns that packet only: the Conn stays usable.
	ErrMalformed = errors.New("rawsock: malformed packet")
)

// Mode selects the kind of ICMP socket Listen opens. It is a plain value, safe for concurrent
// use.
type Mode uint8

const (
	// Auto tries an unprivileged datagram socket first and falls back to a raw socket.
	Auto Mode = iota
	// Privileged opens a raw socket (SOCK_RAW); it needs CAP_NET_RAW.
	Privileged
	// Unprivileged opens a datagram "ping" socket (SOCK_DGRAM); it needs the caller's group to
	// be inside net.ipv4.ping_group_range.
	Unprivileged
)

var modeNames = [...]string{Auto: "auto", Privileged: "raw", Unprivileged: "dgram"}

// String returns "auto", "raw" or "dgram", the names ParseMode accepts.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses the names String returns. It also accepts "privileged" and
// "unprivileged", case-insensitively.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "auto", "":
		return Auto, nil
	case "raw", "privileged":
		return Privileged, nil
	case "dgram", "datagram", "unprivileged":
		return Unprivileged, nil
	}
	return Auto, fmt.Errorf("%w: %q (want auto, raw or dgram)", ErrInvalidMode, s)
}

// PMTU is the path MTU discovery (don't-fragment) policy of a socket; the values mirror
// IP_PMTUDISC_* / IPV6_PMTUDISC_* (see ip(7) and ipv6(7)). It is a plain value, safe for
// concurrent use.
type PMTU uint8

const (
	PMTUDefault PMTU = iota // leave the kernel's default (sysctl net.ipv4.ip_no_pmtu_disc)
	PMTUDo                  // always set DF, never fragment locally: EMSGSIZE above the path MTU
	PMTUDont                // never set DF
	PMTUWant                // use the path MTU, fragment locally when the packet is larger
	PMTUProbe               // set DF but ignore the path MTU (probing)
)

// Config tunes Listen. Its zero value (and a nil *Config) means: Auto mode, kernel defaults for
// everything. Listen only reads it and does not keep it, so one Config may serve concurrent
// Listen calls.
type Config struct {
	Mode      Mode
	Source    netip.Addr // bind to this local address (zero: any)
	Interface string     // SO_BINDTODEVICE (empty: none)
	TOS       int        // IP_TOS / IPV6_TCLASS for every packet (0: default)
	Mark      uint32     // SO_MARK (0: none; needs CAP_NET_ADMIN)
	PMTU      PMTU
	// RecvBuffer is the receive buffer size in bytes (SO_RCVBUF; SO_RCVBUFFORCE is tried first so
	// that a privileged process may exceed net.core.rmem_max). 0: default.
	RecvBuffer int
	// SendOnly opens a raw socket (Auto means Privileged; Unprivileged is refused) that only
	// sends: it takes in no packet at all, so it neither costs the receive path more than a
	// filter check nor takes answers meant for the socket that reads them. It exists because
	// the kernel sends on one raw socket at a time: the socket is locked while a packet is
	// transmitted, which on a loopback or veth path includes building and delivering the
	// answer. Send-only sockets beside the reading one let several goroutines send at once.
	// A datagram socket cannot be one: its answers go to the socket that sent. A read from a
	// send-only socket returns only when it is closed.
	SendOnly bool
}

// WriteOptions are per-packet options of WriteTo. A nil *WriteOptions means socket defaults.
// WriteTo only reads it, so concurrent writers may share one.
type WriteOptions struct {
	// TTL is the IPv4 TTL or IPv6 hop limit of this packet, 1..255, sent as an IP_TTL /
	// IPV6_HOPLIMIT control message so that concurrent writers never disturb each other.
	// 0 means the socket default.
	TTL int
}

// Packet is what ReadPacket fills in. Data aliases the caller's buffer. A Packet is a plain
// value: it is not safe for concurrent use while ReadPacket fills it.
type Packet struct {
	Src netip.Addr // who sent it; for an error-queue packet: the offender (router) address
	// Dst is the local address the packet came to (IP_PKTINFO / IPV6_PKTINFO, or the raw IPv4
	// header); for an error-queue packet it is the destination of the original message.
	Dst     netip.Addr
	TTL     int       // received TTL / hop limit, -1 unknown
	Time    time.Time // kernel receive timestamp (SO_TIMESTAMPNS); zero if absent
	IfIndex int       // arrival interface, 0 unknown
	Data    []byte    // normal packet: the ICMP message, IPv4 header already stripped
	Dropped uint32    // SO_RXQ_OVFL counter value (cumulative kernel drops for this socket)
	// Port is set by UDPConn only: the sender's port, or for a queued error the original
	// destination port.
	Port uint16
	// Err is nil for normal packets. For an error-queue packet (datagram sockets only) it
	// describes the error, and Data is the ORIGINAL message we sent, from its ICMP header on.
	// Err points into the Packet itself, so reading a packet never allocates.
	Err *ExtendedErr

	ext ExtendedErr
}

// ExtendedErr is a queued socket error (struct sock_extended_err, see ip(7) IP_RECVERR). It is
// part of a Packet and shares its rules for concurrent use.
type ExtendedErr struct {
	Errno    syscall.Errno // ee_errno
	Origin   uint8         // SO_EE_ORIGIN_ICMP / ICMP6 / LOCAL
	Type     uint8         // ICMP type of the error, in the family's own numbering
	Code     uint8         // ICMP code of the error
	Info     uint32        // e.g. the MTU for fragmentation needed / packet too big
	Offender netip.Addr    // SO_EE_OFFENDER: the node that reported the error
}

// Error origins of ExtendedErr.Origin (SO_EE_ORIGIN_*).
const (
	OriginLocal = 1 // generated by the local stack, e.g. EMSGSIZE with PMTUDo
	OriginICMP  = 2 // an ICMPv4 error
	OriginICMP6 = 3 // an ICMPv6 error
)

// Conn is an ICMP socket of one family. It is safe for concurrent use: one goroutine may read
// (concurrent ReadPacket calls are serialized) while any number write.
type Conn struct {
	family icmp.Family
	mode   Mode
	id     uint16
	local  netip.Addr
	sys    sysConn
}

// Listen opens an ICMP socket of family f. cfg may be nil.
//
// In Auto mode it tries the datagram ("ping") socket first and falls back to a raw socket; see
// the package documentation for why. When neither can be opened it returns an error for which
// errors.Is(err, ErrPermission) and errors.Is(err, os.ErrPermission) are true and whose message
// names both remedies. Other errors (EAFNOSUPPORT when IPv6 is disabled, a bad Interface...) are
// *net.OpError values wrapping *os.SyscallError, returned as they are.
//
// The socket lives in the network namespace of the calling OS thread.
func Listen(f icmp.Family, cfg *Config) (*Conn, error) {
	if f != icmp.IPv4 && f != icmp.IPv6 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidFamily, uint8(f))
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Mode > Unprivileged {
		return nil, fmt.Errorf("%w: %d", ErrInvalidMode, uint8(cfg.Mode))
	}
	if cfg.SendOnly {
		if cfg.Mode == Unprivileged {
			return nil, fmt.Errorf("%w: a send-only socket must be raw", ErrInvalidMode)
		}
		c := *cfg
		c.Mode = Privileged
		cfg = &c
	}
	if cfg.PMTU > PMTUProbe {
		return nil, fmt.Errorf("%w: pmtu %d", ErrInvalidMode, uint8(cfg.PMTU))
	}
	if cfg.Source.IsValid() && !familyMatches(f, cfg.Source) {
		return nil, fmt.Errorf("%w: source %v is not %s", ErrInvalidAddr, cfg.Source, familyName(f))
	}
	return listen(f, cfg)
}

// Family reports the address family of the socket.
func (c *Conn) Family() icmp.Family { return c.family }

// Mode reports what was actually opened: Privileged (raw) or Unprivileged (datagram).
func (c *Conn) Mode() Mode { return c.mode }

// ID is, for a datagram socket, the echo identifier the kernel assigned (and writes into every
// echo request, whatever the caller put there); for a raw socket it is 0.
func (c *Conn) ID() uint16 { return c.id }

// LocalAddr is the address the socket is bound to: the unspecified address when bound to any.
func (c *Conn) LocalAddr() netip.Addr { return c.local }

// Close closes the socket. It unblocks ReadPacket, which then returns an error wrapping
// net.ErrClosed. Closing twice returns an error wrapping net.ErrClosed.
func (c *Conn) Close() error { return c.close() }

// WriteTo sends one ICMP message b (ICMP header onwards) to dst. opt may be nil.
//
// On a datagram socket the kernel overwrites the echo identifier with ID() and, for IPv6 on
// either kind of socket, computes the ICMPv6 checksum. Errors are *net.OpError values wrapping
// *os.SyscallError, so errors.Is(err, syscall.EHOSTUNREACH) (ENOBUFS, EPERM...) works.
func (c *Conn) WriteTo(b []byte, dst netip.Addr, opt *WriteOptions) error {
	return c.writeTo(b, dst, opt)
}

// Message is one packet of WriteBatch.
type Message struct {
	Data []byte // the ICMP message, header onwards, as WriteTo's b
	Dst  netip.Addr
	TTL  int // as WriteOptions.TTL
}

// WriteBatch sends msgs in order, as WriteTo would one by one, with as few sendmmsg(2) calls
// as it takes (1024 messages at most per call), and returns how many were sent. A non-nil error
// concerns msgs[n]: the messages before it were sent, those after it were not tried. Like
// WriteTo it blocks while the socket's send buffer is full. It keeps no reference to msgs.
func (c *Conn) WriteBatch(msgs []Message) (n int, err error) {
	return c.writeBatch(msgs)
}

// ReadPacket blocks until a packet or a queued error arrives, or the Conn is closed, and fills
// in p. Queued ICMP errors never surface as a read error: they are drained from the error queue
// and returned as packets with p.Err set. buf should hold at least 65536 bytes; a longer packet
// is truncated.
func (c *Conn) ReadPacket(buf []byte, p *Packet) error {
	return c.readPacket(buf, p)
}

func familyMatches(f icmp.Family, a netip.Addr) bool {
	if f == icmp.IPv4 {
		return a.Is4() || a.Is4In6()
	}
	return a.Is6() && !a.Is4In6()
}

func familyName(f icmp.Family) string {
	if f == icmp.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// netName is the Go network name used in *net.OpError.
func netName(f icmp.Family, m Mode) string {
	switch {
	case f == icmp.IPv4 && m == Privileged:
		return "ip4:icmp"
	case f == icmp.IPv4:
		return "udp4"
	case m == Privileged:
		return "ip6:ipv6-icmp"
	}
	return "udp6"
}

// permissionError is what Listen returns when the socket kinds it tried were all refused.
type permissionError struct {
	family icmp.Family
	binary string
	dgram  error // nil when not tried
	raw    error // nil when not tried
}

func (e *permissionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rawsock: permission denied opening an %s ICMP socket", familyName(e.family))
	var tried []string
	if e.dgram != nil {
		tried = append(tried, "datagram: "+e.dgram.Error())
	}
	if e.raw != nil {
		tried = append(tried, "raw: "+e.raw.Error())
	}
	fmt.Fprintf(&b, " (%s)", strings.Join(tried, "; "))
	bin := e.binary
	if bin == "" {
		bin = "BINARY"
	}
	var fixes []string
	if e.raw != nil {
		fixes = append(fixes, fmt.Sprintf("grant raw sockets with `setcap cap_net_raw+p %s`", bin))
	}
	if e.dgram != nil {
		fixes = append(fixes, "allow ping sockets for all groups with "+
			"`sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (it also governs IPv6 ping sockets)")
	}
	b.WriteString("; to fix, ")
	b.WriteString(strings.Join(fixes, ", or "))
	return b.String()
}

func (e *permissionError) Unwrap() []error {
	errs := []error{ErrPermission}
	for _, err := range []error{e.dgram, e.raw} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func newPermissionError(f icmp.Family, dgram, raw error) error {
	bin, err := os.Executable()
	if err != nil {
		bin = ""
	}
	return &permissionError{family: f, binary: bin, dgram: dgram, raw: raw}
}
