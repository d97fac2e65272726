package rawsock

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gping/gping/icmp"
)

// TCP probing (RFC 9293) comes in two kinds, as in traceroute's tcp and tcpconn methods.
//
// With CAP_NET_RAW, TCPRawConn sends SYN segments the caller builds, from a port it holds with
// ReserveTCPPort, and sees every TCP segment that reaches the host; the ICMP errors the SYNs
// draw arrive on an ICMP Conn like those of any other probe. This keeps the five-tuple of every
// probe of a trace fixed (the sequence number tells them apart) and needs one socket per
// family, whatever the number of probes.
//
// Without privilege, TCPProbe makes one non-blocking connect per probe with the TTL set on the
// socket, and reads the ICMP error that ends it from the socket error queue (IP_RECVERR,
// ip(7)): the kernel fails a connect in SYN-SENT on any ICMP error for it (tcp_v4_err,
// tcp_v6_err) and, with IP_RECVERR on, first queues the error with the offender's address.

// RouteSource returns the source address the kernel would pick to reach dst, by connecting a
// UDP socket (no packet is sent). cfg may be nil; its Source (returned as is when set),
// Interface (SO_BINDTODEVICE) and Mark (SO_MARK, which policy routing may match) are honoured.
// The lookup happens in the network namespace of the calling OS thread.
//
// A caller of TCPRawConn needs it for the IPv4 TCP checksum, whose pseudo-header (RFC 9293
// section 3.1) includes the source address.
func RouteSource(dst netip.Addr, cfg *Config) (netip.Addr, error) {
	if !dst.IsValid() {
		return netip.Addr{}, fmt.Errorf("%w: destination unset", ErrInvalidAddr)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	f := icmp.FamilyOf(dst)
	if cfg.Source.IsValid() {
		if !familyMatches(f, cfg.Source) {
			return netip.Addr{}, fmt.Errorf("%w: source %v is not %s", ErrInvalidAddr, cfg.Source, familyName(f))
		}
		return cfg.Source, nil
	}
	return routeSource(f, dst, cfg)
}

// RouteMTU returns the MTU of the link that the route to dst leaves by (cfg.Interface's, when
// set): where a path MTU discovery starts (RFC 1191, RFC 8201). It ignores the path MTU the
// kernel may have cached for dst from an earlier Packet Too Big, so that each discovery finds
// the narrow link itself. Like RouteSource it sends nothing.
func RouteMTU(dst netip.Addr, cfg *Config) (int, error) {
	if !dst.IsValid() {
		return 0, fmt.Errorf("%w: destination unset", ErrInvalidAddr)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	_, mtu, err := route(icmp.FamilyOf(dst), dst.Unmap(), cfg)
	return mtu, err
}

// TCPRawConn is a raw IPPROTO_TCP socket of one family; opening it needs CAP_NET_RAW. It sends
// TCP segments the caller builds and receives a copy of every TCP segment that reaches the
// host, while the kernel's TCP goes on handling them as well (so it answers a SYN-ACK for a
// port no socket has connected from with an RST).
//
// It is safe for concurrent use: one goroutine may read (concurrent ReadPacket calls are
// serialized) while any number write.
type TCPRawConn struct {
	conn Conn
}

// ListenTCPRaw opens a raw TCP socket of family f. cfg may be nil; its Mode is ignored (the
// socket is always raw) and its Source, Interface, TOS, Mark, PMTU and RecvBuffer are honoured
// as by Listen. Errors are *net.OpError values wrapping *os.SyscallError; without CAP_NET_RAW
// errors.Is(err, ErrPermission) and errors.Is(err, os.ErrPermission) are true.
//
// The socket lives in the network namespace of the calling OS thread.
func ListenTCPRaw(f icmp.Family, cfg *Config) (*TCPRawConn, error) {
	if f != icmp.IPv4 && f != icmp.IPv6 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidFamily, uint8(f))
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.PMTU > PMTUProbe {
		return nil, fmt.Errorf("%w: pmtu %d", ErrInvalidMode, uint8(cfg.PMTU))
	}
	if cfg.Source.IsValid() && !familyMatches(f, cfg.Source) {
		return nil, fmt.Errorf("%w: source %v is not %s", ErrInvalidAddr, cfg.Source, familyName(f))
	}
	return listenTCPRaw(f, cfg)
}

// WriteTo sends one TCP segment seg (TCP header onwards) to dst; the destination port is the
// one in seg. opt may be nil; its TTL is sent as a control message, as by Conn.WriteTo.
//
// For IPv4 the caller fills in the TCP checksum (RouteSource gives the source address of the
// pseudo-header). For IPv6 the kernel computes it (IPV6_CHECKSUM, RFC 3542 section 3.1), over
// whatever the field holds. Errors are as for Conn.WriteTo.
func (c *TCPRawConn) WriteTo(seg []byte, dst netip.Addr, opt *WriteOptions) error {
	return c.conn.writeTo(seg, dst, opt)
}

// ReadPacket blocks until a TCP segment arrives or the socket is closed, and fills in p:
// p.Data is the segment from its TCP header on (the IPv4 header is stripped), p.Src and p.Dst
// its addresses, p.TTL its TTL or hop limit, p.Time the kernel receive timestamp. p.Err is
// always nil. buf should hold at least 65536 bytes; a longer packet is truncated. An IPv4
// packet without a valid IP header gives an error wrapping ErrMalformed; the socket stays
// usable.
func (c *TCPRawConn) ReadPacket(buf []byte, p *Packet) error {
	return c.conn.readPacket(buf, p)
}

// Close closes the socket. It unblocks ReadPacket, which then returns an error wrapping
// net.ErrClosed. Closing twice returns an error wrapping net.ErrClosed.
func (c *TCPRawConn) Close() error { return c.conn.close() }

// ReserveTCPPort binds a TCP socket to src and an ephemeral port, so that no other local socket
// takes the port the caller's raw SYNs come from. The socket never listens nor connects, so
// the kernel still answers segments to the port with an RST, as it does for a free port. The
// port stays reserved until release is called; release may be called from any goroutine, and a
// second call returns an error wrapping net.ErrClosed. src may be an unspecified address (the
// port is then reserved on every address of its family). The socket is created in the network
// namespace of the calling OS thread.
func ReserveTCPPort(src netip.Addr) (port uint16, release func() error, err error) {
	if !src.IsValid() {
		return 0, nil, fmt.Errorf("%w: source unset", ErrInvalidAddr)
	}
	return reserveTCPPort(src)
}

// TCPProbe is one unprivileged TCP SYN probe: a non-blocking connect from a fresh socket with
// its TTL or hop limit set and IP_RECVERR / IPV6_RECVERR on, as traceroute's tcpconn method
// does. The socket has SO_LINGER 0, so Close aborts the connection: an RST if it was
// established, and no TIME-WAIT either way.
//
// It is safe for concurrent use: Wait calls are serialized, and LocalPort and Close may be
// called from any goroutine.
type TCPProbe struct {
	dst    netip.AddrPort
	port   uint16
	closed atomic.Bool

	mu   sync.Mutex // serializes Wait; guards done, res and sys's receive state
	done bool       // res holds the outcome; later Waits return it again
	res  Packet

	sys tcpProbeSys
}

// DialTCPProbe creates the socket, starts the connect and returns without waiting for it.
// ttl is the IPv4 TTL or IPv6 hop limit of the SYN (and of its retransmissions), 1..255, or 0
// for the kernel default. cfg may be nil; its Source, Interface, TOS and Mark are honoured and
// the rest is ignored: no privilege is needed. Errors, including a connect that fails at once
// (ENETUNREACH without a route, EPERM from a local firewall), are *net.OpError values wrapping
// *os.SyscallError.
//
// The socket lives in the network namespace of the calling OS thread.
func DialTCPProbe(dst netip.AddrPort, ttl int, cfg *Config) (*TCPProbe, error) {
	if !dst.Addr().IsValid() {
		return nil, fmt.Errorf("%w: destination unset", ErrInvalidAddr)
	}
	if ttl < 0 || ttl > 255 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidTTL, ttl)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	f := icmp.FamilyOf(dst.Addr())
	if cfg.Source.IsValid() && !familyMatches(f, cfg.Source) {
		return nil, fmt.Errorf("%w: source %v is not %s", ErrInvalidAddr, cfg.Source, familyName(f))
	}
	return dialTCPProbe(f, dst, ttl, cfg)
}

// LocalPort is the source port of the probe's SYN, chosen by the kernel.
func (p *TCPProbe) LocalPort() uint16 { return p.port }

// Wait blocks, in the runtime poller, until the probe has an outcome, and fills in pkt:
//   - connected (SYN-ACK): pkt.Err is nil and pkt.Src is the destination;
//   - refused (RST): pkt.Err.Errno is ECONNREFUSED, pkt.Err.Origin 0, pkt.Src the destination;
//   - an ICMP error (time exceeded, destination unreachable...) for the SYN: pkt.Err as the
//     kernel queued it (Origin OriginICMP or OriginICMP6, Type, Code, Info, Offender, and the
//     errno the kernel mapped it to), pkt.Src the offender, pkt.Dst the destination, pkt.Time
//     the kernel's receive timestamp of the ICMP error;
//   - any other socket error (ETIMEDOUT once the SYN retransmissions are exhausted...):
//     pkt.Err.Errno is that errno, pkt.Err.Origin 0 and pkt.Src unset.
//
// pkt.Data is nil and pkt.TTL -1. A Wait after the outcome returns it again. Wait returns an
// error only when the probe was closed (wrapping net.ErrClosed) or a system call failed.
func (p *TCPProbe) Wait(pkt *Packet) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		if err := p.wait(&p.res); err != nil {
			return err
		}
		p.done = true
	}
	*pkt = p.res
	if p.res.Err != nil {
		pkt.Err = &pkt.ext // p.res.Err points into p.res
	}
	return nil
}

// Close aborts the connection and closes the socket. It unblocks Wait, which then returns an
// error wrapping net.ErrClosed. Closing twice returns an error wrapping net.ErrClosed.
func (p *TCPProbe) Close() error { return p.close() }
