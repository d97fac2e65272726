package rawsock

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdConn owns an ICMP socket's fd and offers the syscall.RawConn methods the rest of the
// package calls, with the fd kept out of the Go runtime poller except while a call waits.
//
// Why: the poller registers every fd with epoll for input and output, for good, so that every
// packet the socket receives, and every packet it sends as the send completes, runs epoll's
// wakeup callback under the socket's wait-queue lock. On loopback, where the answer is made
// inside the sending call, a flood paid that twice per echo: a bare loop made 131,000 echoes/s
// with its fd in the poller against 140,000 without. A call that would block here adds the fd
// to an epoll set of its own, which the runtime poller watches, waits there without holding a
// thread, and takes the fd out again: a busy socket pays three system calls per wait instead
// of two callbacks per packet. On one P, WriteBatch also keeps the fd out of a waiting reader's
// set while it sends (waiter.hush).
//
// Blocking in poll(2) instead would be cheaper still, but the thread would keep its P until the
// runtime's monitor took it, up to 10 ms later: with GOMAXPROCS 1 a flood stalled.
type fdConn struct {
	fd      int
	closing atomic.Bool
	// mu is read-held by every call that uses fd, and write-held by Close to close it, so
	// that no call can reach a closed (and perhaps reused) fd number.
	mu     sync.RWMutex
	rd, wr waiter
}

// waiter is an epoll set that holds the socket while a call waits for it to become readable
// (rd) or writable (wr). mu lets one call wait at a time, since the fd can only be added once;
// the others queue on it, and look again when they get it.
type waiter struct {
	mu   sync.Mutex
	ep   *os.File // nil until the first wait
	rc   syscall.RawConn
	fn   func(uintptr) bool // ready, bound once
	ev   [1]unix.EpollEvent
	errn syscall.Errno

	// kick, if kicks (rd only), is an eventfd in the set for good: the end of a quiet send
	// writes it to wake a call waiting without the socket in the set. -1 until made.
	kick  int
	kicks bool
	// smu guards the fields below, which quiet sends change while a call waits, and the
	// making and closing of the set.
	smu     sync.Mutex
	closed  bool
	quiet   int  // quiet sends in progress: the socket stays out of the set
	waiting bool // a call waits, or is about to
	in      bool // the socket is in the set
	kicked  bool // kick is written and not yet read
}

func newFDConn(fd int) *fdConn {
	c := &fdConn{fd: fd}
	c.rd.kick, c.wr.kick = -1, -1
	c.rd.kicks = true
	return c
}

// init makes the epoll set, on the first wait: most sockets never wait to write, and a
// send-only socket never reads. w.smu is held.
func (w *waiter) init() error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return os.NewSyscallError("fcntl", err)
	}
	if w.kicks {
		kick, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			unix.Close(ep)
			return os.NewSyscallError("eventfd", err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(kick)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, kick, &ev); err != nil {
			unix.Close(kick)
			unix.Close(ep)
			return os.NewSyscallError("epoll_ctl", err)
		}
		w.kick = kick
	}
	// Non-blocking, so that the runtime poller takes it: an epoll fd is readable while its
	// set has a ready member.
	f := os.NewFile(uintptr(ep), "rawsock:epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	w.ep, w.rc, w.fn = f, rc, w.ready
	return nil
}

// close closes the set, which wakes the call waiting in it, and keeps later calls from
// making another. The kick is closed apart, by closeKick, once no call can write it.
func (w *waiter) close() {
	w.smu.Lock()
	defer w.smu.Unlock()
	w.closed = true
	if w.ep != nil {
		w.ep.Close()
	}
}

func (w *waiter) closeKick() {
	if w.kick >= 0 {
		unix.Close(w.kick)
	}
}

// ready runs inside the epoll file's RawConn.Read: it reports whether the set has a ready
// member, or an error to end the wait with.
func (w *waiter) ready(ep uintptr) bool {
	for {
		n, err := unix.EpollWait(int(ep), w.ev[:], 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			w.errn = err.(syscall.Errno)
			return true
		}
		return n > 0
	}
}

// ctl adds the socket fd to the set, or takes it out; w.smu is held. It goes through the
// file's Control, which fails once Close has closed the set.
func (w *waiter) ctl(add bool, fd int, events uint32) error {
	var cerr error
	err := w.rc.Control(func(ep uintptr) {
		if add {
			ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
			cerr = unix.EpollCtl(int(ep), unix.EPOLL_CTL_ADD, fd, &ev)
		} else {
			cerr = unix.EpollCtl(int(ep), unix.EPOLL_CTL_DEL, fd, nil)
		}
	})
	if err != nil {
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("epoll_ctl", cerr)
	}
	w.in = add
	return nil
}

// wait returns when fd is ready for events, or may be: the caller looks again.
func (w *waiter) wait(fd int, events uint32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.smu.Lock()
	if w.closed {
		w.smu.Unlock()
		return net.ErrClosed
	}
	if w.ep == nil {
		if err := w.init(); err != nil {
			w.smu.Unlock()
			return err
		}
	}
	w.waiting = true
	var err error
	if w.quiet == 0 {
		err = w.ctl(true, fd, events)
	}
	w.smu.Unlock()
	if err == nil {
		w.errn = 0
		err = w.rc.Read(w.fn)
		if err == nil && w.errn != 0 {
			err = os.NewSyscallError("epoll_wait", w.errn)
		}
	}
	w.smu.Lock()
	w.waiting = false
	if w.in {
		// Once Close has closed the set, the fd has left it with it, and c.closing tells.
		if derr := w.ctl(false, fd, 0); err == nil {
			err = derr
		}
	}
	if w.kicked {
		var buf [8]byte
		unix.Read(w.kick, buf[:])
		w.kicked = false
	}
	w.smu.Unlock()
	return err
}

// hush begins a quiet send: until the matching unhush, a call waiting in w is not woken by the
// socket, which leaves the set. A burst of sends whose answers the kernel queues to our own
// socket as it sends (loopback, a veth) would otherwise run epoll's wakeup callbacks twice per
// answer, nested, while the waiting reader could not run anyway until the burst ends.
func (w *waiter) hush(fd int) {
	w.smu.Lock()
	w.quiet++
	if w.in {
		// A failure leaves the socket in the set: the wait is only less quiet.
		w.ctl(false, fd, 0)
	}
	w.smu.Unlock()
}

// unhush ends a quiet send; the last one wakes a waiting call, which looks at the socket again.
func (w *waiter) unhush() {
	w.smu.Lock()
	w.quiet--
	if w.quiet == 0 && w.waiting && !w.in && !w.kicked {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		if _, err := unix.Write(w.kick, one[:]); err == nil {
			w.kicked = true
		}
	}
	w.smu.Unlock()
}

// Read calls f until it returns true, waiting until fd is readable whenever it returns false.
func (c *fdConn) Read(f func(fd uintptr) bool) error { return c.do(f, &c.rd, unix.EPOLLIN) }

// Write calls f until it returns true, waiting until fd is writable whenever it returns false.
func (c *fdConn) Write(f func(fd uintptr) bool) error { return c.do(f, &c.wr, unix.EPOLLOUT) }

// Control calls f with the fd.
func (c *fdConn) Control(f func(fd uintptr)) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closing.Load() {
		return net.ErrClosed
	}
	f(uintptr(c.fd))
	return nil
}

func (c *fdConn) do(f func(fd uintptr) bool, w *waiter, events uint32) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for {
		if c.closing.Load() {
			return net.ErrClosed
		}
		if f(uintptr(c.fd)) {
			return nil
		}
		// EPOLLERR is always reported, so an error-queue entry wakes a reader too.
		if err := w.wait(c.fd, events); err != nil {
			if c.closing.Load() || errors.Is(err, os.ErrClosed) {
				return net.ErrClosed
			}
			return err
		}
	}
}

// Close wakes every waiting call, waits for the calls in progress to leave, and closes fd.
func (c *fdConn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	c.rd.close()
	c.wr.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd.closeKick()
	if err := unix.Close(c.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
