package rawsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fdPair returns an fdConn around one end of a datagram socket pair, and the other end's fd.
// Unix sockets behave like ours where it matters here: non-blocking, EAGAIN when empty or full.
func fdPair(t *testing.T) (*fdConn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	c := newFDConn(fds[0])
	t.Cleanup(func() {
		c.Close()
		unix.Close(fds[1])
	})
	return c, fds[1]
}

// watched reports whether the epoll set of w holds fd, from /proc/self/fdinfo.
func watched(t *testing.T, w *waiter, fd int) bool {
	t.Helper()
	w.smu.Lock()
	defer w.smu.Unlock()
	if w.ep == nil {
		return false // no set made yet
	}
	var in bool
	var err error
	cerr := w.rc.Control(func(ep uintptr) {
		var b []byte
		if b, err = os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", ep)); err == nil {
			in = strings.Contains(string(b), fmt.Sprintf("tfd: %8d ", fd))
		}
	})
	if cerr != nil || err != nil {
		t.Fatalf("fdinfo: %v %v", cerr, err)
	}
	return in
}

// attempt is a RawConn callback that tries one non-blocking syscall, counts its tries and
// signals the first one that found the socket not ready.
type attempt struct {
	tries   int
	blocked chan struct{}
	n       int
	errno   error
}

func newAttempt() *attempt { return &attempt{blocked: make(chan struct{})} }

func (a *attempt) done(n int, err error) bool {
	a.tries++
	if err == unix.EAGAIN {
		if a.tries == 1 {
			close(a.blocked)
		}
		return false
	}
	a.n, a.errno = n, err
	return true
}

// TestFDConnReadWaits: a read that finds nothing waits, without spinning, until a packet comes,
// and leaves nothing behind in the epoll set it waited in.
func TestFDConnReadWaits(t *testing.T) {
	c, peer := fdPair(t)
	buf := make([]byte, 64)
	a := newAttempt()
	res := make(chan error, 1)
	go func() {
		res <- c.Read(func(fd uintptr) bool {
			n, _, err := unix.Recvfrom(int(fd), buf, 0)
			return a.done(n, err)
		})
	}()
	<-a.blocked
	if _, err := unix.Write(peer, []byte("hello")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("Read: %v", err)
	}
	if a.errno != nil || string(buf[:a.n]) != "hello" {
		t.Fatalf("read %q, %v; want hello", buf[:a.n], a.errno)
	}
	// One try that found nothing, one after the wakeup; a spurious wakeup may add one.
	if a.tries > 3 {
		t.Errorf("%d tries for one packet: the wait does not wait", a.tries)
	}
	if watched(t, &c.rd, c.fd) {
		t.Error("the read's epoll set still holds the socket after the read")
	}
	// Sets are made by the first wait in their direction: a socket that never waited to
	// write has no write set (and no fd for it).
	if err := c.Write(func(fd uintptr) bool { _, err := unix.Write(int(fd), []byte("x")); return err == nil }); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if c.wr.ep != nil {
		t.Error("a write that did not wait made an epoll set")
	}
}

// TestFDConnWriteWaits: a write into a full socket waits until there is room.
func TestFDConnWriteWaits(t *testing.T) {
	c, peer := fdPair(t)
	msg := make([]byte, 512)
	filled, full := 0, false
	for ; filled < 100000 && !full; filled++ {
		if err := c.Control(func(fd uintptr) {
			_, err := unix.Write(int(fd), msg)
			full = err == unix.EAGAIN
		}); err != nil {
			t.Fatalf("Control: %v", err)
		}
	}
	if !full {
		t.Fatal("the socket never filled up")
	}
	filled-- // the last write failed
	a := newAttempt()
	res := make(chan error, 1)
	go func() {
		res <- c.Write(func(fd uintptr) bool {
			n, err := unix.Write(int(fd), []byte("last"))
			return a.done(n, err)
		})
	}()
	<-a.blocked
	// A unix datagram socket is writable again when its peer's queue has room.
	for i := range filled {
		if _, _, err := unix.Recvfrom(peer, msg, 0); err != nil {
			t.Fatalf("read %d of %d: %v", i+1, filled, err)
		}
	}
	if err := <-res; err != nil || a.errno != nil {
		t.Fatalf("Write: %v, %v", err, a.errno)
	}
	n, _, err := unix.Recvfrom(peer, msg, 0)
	if err != nil || string(msg[:n]) != "last" {
		t.Fatalf("read %q, %v after the write; want \"last\"", msg[:n], err)
	}
	if a.tries > 3 {
		t.Errorf("%d tries for one packet: the wait does not wait", a.tries)
	}
	if watched(t, &c.wr, c.fd) {
		t.Error("the write's epoll set still holds the socket after the write")
	}
}

// TestFDConnHush: while a quiet send is in progress a waiting read does not watch the socket,
// and the end of the send wakes it to find what arrived meanwhile.
func TestFDConnHush(t *testing.T) {
	c, peer := fdPair(t)
	buf := make([]byte, 64)
	a := newAttempt()
	res := make(chan error, 1)
	go func() {
		res <- c.Read(func(fd uintptr) bool {
			n, _, err := unix.Recvfrom(int(fd), buf, 0)
			return a.done(n, err)
		})
	}()
	<-a.blocked
	c.rd.hush(c.fd)
	// The reader either waits already or will without adding the socket: quiet is set.
	if watched(t, &c.rd, c.fd) {
		t.Error("a hushed read's epoll set holds the socket")
	}
	if _, err := unix.Write(peer, []byte("meanwhile")); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.rd.unhush()
	select {
	case err := <-res:
		if err != nil || a.errno != nil || string(buf[:a.n]) != "meanwhile" {
			t.Fatalf("Read: %v, %v, %q; want \"meanwhile\"", err, a.errno, buf[:a.n])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the quiet send did not wake the read")
	}
	if watched(t, &c.rd, c.fd) {
		t.Error("the read's epoll set still holds the socket after the read")
	}
}

// TestFDConnClose: Close ends a waiting read with net.ErrClosed, and every call after it.
func TestFDConnClose(t *testing.T) {
	c, _ := fdPair(t)
	a := newAttempt()
	res := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		res <- c.Read(func(fd uintptr) bool {
			n, _, err := unix.Recvfrom(int(fd), buf, 0)
			return a.done(n, err)
		})
	}()
	<-a.blocked
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-res; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("waiting Read after Close: %v, want net.ErrClosed", err)
	}
	called := false
	f := func(uintptr) bool { called = true; return true }
	for name, err := range map[string]error{
		"Read":    c.Read(f),
		"Write":   c.Write(f),
		"Control": c.Control(func(uintptr) { called = true }),
		"Close":   c.Close(),
	} {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v, want net.ErrClosed", name, err)
		}
	}
	if called {
		t.Error("a call after Close reached the fd")
	}
}
