//go:build linux

package rawsock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
)

// tcpProbeSys is the Linux part of a TCPProbe: the socket, in the runtime poller, and the
// receive state of the Wait in progress (guarded by TCPProbe.mu).
type tcpProbeSys struct {
	f     *os.File
	rc    syscall.RawConn
	net   string         // for *net.OpError
	local netip.AddrPort // after connect

	fn   func(fd uintptr) bool // p.poll, bound once
	pkt  *Packet               // what the Wait in progress fills in
	msg  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrInet6 // large enough for a sockaddr_in too
	oob  [256]byte
	// quote receives the start of our SYN that an error-queue entry carries; the entry's
	// control messages are what Wait reports, so the quote itself is ignored.
	quote [64]byte
	call  string // the system call that failed with errno
	errno syscall.Errno
}

func familyDomain(f icmp.Family) int {
	if f == icmp.IPv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// sockaddrPort is sockaddr with a port.
func sockaddrPort(f icmp.Family, a netip.AddrPort) (unix.Sockaddr, error) {
	sa, err := sockaddr(f, a.Addr())
	if err != nil {
		return nil, err
	}
	setPort(sa, a.Port())
	return sa, nil
}

func ipAddr(a netip.Addr) net.Addr {
	if !a.IsValid() {
		return nil
	}
	return &net.IPAddr{IP: a.AsSlice(), Zone: a.Zone()}
}

func tcpAddr(a netip.AddrPort) net.Addr {
	if !a.Addr().IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(a)
}

// setsockopts applies opts in order, naming the failing option in the error.
func setsockopts(fd int, opts []sockopt) error {
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.val); err != nil {
			return os.NewSyscallError("setsockopt("+o.name+")", err)
		}
	}
	return nil
}

// bindDevice applies cfg.Interface, when set.
func bindDevice(fd int, cfg *Config) error {
	if cfg.Interface == "" {
		return nil
	}
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface); err != nil {
		return os.NewSyscallError("setsockopt(SO_BINDTODEVICE)", err)
	}
	return nil
}

func routeSource(f icmp.Family, dst netip.Addr, cfg *Config) (netip.Addr, error) {
	src, _, err := route(f, dst, cfg)
	return src, err
}

// route returns the source address of the route to dst and the MTU of the link it leaves by.
func route(f icmp.Family, dst netip.Addr, cfg *Config) (netip.Addr, int, error) {
	netw := "udp4"
	if f == icmp.IPv6 {
		netw = "udp6"
	}
	fail := func(err error) (netip.Addr, int, error) {
		return netip.Addr{}, 0, &net.OpError{Op: "route", Net: netw, Addr: ipAddr(dst), Err: err}
	}
	fd, err := unix.Socket(familyDomain(f), unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	if cfg.Mark != 0 {
		if err := setsockopts(fd, []sockopt{{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK, int(int32(cfg.Mark))}}); err != nil {
			return fail(err)
		}
	}
	if err := bindDevice(fd, cfg); err != nil {
		return fail(err)
	}
	// Connecting a UDP socket runs the route lookup and fixes the source address without
	// sending anything. The port only has to be non-zero.
	sa, err := sockaddrPort(f, netip.AddrPortFrom(dst, 9))
	if err != nil {
		return fail(err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		return fail(os.NewSyscallError("connect", err))
	}
	lsa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(os.NewSyscallError("getsockname", err))
	}
	src := addrPortOf(lsa).Addr()
	mtu, err := linkMTU(src, cfg.Interface)
	if err != nil {
		return fail(err)
	}
	return src, mtu, nil
}

// linkMTU returns the MTU of the interface named ifName or, if that is empty, of the one that
// has the address src.
func linkMTU(src netip.Addr, ifName string) (int, error) {
	if ifName != "" {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return 0, err
		}
		return ifi.MTU, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, err
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == src.Unmap() {
					return ifi.MTU, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("%w: no interface has the source address %v", ErrInvalidAddr, src)
}

func listenTCPRaw(f icmp.Family, cfg *Config) (*TCPRawConn, error) {
	netw := "ip4:tcp"
	if f == icmp.IPv6 {
		netw = "ip6:tcp"
	}
	fail := func(err error) error {
		return &net.OpError{Op: "listen", Net: netw, Source: ipAddr(cfg.Source), Err: err}
	}
	raiseNetRaw()
	fd, err := unix.Socket(familyDomain(f), unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		err = os.NewSyscallError("socket", err)
		if isSocketPermission(err) {
			err = fmt.Errorf("%w: raw TCP sockets need CAP_NET_RAW: %w", ErrPermission, err)
		}
		return nil, fail(err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()

	var extra []sockopt
	if f == icmp.IPv6 {
		// Offset of the TCP checksum: the kernel fills it in on send, as IPv6 sockets cannot
		// see the source address the route picks, and verifies it on receive.
		extra = append(extra, sockopt{"IPV6_CHECKSUM", unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 16})
	}
	if err = configure(fd, f, cfg, false, extra...); err != nil {
		return nil, fail(err)
	}
	if err = bindSource(fd, f, cfg.Source, 0); err != nil {
		return nil, fail(err)
	}

	file := os.NewFile(uintptr(fd), "rawsock:"+netw)
	rc, rerr := file.SyscallConn()
	if rerr != nil {
		file.Close()
		return nil, fail(rerr) // err stays nil: file.Close closed fd
	}
	c := new(TCPRawConn)
	cn := &c.conn
	cn.family, cn.mode, cn.local = f, Privileged, cfg.Source
	cn.sys.init(file, rc, netw, false)
	return c, nil
}

func reserveTCPPort(src netip.Addr) (uint16, func() error, error) {
	f := icmp.FamilyOf(src)
	netw := "tcp4"
	if f == icmp.IPv6 {
		netw = "tcp6"
	}
	fail := func(err error) (uint16, func() error, error) {
		return 0, nil, &net.OpError{Op: "listen", Net: netw, Source: ipAddr(src), Err: err}
	}
	fd, err := unix.Socket(familyDomain(f), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	sa, err := sockaddr(f, src)
	if err == nil {
		err = unix.Bind(fd, sa)
		if err != nil {
			err = os.NewSyscallError("bind", err)
		}
	}
	var lsa unix.Sockaddr
	if err == nil {
		if lsa, err = unix.Getsockname(fd); err != nil {
			err = os.NewSyscallError("getsockname", err)
		}
	}
	if err != nil {
		unix.Close(fd)
		return fail(err)
	}
	local := addrPortOf(lsa)
	// An *os.File (outside the poller: the fd is blocking) closes the socket should release
	// be lost, and makes a second release fail instead of closing a reused fd.
	file := os.NewFile(uintptr(fd), "rawsock:reserve")
	release := func() error {
		if err := file.Close(); err != nil {
			if errors.Is(err, os.ErrClosed) {
				err = net.ErrClosed
			}
			return &net.OpError{Op: "close", Net: netw, Source: tcpAddr(local), Err: err}
		}
		return nil
	}
	return local.Port(), release, nil
}

func dialTCPProbe(f icmp.Family, dst netip.AddrPort, ttl int, cfg *Config) (*TCPProbe, error) {
	if f == icmp.IPv4 {
		dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	}
	netw := "tcp4"
	if f == icmp.IPv6 {
		netw = "tcp6"
	}
	fail := func(err error) error {
		return &net.OpError{Op: "dial", Net: netw, Source: ipAddr(cfg.Source), Addr: tcpAddr(dst), Err: err}
	}
	fd, err := unix.Socket(familyDomain(f), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fail(os.NewSyscallError("socket", err))
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()

	// SO_TIMESTAMPNS (in configure) stamps error-queue entries with the arrival of the ICMP
	// error.
	var hops []sockopt
	if ttl > 0 && f == icmp.IPv4 {
		hops = append(hops, sockopt{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, ttl})
	} else if ttl > 0 {
		hops = append(hops, sockopt{"IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl})
	}
	if err = configure(fd, f, cfg, true, hops...); err != nil {
		return nil, fail(err)
	}
	if err = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		err = os.NewSyscallError("setsockopt(SO_LINGER)", err)
		return nil, fail(err)
	}
	if err = bindSource(fd, f, cfg.Source, 0); err != nil {
		return nil, fail(err)
	}
	var rsa unix.Sockaddr
	if rsa, err = sockaddrPort(f, dst); err != nil {
		return nil, fail(err)
	}
	// The socket joins the poller only once connecting: an unconnected TCP socket polls as
	// hung up.
	switch cerr := unix.Connect(fd, rsa); cerr {
	case nil, unix.EINPROGRESS, unix.EINTR:
	default:
		err = os.NewSyscallError("connect", cerr)
		return nil, fail(err)
	}
	var lsa unix.Sockaddr
	if lsa, err = unix.Getsockname(fd); err != nil {
		err = os.NewSyscallError("getsockname", err)
		return nil, fail(err)
	}
	file := os.NewFile(uintptr(fd), "rawsock:"+netw)
	rc, rerr := file.SyscallConn()
	if rerr != nil {
		file.Close()
		return nil, fail(rerr)
	}
	p := &TCPProbe{dst: dst}
	s := &p.sys
	s.f, s.rc, s.net, s.local = file, rc, netw, addrPortOf(lsa)
	p.port = s.local.Port()
	s.fn = p.poll
	return p, nil
}

func (p *TCPProbe) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: p.sys.net, Source: tcpAddr(p.sys.local), Addr: tcpAddr(p.dst), Err: err}
}

func (p *TCPProbe) close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return p.opError("close", net.ErrClosed)
	}
	if err := p.sys.f.Close(); err != nil {
		return p.opError("close", err)
	}
	return nil
}

func (p *TCPProbe) wait(pkt *Packet) error {
	if p.closed.Load() {
		return p.opError("wait", net.ErrClosed)
	}
	s := &p.sys
	s.pkt, s.call, s.errno = pkt, "", 0
	// A connect completes as writability, and EPOLLERR (a queued error, sk_err) wakes writers
	// as well as readers, so one Write wait covers every outcome.
	err := s.rc.Write(s.fn)
	s.pkt = nil
	if err != nil {
		if p.closed.Load() {
			err = net.ErrClosed // the poller fails only when the file is closed: no deadlines
		}
		return p.opError("wait", err)
	}
	if s.errno != 0 {
		return p.opError("wait", os.NewSyscallError(s.call, s.errno))
	}
	return nil
}

// maxQueueEntries bounds the error-queue entries one poll reads past that are not ICMP errors.
const maxQueueEntries = 16

// poll runs inside RawConn.Write: it returns true once the probe has an outcome (in s.pkt) or
// a system call failed (s.errno), false to wait in the poller.
func (p *TCPProbe) poll(fd uintptr) bool {
	s := &p.sys
	if s.readErrQueue(fd) {
		return true
	}
	soErr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return s.fail("getsockopt(SO_ERROR)", err)
	}
	if soErr != 0 {
		// The kernel queues the ICMP error before it sets sk_err (ip_icmp_error, then
		// sk_err in tcp_v4_err), so one that came in since the first look is there now.
		if s.readErrQueue(fd) {
			return true
		}
		*s.pkt = Packet{TTL: -1, Dst: s.local.Addr()}
		s.pkt.ext = ExtendedErr{Errno: syscall.Errno(soErr)}
		s.pkt.Err = &s.pkt.ext
		if s.pkt.ext.Errno == unix.ECONNREFUSED {
			s.pkt.Src = p.dst.Addr()
		}
		return true
	}
	if _, err := unix.Getpeername(int(fd)); err != nil {
		if err == unix.ENOTCONN {
			return false // still in SYN-SENT
		}
		return s.fail("getpeername", err)
	}
	*s.pkt = Packet{TTL: -1, Src: p.dst.Addr(), Dst: s.local.Addr()}
	return true
}

func (s *tcpProbeSys) fail(call string, err error) bool {
	s.call = call
	if !errors.As(err, &s.errno) {
		s.errno = unix.EIO
	}
	return true
}

// readErrQueue takes an ICMP error from the socket error queue into s.pkt. It reports whether
// poll is done: an entry was read, or recvmsg failed.
func (s *tcpProbeSys) readErrQueue(fd uintptr) bool {
	for range maxQueueEntries {
		s.iov.Base = &s.quote[0]
		s.iov.SetLen(len(s.quote))
		s.msg = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&s.name)),
			Namelen: unix.SizeofSockaddrInet6,
			Iov:     &s.iov,
			Control: &s.oob[0],
		}
		s.msg.SetIovlen(1)
		s.msg.SetControllen(len(s.oob))
		_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&s.msg)), unix.MSG_ERRQUEUE)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			return s.fail("recvmsg", e)
		}
		pkt := s.pkt
		*pkt = Packet{TTL: -1}
		// As for Conn, msg_name is the destination of the packet the error is about.
		// It is set after the control messages, whose IP_PKTINFO names our own address.
		isErr := parseCmsgs(s.oob[:s.msg.Controllen], pkt)
		pkt.Dst = sockaddrAddr(unsafe.Slice((*byte)(unsafe.Pointer(&s.name)), s.msg.Namelen))
		if isErr {
			pkt.Err = &pkt.ext
			pkt.Src = pkt.ext.Offender
			return true
		}
		// Not an ICMP error entry (we enable no other kind); skip it.
	}
	return false
}
