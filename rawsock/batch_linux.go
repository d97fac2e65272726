//go:build linux

package rawsock

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
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

// rawSendBatch bounds the messages of one sendmmsg call made without telling the scheduler.
const rawSendBatch = 64

// batchOOBSend is the control message space of one sent message: at most a TTL.
const batchOOBSend = 64

// batchWriter is the state of one WriteBatch call, pooled in the Conn (sysConn.batchers) so that
// concurrent batches need no lock and a batch allocates only when it is longer than any before.
type batchWriter struct {
	fn    func(fd uintptr) bool // b.send, bound once
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte // batchOOBSend bytes per message
	vlen  int    // messages to send
	n     int    // messages sent
	errno syscall.Errno
	// stale, retries and errFirst are as in writer: a datagram socket's sendmmsg can fail on an
	// earlier packet's pending error, which only the first message of a call reports.
	stale    bool
	retries  int
	errFirst *atomic.Bool
}

func (b *batchWriter) grow(n int) {
	if len(b.hdrs) >= n {
		return
	}
	b.hdrs = make([]unix.Mmsghdr, n)
	b.iovs = make([]unix.Iovec, n)
	b.names = make([]unix.RawSockaddrInet6, n)
	b.oob = make([]byte, n*batchOOBSend)
}

// send runs inside RawConn.Write. It sends hdrs[n:vlen] with as many sendmmsg calls as it
// takes, and returns false to park in the poller while the send buffer is full; it resumes
// where it stopped.
//
// The calls are raw: the Go scheduler is not told of them. On loopback and veth links the kernel
// makes and queues the answers inside the sending call, so a sendmmsg of dozens of packets runs
// long enough for the runtime's monitor to hand the goroutine's P to another thread, and every
// such hand-off costs a wakeup and context switches (10,000 targets x 3 on one P: 10,550
// context switches through the scheduler, 595 raw). The socket is non-blocking, so the call
// never sleeps, and rawSendBatch bounds its length (about half a millisecond on a veth).
func (b *batchWriter) send(fd uintptr) bool {
	for b.n < b.vlen {
		vlen := min(b.vlen-b.n, rawSendBatch)
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[b.n])), uintptr(vlen), 0, 0, 0)
		switch e {
		case 0:
			// A message that fails after the first ends the call with the count before it and
			// its error lost; the next call starts with it and reports the error.
			b.n += int(r)
			b.retries = 0
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		if b.stale && staleErrno(e) && b.retries < maxStaleRetries {
			b.retries++
			b.errFirst.Store(true)
			continue
		}
		b.errno = e
		return true
	}
	return true
}

func (c *Conn) writeBatch(msgs []Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		chunk := msgs[sent:min(len(msgs), sent+maxBatch)]
		if c.sys.closed.Load() {
			return sent, c.opError("write", chunk[0].Dst, net.ErrClosed)
		}
		b := c.sys.batchers.Get().(*batchWriter)
		b.grow(len(chunk))
		// Messages up to the first invalid one go out; that one's error is reported after them.
		var invalid error
		k := 0
		for ; k < len(chunk); k++ {
			m := &chunk[k]
			namelen, ctrl, err := c.prepare(&b.names[k], b.oob[k*batchOOBSend:(k+1)*batchOOBSend], m.Dst, m.TTL)
			if err != nil {
				invalid = err
				break
			}
			h := &b.hdrs[k]
			*h = unix.Mmsghdr{}
			h.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[k]))
			h.Hdr.Namelen = namelen
			b.iovs[k] = unix.Iovec{}
			if len(m.Data) > 0 {
				b.iovs[k].Base = &m.Data[0]
			}
			b.iovs[k].SetLen(len(m.Data))
			h.Hdr.Iov = &b.iovs[k]
			h.Hdr.SetIovlen(1)
			if ctrl > 0 {
				h.Hdr.Control = &b.oob[k*batchOOBSend]
				h.Hdr.SetControllen(ctrl)
			}
		}
		b.vlen, b.n, b.errno = k, 0, 0
		b.stale, b.retries, b.errFirst = c.mode == Unprivileged, 0, &c.sys.errFirst
		var err error
		if k > 0 {
			err = c.sys.rc.Write(b.fn)
		}
		n, errno := b.n, b.errno
		for i := range k {
			b.iovs[i].Base = nil // do not keep the caller's buffers alive from the pool
		}
		c.sys.batchers.Put(b)
		sent += n
		switch {
		case err != nil:
			return sent, c.pollError("write", chunk[min(n, len(chunk)-1)].Dst, err)
		case errno != 0:
			return sent, c.opError("write", chunk[n].Dst, os.NewSyscallError("sendmmsg", errno))
		case invalid != nil:
			return sent, invalid
		}
	}
	return sent, nil
}
