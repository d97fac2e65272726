//go:build linux

package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// localWatch waits for IPv6 addresses to become local in a namespace.
//
// Linux finishes configuring an IPv6 address asynchronously, even with nodad
// and DAD disabled: a work item joins the solicited-node multicast group and
// inserts the address's local route once the link has carrier. Until then
// the namespace neither answers neighbour solicitations for the address nor
// accepts packets to it. The local route's insertion is the last step, and
// the kernel announces it on the RTNLGRP_IPV6_ROUTE netlink group, so the lab
// waits for that announcement rather than polling.
//
// A localWatch is used by one goroutine.
type localWatch struct {
	ns *NS
	fd int
}

// localWatchTimeout bounds the wait; the work normally runs within
// microseconds, so reaching it means the kernel did not do what we expect.
const localWatchTimeout = 10 * time.Second

// watchLocal6 subscribes to IPv6 route announcements in the namespace; call
// it before adding the addresses to wait for.
func (n *NS) watchLocal6() (*localWatch, error) {
	w := &localWatch{ns: n, fd: -1}
	err := n.Do(func() error {
		// A netlink socket belongs to the namespace it was created in.
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		w.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: watch %s: %w", n.name, err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_IPV6_ROUTE - 1)}
	if err := unix.Bind(w.fd, sa); err != nil {
		w.close()
		return nil, fmt.Errorf("netlab: watch %s: %w", n.name, os.NewSyscallError("bind", err))
	}
	return w, nil
}

func (w *localWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

// wait returns once every address in want has its local route, then closes
// the watch. A dump of the routes covers announcements that came before the
// call; the subscription covers those that come after.
func (w *localWatch) wait(want []netip.Addr) error {
	defer w.close()
	pending := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		if a.Is6() {
			pending[a] = true
		}
	}
	if len(pending) == 0 {
		return nil
	}
	// struct nlmsghdr, then struct rtmsg with only rtm_family set.
	req := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.RTM_GETROUTE)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence number
	req[unix.SizeofNlMsghdr] = unix.AF_INET6  // rtmsg.rtm_family
	if err := unix.Sendto(w.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlab: watch %s: %w", w.ns.name, os.NewSyscallError("sendto", err))
	}

	deadline := time.Now().Add(localWatchTimeout)
	buf := make([]byte, 1<<16)
	for len(pending) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: %s: IPv6 addresses not ready after %v: %v", ErrTimeout, w.ns.name, localWatchTimeout, keys(pending))
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlab: watch %s: %w", w.ns.name, os.NewSyscallError("poll", err))
		}
		if fds[0].Revents == 0 {
			continue // timed out; the deadline check above reports it
		}
		n, _, err := unix.Recvfrom(w.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ENOBUFS means announcements were lost; the lab never makes that many.
			return fmt.Errorf("netlab: watch %s: %w", w.ns.name, os.NewSyscallError("recvfrom", err))
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("netlab: watch %s: %w", w.ns.name, err)
		}
		for i := range msgs {
			if a, ok := localRoute6(&msgs[i]); ok {
				delete(pending, a)
			}
		}
	}
	return nil
}

// localRoute6 returns the address of an RTM_NEWROUTE announcing an IPv6
// local (RTN_LOCAL, /128) route.
func localRoute6(m *syscall.NetlinkMessage) (netip.Addr, bool) {
	if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
		return netip.Addr{}, false
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
	if m.Data[0] != unix.AF_INET6 || m.Data[1] != 128 || m.Data[7] != unix.RTN_LOCAL {
		return netip.Addr{}, false
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_DST {
			if addr, ok := netip.AddrFromSlice(a.Value); ok {
				return addr, true
			}
		}
	}
	return netip.Addr{}, false
}

func keys(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	return out
}
