//go:build linux

package rawsock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
)

// sysConn is the Linux part of a Conn: the fd, owned by an *os.File so that it lives in the
// Go runtime poller (epoll), and the per-reader and per-writer syscall state.
type sysConn struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
	net    string // for *net.OpError

	writers  sync.Pool // of *writer; gives each concurrent writer its own msghdr without a lock
	batchers sync.Pool // of *batchWriter, likewise for WriteBatch

	rmu   sync.Mutex // serializes ReadPacket and ReadBatch; guards rd and batch
	rd    reader
	batch *batchReader // ReadBatch's state, made on its first call

	errFirst atomic.Bool // see reader.errFirst
}

// reader is the state of the one ReadPacket call in progress. It lives in the Conn, and its
// recv method value is created once, so that a read allocates nothing.
type reader struct {
	fn       func(fd uintptr) bool // rd.recv, bound once
	errQueue bool                  // IP_RECVERR / IPV6_RECVERR is on (datagram sockets)
	// errFirst is set by a writer whose send consumed a pending error: the error it stood for
	// waits on the error queue, and the next read takes it before any later reply, which the
	// pending error would otherwise have ensured.
	errFirst  *atomic.Bool
	msg       unix.Msghdr
	iov       unix.Iovec
	name      unix.RawSockaddrInet6 // large enough for a sockaddr_in too
	oob       [512]byte
	n         int
	fromQueue bool // the message came from the error queue
	errno     syscall.Errno
}

// writer is the state of one WriteTo call; see sysConn.writers.
type writer struct {
	fn    func(fd uintptr) bool // w.send, bound once
	msg   unix.Msghdr
	iov   unix.Iovec
	sa    unix.RawSockaddrInet6 // large enough for a sockaddr_in too
	oob   [64]byte
	errno syscall.Errno
	// stale: this is a datagram socket with IP_RECVERR. Its sendmsg reports (and clears) the
	// socket's pending error, left by an ICMP error that arrived for an earlier packet, instead
	// of sending; and reading the error queue sets the next queued error pending again. Those
	// errors are delivered through the error queue already, so the send is tried again.
	stale    bool
	retries  int
	errFirst *atomic.Bool // see reader.errFirst
}

func listen(f icmp.Family, cfg *Config) (*Conn, error) {
	switch cfg.Mode {
	case Privileged, Unprivileged:
		c, err := open(f, cfg.Mode, cfg)
		if isSocketPermission(err) {
			if cfg.Mode == Privileged {
				return nil, newPermissionError(f, nil, err)
			}
			return nil, newPermissionError(f, err, nil)
		}
		return c, err
	}
	c, derr := open(f, Unprivileged, cfg)
	if derr == nil || !canFallBack(derr) {
		return c, derr
	}
	c, rerr := open(f, Privileged, cfg)
	if isSocketPermission(rerr) {
		return nil, newPermissionError(f, derr, rerr)
	}
	return c, rerr
}

// socketErrno returns the errno of a failed socket(2) call, 0 for any other error.
func socketErrno(err error) syscall.Errno {
	var se *os.SyscallError
	var errno syscall.Errno
	if errors.As(err, &se) && se.Syscall == "socket" && errors.As(se.Err, &errno) {
		return errno
	}
	return 0
}

func isSocketPermission(err error) bool {
	e := socketErrno(err)
	return e == unix.EACCES || e == unix.EPERM
}

// canFallBack reports whether Auto should try a raw socket after the datagram socket failed
// with err: when ping sockets are refused (ping_group_range) or not built into the kernel.
func canFallBack(err error) bool {
	switch socketErrno(err) {
	case unix.EACCES, unix.EPERM, unix.EPROTONOSUPPORT, unix.ESOCKTNOSUPPORT:
		return true
	}
	return false
}

type sockopt struct {
	name       string
	level, opt int
	val        int
}

// open creates, configures and binds one socket of the given mode, synchronously, so that it
// belongs to the network namespace of the calling thread.
func open(f icmp.Family, mode Mode, cfg *Config) (_ *Conn, err error) {
	netw := netName(f, mode)
	fail := func(err error) error {
		var src net.Addr
		if cfg.Source.IsValid() {
			src = &net.IPAddr{IP: cfg.Source.AsSlice(), Zone: cfg.Source.Zone()}
		}
		return &net.OpError{Op: "listen", Net: netw, Source: src, Err: err}
	}
	domain, typ := unix.AF_INET, unix.SOCK_DGRAM
	if f == icmp.IPv6 {
		domain = unix.AF_INET6
	}
	if mode == Privileged {
		typ = unix.SOCK_RAW
		raiseNetRaw()
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, f.Protocol())
	if err != nil {
		return nil, fail(os.NewSyscallError("socket", err))
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()

	// Raw sockets get ICMP errors as packets already; an error queue too would double count.
	if err := configure(fd, f, cfg, mode == Unprivileged); err != nil {
		return nil, fail(err)
	}
	switch {
	case cfg.SendOnly:
		if err := setDropAll(fd, f); err != nil {
			return nil, fail(err)
		}
	case mode == Privileged:
		if err := setFilter(fd, f); err != nil {
			return nil, fail(err)
		}
	}
	// A datagram socket is always bound so that the kernel picks the echo identifier now.
	if mode == Unprivileged || cfg.Source.IsValid() {
		sa, err := sockaddr(f, cfg.Source)
		if err != nil {
			return nil, fail(err)
		}
		if err := unix.Bind(fd, sa); err != nil {
			return nil, fail(os.NewSyscallError("bind", err))
		}
	}
	lsa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fail(os.NewSyscallError("getsockname", err))
	}
	c := &Conn{family: f, mode: mode}
	switch sa := lsa.(type) {
	case *unix.SockaddrInet4:
		c.local = netip.AddrFrom4(sa.Addr)
		c.id = uint16(sa.Port)
	case *unix.SockaddrInet6:
		c.local = addrFrom16(sa.Addr, sa.ZoneId)
		c.id = uint16(sa.Port)
	}
	if mode == Privileged {
		c.id = 0
	}

	file := os.NewFile(uintptr(fd), "rawsock:"+netw)
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fail(err)
	}
	c.sys.init(file, rc, netw, mode == Unprivileged)
	return c, nil
}

// init sets up a sysConn around its socket, which file owns. errQueue: reads drain the error
// queue (IP_RECVERR is on).
func (s *sysConn) init(file *os.File, rc syscall.RawConn, netw string, errQueue bool) {
	s.f, s.rc, s.net = file, rc, netw
	s.rd.errQueue = errQueue
	s.rd.errFirst = &s.errFirst
	s.rd.fn = s.rd.recv
	s.writers.New = func() any {
		w := new(writer)
		w.fn = w.send
		return w
	}
	s.batchers.New = func() any {
		b := new(batchWriter)
		b.fn = b.send
		return b
	}
}

// bindSource binds fd to a and port when a is set.
func bindSource(fd int, f icmp.Family, a netip.Addr, port uint16) error {
	if !a.IsValid() && port == 0 {
		return nil
	}
	sa, err := sockaddr(f, a)
	if err != nil {
		return err
	}
	setPort(sa, port)
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	return nil
}

// configure applies what every socket of this package gets: kernel receive timestamps, the
// kernel's drop count, the received TTL / hop limit and local address, the error queue when
// recvErr, and cfg's TOS, PMTU, Mark and RecvBuffer. A send-only socket gets only what shapes
// the packets it sends.
func configure(fd int, f icmp.Family, cfg *Config, recvErr bool, extra ...sockopt) error {
	var opts []sockopt
	ip, name := unix.IPPROTO_IP, "IP_"
	ttl, pktinfo, recverr, tos, mtu := unix.IP_RECVTTL, unix.IP_PKTINFO, unix.IP_RECVERR, unix.IP_TOS, unix.IP_MTU_DISCOVER
	if f == icmp.IPv6 {
		ip, name = unix.IPPROTO_IPV6, "IPV6_"
		ttl, pktinfo, recverr, tos, mtu = unix.IPV6_RECVHOPLIMIT, unix.IPV6_RECVPKTINFO, unix.IPV6_RECVERR, unix.IPV6_TCLASS, unix.IPV6_MTU_DISCOVER
	}
	if !cfg.SendOnly {
		opts = append(opts,
			sockopt{"SO_TIMESTAMPNS", unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1},
			sockopt{"SO_RXQ_OVFL", unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1},
			sockopt{name + "RECVTTL", ip, ttl, 1}, sockopt{name + "PKTINFO", ip, pktinfo, 1})
	}
	if recvErr {
		opts = append(opts, sockopt{name + "RECVERR", ip, recverr, 1})
	}
	if cfg.TOS != 0 {
		opts = append(opts, sockopt{name + "TOS", ip, tos, cfg.TOS})
	}
	if cfg.PMTU != PMTUDefault {
		opts = append(opts, sockopt{name + "MTU_DISCOVER", ip, mtu, pmtuValue(cfg.PMTU)})
	}
	if cfg.Mark != 0 {
		opts = append(opts, sockopt{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK, int(int32(cfg.Mark))})
	}
	for _, o := range append(opts, extra...) {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.val); err != nil {
			return os.NewSyscallError("setsockopt("+o.name+")", err)
		}
	}
	if cfg.RecvBuffer > 0 && !cfg.SendOnly {
		// SO_RCVBUFFORCE may exceed net.core.rmem_max but needs CAP_NET_ADMIN.
		err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RecvBuffer)
		if err != nil {
			err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.RecvBuffer)
		}
		if err != nil {
			return os.NewSyscallError("setsockopt(SO_RCVBUF)", err)
		}
	}
	if cfg.Interface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface); err != nil {
			return os.NewSyscallError("setsockopt(SO_BINDTODEVICE)", err)
		}
	}
	return nil
}

func pmtuValue(p PMTU) int {
	// IP_PMTUDISC_* and IPV6_PMTUDISC_* share their values.
	switch p {
	case PMTUDo:
		return unix.IP_PMTUDISC_DO
	case PMTUDont:
		return unix.IP_PMTUDISC_DONT
	case PMTUWant:
		return unix.IP_PMTUDISC_WANT
	case PMTUProbe:
		return unix.IP_PMTUDISC_PROBE
	}
	return unix.IP_PMTUDISC_WANT
}

// sockaddr converts a (possibly zero) local address for bind.
func sockaddr(f icmp.Family, a netip.Addr) (unix.Sockaddr, error) {
	if f == icmp.IPv4 {
		sa := &unix.SockaddrInet4{}
		if a.IsValid() {
			sa.Addr = a.Unmap().As4()
		}
		return sa, nil
	}
	sa := &unix.SockaddrInet6{}
	if a.IsValid() {
		sa.Addr = a.As16()
		z, err := scopeID(a)
		if err != nil {
			return nil, err
		}
		sa.ZoneId = z
	}
	return sa, nil
}

// scopeID converts the zone of an IPv6 address into an interface index. Numeric zones (as
// ReadPacket returns them) convert without allocating.
func scopeID(a netip.Addr) (uint32, error) {
	z := a.Zone()
	if z == "" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(z, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return 0, fmt.Errorf("%w: zone of %v: %w", ErrInvalidAddr, a, err)
	}
	return uint32(ifi.Index), nil
}

func (c *Conn) close() error {
	if !c.sys.closed.CompareAndSwap(false, true) {
		return c.opError("close", netip.Addr{}, net.ErrClosed)
	}
	if err := c.sys.f.Close(); err != nil {
		return c.opError("close", netip.Addr{}, err)
	}
	return nil
}

func (c *Conn) opError(op string, dst netip.Addr, err error) error {
	var addr net.Addr
	if dst.IsValid() {
		addr = &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	}
	var src net.Addr
	if c.local.IsValid() {
		src = &net.IPAddr{IP: c.local.AsSlice(), Zone: c.local.Zone()}
	}
	return &net.OpError{Op: op, Net: c.sys.net, Source: src, Addr: addr, Err: err}
}

// pollError maps an error of RawConn.Read or Write (as opposed to one of our syscalls) to
// net.ErrClosed: the poller only fails when the file is closed, since we set no deadlines.
func (c *Conn) pollError(op string, dst netip.Addr, err error) error {
	if c.sys.closed.Load() {
		err = net.ErrClosed
	}
	return c.opError(op, dst, err)
}

func (c *Conn) writeTo(b []byte, dst netip.Addr, opt *WriteOptions) error {
	if c.sys.closed.Load() {
		return c.opError("write", dst, net.ErrClosed)
	}
	ttl := 0
	if opt != nil {
		ttl = opt.TTL
	}
	w := c.sys.writers.Get().(*writer)
	defer c.sys.writers.Put(w)
	w.msg = unix.Msghdr{}
	namelen, ctrl, err := c.prepare(&w.sa, w.oob[:], dst, ttl)
	if err != nil {
		return err
	}
	w.msg.Name = (*byte)(unsafe.Pointer(&w.sa))
	w.msg.Namelen = namelen
	if len(b) > 0 {
		w.iov.Base = &b[0]
	}
	w.iov.SetLen(len(b))
	w.msg.Iov = &w.iov
	w.msg.SetIovlen(1)
	if ctrl > 0 {
		w.msg.Control = &w.oob[0]
		w.msg.SetControllen(ctrl)
	}
	w.errno = 0
	w.stale, w.retries, w.errFirst = c.mode == Unprivileged, 0, &c.sys.errFirst
	err = c.sys.rc.Write(w.fn)
	w.iov.Base = nil // do not keep the caller's buffer alive from the pool
	if err != nil {
		return c.pollError("write", dst, err)
	}
	if w.errno != 0 {
		return c.opError("write", dst, os.NewSyscallError("sendmsg", w.errno))
	}
	return nil
}

// prepare checks dst and ttl for a send and writes dst's socket address into sa and the TTL's
// control message, if any, into oob (64 bytes). It returns the address length and the control
// length.
func (c *Conn) prepare(sa *unix.RawSockaddrInet6, oob []byte, dst netip.Addr, ttl int) (uint32, int, error) {
	if !dst.IsValid() || !familyMatches(c.family, dst) {
		return 0, 0, c.opError("write", dst, fmt.Errorf("%w: destination %v is not %s", ErrInvalidAddr, dst, familyName(c.family)))
	}
	if ttl < 0 || ttl > 255 {
		return 0, 0, c.opError("write", dst, fmt.Errorf("%w: %d", ErrInvalidTTL, ttl))
	}
	var namelen uint32
	if c.family == icmp.IPv4 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Unmap().As4()}
		namelen = unix.SizeofSockaddrInet4
	} else {
		scope, err := scopeID(dst)
		if err != nil {
			return 0, 0, c.opError("write", dst, err)
		}
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.As16(), Scope_id: scope}
		namelen = unix.SizeofSockaddrInet6
	}
	ctrl := 0
	switch {
	case ttl > 0 && c.family == icmp.IPv4:
		ctrl = putCmsgInt(oob, unix.IPPROTO_IP, unix.IP_TTL, int32(ttl))
	case ttl > 0:
		ctrl = putCmsgInt(oob, unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, int32(ttl))
	}
	return namelen, ctrl, nil
}

// send runs inside RawConn.Write: returning false parks the goroutine in the poller until the
// socket is writable again.
func (w *writer) send(fd uintptr) bool {
	for {
		_, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&w.msg)), 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
		default:
			if w.stale && w.retryStale(e) {
				w.errFirst.Store(true)
				continue
			}
		}
		w.errno = e
		return true
	}
}

// maxStaleRetries bounds the sends one WriteTo makes past pending errors. The backlog is the
// ICMP errors queued at that moment (a traceroute draws one per probe), each of which can be
// set pending once as the reader takes the one before it; an error of this packet's own (no
// route, a firewall) repeats every time and is reported after the bound.
const maxStaleRetries = 64

// retryStale reports whether a send that failed with e on a datagram socket may have failed on
// another packet's pending error, and is worth another try; it counts the try.
func (w *writer) retryStale(e syscall.Errno) bool {
	if !staleErrno(e) || w.retries >= maxStaleRetries {
		return false
	}
	w.retries++
	return true
}

// maxAsyncErrors bounds how many pending socket errors one read consumes before giving up.
// Each one is consumed by the read that reports it, so reaching the bound needs a flood.
const maxAsyncErrors = 64

// recv runs inside RawConn.Read. It returns true with a message or an errno, or false to
// park the goroutine in the poller; epoll reports EPOLLERR for a pending error-queue entry,
// so queued errors wake it as packets do.
func (r *reader) recv(fd uintptr) bool { return r.recvAfter(fd, 0) }

// recvAfter is recv for a caller that has just made a normal (not error-queue) read itself and
// got the errno prior from it (ReadBatch's recvmmsg); 0 means no such read. prior is handled
// as if recv's own first read had returned it, which saves repeating that syscall.
func (r *reader) recvAfter(fd uintptr, prior syscall.Errno) bool {
	var flags uintptr
	if r.errQueue && r.errFirst.Swap(false) {
		flags = unix.MSG_ERRQUEUE
		prior = 0 // the error queue goes first; the normal queue is read again after it
	}
	normalEmpty := false
	for async := 0; ; {
		var n uintptr
		var e syscall.Errno
		if prior != 0 {
			e, prior = prior, 0
		} else {
			r.msg.Name = (*byte)(unsafe.Pointer(&r.name))
			r.msg.Namelen = unix.SizeofSockaddrInet6
			r.msg.Iov = &r.iov
			r.msg.SetIovlen(1)
			r.msg.Control = &r.oob[0]
			r.msg.SetControllen(len(r.oob))
			r.msg.Flags = 0
			n, _, e = unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), flags)
		}
		if e == 0 {
			r.n = int(n)
			r.fromQueue = flags&unix.MSG_ERRQUEUE != 0
			return true
		}
		if e == unix.EINTR {
			continue
		}
		if flags&unix.MSG_ERRQUEUE != 0 {
			if e != unix.EAGAIN {
				r.errno = e
				return true
			}
			if normalEmpty {
				return false
			}
			flags = 0 // the error was consumed without a queue entry: read normally again
			continue
		}
		switch e {
		case unix.EAGAIN:
			if !r.errQueue {
				return false
			}
			normalEmpty = true
			flags = unix.MSG_ERRQUEUE
			continue
		case unix.EBADF, unix.EFAULT, unix.EINVAL, unix.ENOTSOCK, unix.ENOMEM:
			r.errno = e
			return true
		}
		// Any other errno is a pending asynchronous error (sk_err: EHOSTUNREACH,
		// ECONNREFUSED, EMSGSIZE...), reported and cleared by this read. Its details wait on
		// the error queue (datagram) or arrive as an ICMP packet (raw).
		if async++; async > maxAsyncErrors {
			r.errno = e
			return true
		}
		normalEmpty = false
		if r.errQueue {
			flags = unix.MSG_ERRQUEUE
		}
	}
}

func (c *Conn) readPacket(buf []byte, p *Packet) error {
	s := &c.sys
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.closed.Load() {
		return c.opError("read", netip.Addr{}, net.ErrClosed)
	}
	r := &s.rd
	r.iov = unix.Iovec{}
	if len(buf) > 0 {
		r.iov.Base = &buf[0]
	}
	r.iov.SetLen(len(buf))
	r.errno = 0
	r.n = 0
	err := s.rc.Read(r.fn)
	r.iov.Base = nil // do not keep the caller's buffer alive
	if err != nil {
		return c.pollError("read", netip.Addr{}, err)
	}
	if r.errno != 0 {
		return c.opError("read", netip.Addr{}, os.NewSyscallError("recvmsg", r.errno))
	}

	name := unsafe.Slice((*byte)(unsafe.Pointer(&r.name)), r.msg.Namelen)
	return c.fill(p, buf[:min(r.n, len(buf))], name, r.oob[:r.msg.Controllen], r.fromQueue)
}

// fill decodes one received message into p: data is what was received, name the source
// address and oob the control messages, as the kernel left them. fromQueue: the message came
// from the error queue.
func (c *Conn) fill(p *Packet, data, name, oob []byte, fromQueue bool) error {
	*p = Packet{TTL: -1}
	p.Src = sockaddrAddr(name)
	isErr := parseCmsgs(oob, p)
	if fromQueue {
		// For an error-queue entry the kernel puts the original destination in msg_name
		// (ip_recv_error); that, not the router, is what matches the entry to our probe.
		p.Dst = p.Src
		if isErr {
			p.Err = &p.ext
			p.Src = p.ext.Offender
		}
		p.Data = data
		return nil
	}
	if c.family == icmp.IPv4 && c.mode == Privileged {
		var err error
		if data, err = stripIPv4(data, p); err != nil {
			return c.opError("read", p.Src, err)
		}
	}
	p.Data = data
	return nil
}

// stripIPv4 removes the IP header (RFC 791) that raw IPv4 sockets deliver in front of the ICMP
// message, taking the TTL and destination from it. Its length field is untrusted.
func stripIPv4(data []byte, p *Packet) ([]byte, error) {
	if len(data) < 20 || data[0]>>4 != 4 {
		return nil, fmt.Errorf("%w: short or non-IPv4 packet of %d bytes", ErrMalformed, len(data))
	}
	ihl := int(data[0]&0x0f) * 4
	if ihl < 20 || ihl > len(data) {
		return nil, fmt.Errorf("%w: IPv4 header length %d in %d bytes", ErrMalformed, ihl, len(data))
	}
	p.TTL = int(data[8])
	p.Dst = netip.AddrFrom4([4]byte(data[16:20]))
	return data[ihl:], nil
}
