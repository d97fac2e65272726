//go:build linux

package rawsock

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch bounds the messages of one recvmmsg or sendmmsg call (the kernel's UIO_MAXIOV).
const maxBatch = 1024

// batchOOB is the control message space of one batched message: a timestamp, SO_RXQ_OVFL, the
// TTL and the packet info take about 120 bytes. Error-queue messages, which also carry a
// sock_extended_err, are read by the single-message path with its larger buffer.
const batchOOB = 256

// batchReader is the state of the one ReadBatch call in progress, kept in the Conn (guarded by
// rmu) so that a batch allocates only when a call asks for more messages than any before.
type batchReader struct {
	fn     func(fd uintptr) bool // b.recv, bound once
	single *reader               // the error queue and pending errors are its job
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6
	oob    []byte // batchOOB bytes per message
	vlen   int    // messages asked for by the current call
	n      int    // messages received
	viaOne bool   // the single-message path read one message into rd (and bufs[0])
}

func newBatchReader(single *reader, n int) *batchReader {
	b := &batchReader{
		single: single,
		hdrs:   make([]unix.Mmsghdr, n),
		iovs:   make([]unix.Iovec, n),
		names:  make([]unix.RawSockaddrInet6, n),
		oob:    make([]byte, n*batchOOB),
	}
	b.fn = b.recv
	return b
}

// recv runs inside RawConn.Read, as reader.recv does. It reads what the normal queue holds with
// one recvmmsg; when that finds nothing, fails, or an error must be read first, it hands over
// to the single-message path, which knows the error queue and pending socket errors.
func (b *batchReader) recv(fd uintptr) bool {
	b.viaOne, b.n = false, 0
	r := b.single
	var prior syscall.Errno
	if !r.errQueue || !r.errFirst.Load() {
		for i := range b.vlen {
			h := &b.hdrs[i]
			h.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
			h.Hdr.Namelen = unix.SizeofSockaddrInet6
			h.Hdr.Iov = &b.iovs[i]
			h.Hdr.SetIovlen(1)
			h.Hdr.Control = &b.oob[i*batchOOB]
			h.Hdr.SetControllen(batchOOB)
			h.Hdr.Flags = 0
			h.Len = 0
		}
		for {
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.vlen), 0, 0, 0)
			if e == unix.EINTR {
				continue
			}
			if e == 0 && n > 0 {
				b.n = int(n)
				return true
			}
			prior = e
			if e == 0 {
				prior = unix.EAGAIN
			}
			break
		}
	}
	b.viaOne = true
	return r.recvAfter(fd, prior)
}

// ReadBatch is ReadPacket for many packets: it blocks until at least one packet or queued error
// arrives, or the Conn is closed, then fills in up to len(pkts) packets from what has arrived,
// without blocking further, and returns how many. pkts[i] is read into bufs[i] (its Data aliases
// one of bufs), so len(bufs) should equal len(pkts); each buffer follows ReadPacket's rule.
//
// The normal queue is read with one recvmmsg(2), where ReadPacket needs a recvmsg(2) and often
// a wakeup of the reading goroutine per packet. Packets come in arrival order. Queued ICMP
// errors (datagram sockets) are returned as ReadPacket returns them, one per call.
//
// A packet ReadPacket would reject as malformed is left out and the following ones move up:
// then n counts the good packets in pkts[:n], and err wraps ErrMalformed. Any other error comes
// with n == 0. ReadBatch and ReadPacket calls are serialized with each other. Reading allocates
// only when a call asks for more packets than any call before it (at most 1024 are read).
func (c *Conn) ReadBatch(bufs [][]byte, pkts []Packet) (n int, err error) {
	return c.readBatch(bufs, pkts)
}

func (c *Conn) readBatch(bufs [][]byte, pkts []Packet) (int, error) {
	vlen := min(len(bufs), len(pkts), maxBatch)
	if vlen == 0 {
		return 0, nil
	}
	s := &c.sys
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.closed.Load() {
		return 0, c.opError("read", netip.Addr{}, net.ErrClosed)
	}
	if s.batch == nil || len(s.batch.hdrs) < vlen {
		s.batch = newBatchReader(&s.rd, vlen)
	}
	b := s.batch
	b.vlen = vlen
	for i := range vlen {
		b.iovs[i] = unix.Iovec{}
		if len(bufs[i]) > 0 {
			b.iovs[i].Base = &bufs[i][0]
		}
		b.iovs[i].SetLen(len(bufs[i]))
	}
	r := &s.rd
	r.iov = b.iovs[0]
	r.errno, r.n = 0, 0
	err := s.rc.Read(b.fn)
	for i := range vlen {
		b.iovs[i].Base = nil // do not keep the caller's buffers alive
	}
	r.iov.Base = nil
	if err != nil {
		return 0, c.pollError("read", netip.Addr{}, err)
	}
	if b.viaOne {
		if r.errno != 0 {
			return 0, c.opError("read", netip.Addr{}, os.NewSyscallError("recvmsg", r.errno))
		}
		name := unsafe.Slice((*byte)(unsafe.Pointer(&r.name)), r.msg.Namelen)
		if err := c.fill(&pkts[0], bufs[0][:min(r.n, len(bufs[0]))], name, r.oob[:r.msg.Controllen], r.fromQueue); err != nil {
			return 0, err
		}
		return 1, nil
	}
	// Malformed packets are left out and the rest moved up, so that pkts[:n] are all good.
	n, bad := 0, 0
	var firstErr error
	for i := range b.n {
		h := &b.hdrs[i]
		name := unsafe.Slice((*byte)(unsafe.Pointer(&b.names[i])), h.Hdr.Namelen)
		oob := b.oob[i*batchOOB : i*batchOOB+int(h.Hdr.Controllen)]
		if err := c.fill(&pkts[n], bufs[i][:min(int(h.Len), len(bufs[i]))], name, oob, false); err != nil {
			if bad++; firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
	}
	if bad > 0 {
		if bad > 1 {
			firstErr = fmt.Errorf("%w (and %d more malformed packets)", firstErr, bad-1)
		}
		return n, firstErr
	}
	return n, nil
}
