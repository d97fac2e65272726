package rawsock

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
)

// IdentShared reports whether another ping socket in this network namespace is bound to this
// datagram socket's ident. Linux lets a later socket bind an ident already in use, and the last
// one bound receives the replies, so a shared ident explains replies that stopped arriving. It
// reads /proc/thread-self/net/icmp (icmp6) and returns false for raw sockets, and an error when
// the table cannot be read or does not list this socket (another namespace).
func (c *Conn) IdentShared() (bool, error) {
	if c.mode != Unprivileged {
		return false, nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(c.sys.f.Fd()), &st); err != nil {
		return false, os.NewSyscallError("fstat", err)
	}
	table := "/proc/thread-self/net/icmp"
	if c.family == icmp.IPv6 {
		table += "6"
	}
	data, err := os.ReadFile(table)
	if err != nil {
		return false, err
	}
	return identShared(data, c.id, st.Ino)
}

// identShared scans a /proc/net/icmp table for sockets bound to ident: it reports whether any
// but the one with inode self is, and fails when self is not listed.
func identShared(table []byte, ident uint16, self uint64) (bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // header
	found, shared := false, false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		_, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err1 := strconv.ParseUint(port, 16, 16)
		ino, err2 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil || uint16(p) != ident {
			continue
		}
		if ino == self {
			found = true
		} else {
			shared = true
		}
	}
	if !found {
		return false, fmt.Errorf("rawsock: socket inode %d not in the ping socket table (another network namespace?)", self)
	}
	return shared, nil
}

// RecvBuffer returns the socket's receive buffer in bytes, as the kernel accounts it
// (SO_RCVBUF: twice the size that was asked for, to cover its own bookkeeping). Senders size
// their bursts by it: every queued packet costs it a kernel buffer of a kilobyte or more.
func (c *Conn) RecvBuffer() (int, error) {
	var n int
	var serr error
	err := c.sys.rc.Control(func(fd uintptr) {
		n, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, os.NewSyscallError("getsockopt", err)
	}
	return n, nil
}

// Readable reports whether a read would return at once: a packet, or an entry of the error
// queue, waits. It does not wait itself. A prober asks before it declares probes lost, so that
// answers that came in time but are not read yet are not counted as timeouts.
func (c *Conn) Readable() (bool, error) {
	var ready bool
	var perr error
	err := c.sys.rc.Control(func(fd uintptr) {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds[:], 0)
			if err == unix.EINTR {
				continue
			}
			ready, perr = n > 0, err
			return
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return false, c.opError("poll", netip.Addr{}, os.NewSyscallError("poll", err))
	}
	return ready, nil
}
