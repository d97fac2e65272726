//go:build linux

package rawsock

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
)

// udpSys is the Linux part of a UDPConn. Traces send a few hundred datagrams, so unlike Conn it
// uses the allocating unix.Sendmsg and unix.Recvmsg wrappers.
type udpSys struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
	net    string
	// errFirst: a send consumed a pending error, whose queue entry the next read takes first
	// (see reader.errFirst).
	errFirst atomic.Bool
	rmu      sync.Mutex // serializes ReadPacket; guards oob
	oob      [512]byte
}

func listenUDP(f icmp.Family, port uint16, cfg *Config) (_ *UDPConn, err error) {
	mode := cfg.Mode
	if mode == Auto {
		mode = Unprivileged
	}
	netw := "udp4"
	domain := unix.AF_INET
	if f == icmp.IPv6 {
		netw, domain = "udp6", unix.AF_INET6
	}
	fail := func(err error) error { return &net.OpError{Op: "listen", Net: netw, Err: err} }
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fail(os.NewSyscallError("socket", err))
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	var v6only []sockopt
	if f == icmp.IPv6 {
		v6only = append(v6only, sockopt{"IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1})
	}
	if err := configure(fd, f, cfg, mode == Unprivileged, v6only...); err != nil {
		return nil, fail(err)
	}
	// Bound even to port 0, so that the port is fixed now: a privileged Prober matches the
	// quotes of its errors on it.
	sa, err := sockaddr(f, cfg.Source)
	if err != nil {
		return nil, fail(err)
	}
	setPort(sa, port)
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fail(os.NewSyscallError("bind", err))
	}
	lsa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fail(os.NewSyscallError("getsockname", err))
	}
	c := &UDPConn{family: f, mode: mode, local: addrPortOf(lsa)}
	file := os.NewFile(uintptr(fd), "rawsock:"+netw)
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fail(err)
	}
	c.sys.f, c.sys.rc, c.sys.net = file, rc, netw
	return c, nil
}

func setPort(sa unix.Sockaddr, port uint16) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		sa.Port = int(port)
	case *unix.SockaddrInet6:
		sa.Port = int(port)
	}
}

func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(addrFrom16(sa.Addr, sa.ZoneId), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func (c *UDPConn) opError(op string, dst netip.AddrPort, err error) error {
	var addr net.Addr
	if dst.IsValid() {
		addr = net.UDPAddrFromAddrPort(dst)
	}
	if c.sys.closed.Load() {
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: c.sys.net, Source: net.UDPAddrFromAddrPort(c.local), Addr: addr, Err: err}
}

func (c *UDPConn) close() error {
	if !c.sys.closed.CompareAndSwap(false, true) {
		return c.opError("close", netip.AddrPort{}, net.ErrClosed)
	}
	return c.sys.f.Close()
}

func (c *UDPConn) writeTo(payload []byte, dst netip.AddrPort, opt *WriteOptions) error {
	if c.sys.closed.Load() {
		return c.opError("write", dst, net.ErrClosed)
	}
	if !dst.IsValid() || !familyMatches(c.family, dst.Addr()) {
		return c.opError("write", dst, ErrInvalidAddr)
	}
	var oob []byte
	if opt != nil && opt.TTL != 0 {
		if opt.TTL < 0 || opt.TTL > 255 {
			return c.opError("write", dst, ErrInvalidTTL)
		}
		oob = make([]byte, unix.CmsgSpace(4))
		if c.family == icmp.IPv4 {
			putCmsgInt(oob, unix.IPPROTO_IP, unix.IP_TTL, int32(opt.TTL))
		} else {
			putCmsgInt(oob, unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, int32(opt.TTL))
		}
	}
	sa, err := sockaddr(c.family, dst.Addr())
	if err != nil {
		return c.opError("write", dst, err)
	}
	setPort(sa, dst.Port())
	var errno error
	retries := 0
	werr := c.sys.rc.Write(func(fd uintptr) bool {
		for {
			errno = unix.Sendmsg(int(fd), payload, oob, sa, 0)
			switch errno {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			case nil:
				return true
			}
			// An unconnected UDP socket with IP_RECVERR reports an earlier datagram's ICMP
			// error on this send; that error is on the error queue already.
			if e, ok := errno.(syscall.Errno); ok && c.mode == Unprivileged && staleErrno(e) && retries < maxStaleRetries {
				retries++
				c.sys.errFirst.Store(true)
				continue
			}
			return true
		}
	})
	if werr != nil {
		return c.opError("write", dst, werr)
	}
	if errno != nil {
		return c.opError("write", dst, os.NewSyscallError("sendmsg", errno))
	}
	return nil
}

// staleErrno reports whether e is one that a pending ICMP error of another datagram can make a
// send fail with (icmp_err_convert, icmpv6_err_convert).
func staleErrno(e syscall.Errno) bool {
	switch e {
	case unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ECONNREFUSED, unix.EACCES, unix.EPROTO,
		unix.EMSGSIZE, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return true
	}
	return false
}

func (c *UDPConn) readPacket(buf []byte, p *Packet) error {
	s := &c.sys
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.closed.Load() {
		return c.opError("read", netip.AddrPort{}, net.ErrClosed)
	}
	var (
		n, oobn  int
		from     unix.Sockaddr
		errno    error
		errQueue bool
	)
	queue := c.mode == Unprivileged
	rerr := s.rc.Read(func(fd uintptr) bool {
		flags := 0
		if queue && s.errFirst.Swap(false) {
			flags = unix.MSG_ERRQUEUE
		}
		normalEmpty := false
		for async := 0; ; {
			n, oobn, _, from, errno = unix.Recvmsg(int(fd), buf, s.oob[:], flags)
			switch {
			case errno == nil:
				errQueue = flags == unix.MSG_ERRQUEUE
				return true
			case errno == unix.EINTR:
				continue
			case flags == unix.MSG_ERRQUEUE && errno == unix.EAGAIN:
				if normalEmpty {
					return false
				}
				flags = 0
				continue
			case flags == unix.MSG_ERRQUEUE:
				return true
			case errno == unix.EAGAIN:
				if !queue {
					return false
				}
				normalEmpty, flags = true, unix.MSG_ERRQUEUE
				continue
			}
			// A pending asynchronous error, reported and cleared by this read; its details
			// wait on the error queue.
			e, _ := errno.(syscall.Errno)
			if !queue || !staleErrno(e) || async >= maxAsyncErrors {
				return true
			}
			async++
			normalEmpty, flags = false, unix.MSG_ERRQUEUE
		}
	})
	if rerr != nil {
		return c.opError("read", netip.AddrPort{}, rerr)
	}
	if errno != nil {
		return c.opError("read", netip.AddrPort{}, os.NewSyscallError("recvmsg", errno))
	}
	*p = Packet{TTL: -1}
	if from != nil {
		ap := addrPortOf(from)
		p.Src, p.Port = ap.Addr(), ap.Port()
	}
	isErr := parseCmsgs(s.oob[:oobn], p)
	p.Data = buf[:min(n, len(buf))]
	if errQueue {
		p.Dst = p.Src
		if isErr {
			p.Err = &p.ext
			p.Src = p.ext.Offender
		}
	}
	return nil
}
