package probe

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/rawsock"
)

// DefaultRecvBuffer is the receive buffer the engine asks for when Config sets none: room for
// about a thousand replies in a burst. Without privilege the kernel caps it at
// net.core.rmem_max.
const DefaultRecvBuffer = 1 << 20

// DefaultTimeout is the Timeout of a Request that sets none: iputils' MAXWAIT.
const DefaultTimeout = 10 * time.Second

// Largest ICMP payloads one datagram can carry: 65535 less the IPv4 header (20) and ICMP header
// (8); for IPv6 the 40-byte header is outside the 65535-byte payload length.
const (
	MaxPayload4 = 65535 - 20 - 8
	MaxPayload6 = 65535 - 8
)

// MaxPayload is the largest payload one echo request of family f can carry.
func MaxPayload(f icmp.Family) int {
	if f == icmp.IPv6 {
		return MaxPayload6
	}
	return MaxPayload4
}

// maxReadErrors bounds consecutive failed reads before a reader gives up, so that a socket in a
// persistent error state cannot spin a core.
const maxReadErrors = 100

// Config configures an Engine. A nil *Config and the zero value mean: choose the socket kind
// automatically and use kernel defaults.
type Config struct {
	// Socket is used for both families' sockets. Socket.Source applies only to the family it
	// belongs to.
	Socket rawsock.Config
}

// Request describes one probe.
type Request struct {
	Dst     netip.Addr
	Size    int           // payload bytes after the ICMP header, 0 to MaxPayload4/MaxPayload6
	TTL     int           // 1..255; 0 for the socket default
	Timeout time.Duration // how long an answer counts; 0 means DefaultTimeout
	// Flow, if not zero, is the ICMP checksum every probe carrying it gets, whatever its
	// sequence (see icmp.FixChecksum): routers that balance equal-cost paths hash on the
	// checksum, so probes of one Flow to one destination take one path (Paris traceroute). It
	// needs a Size of at least icmp.FlowWordOffset+2.
	Flow uint16
	// OnResult receives every outcome of the probe (see Result), including answers to an
	// unanswered probe up to one Timeout after its Timeout, as Late. It is called on an engine
	// goroutine, possibly concurrently with the OnResult of other probes, and must not block:
	// the engine's reader waits for it.
	OnResult func(Result)
}

// Counters are engine-wide packet counts, for diagnostics and exporters.
type Counters struct {
	Sent        uint64 // requests written
	SendErrors  uint64 // writes that failed
	Replies     uint64 // first replies matched to a probe
	Duplicates  uint64 // further replies to answered probes
	Errors      uint64 // ICMP errors matched to a probe
	Timeouts    uint64 // probes that got no answer in time
	Late        uint64 // answers after their probe's Timeout, or carrying our token but matching no probe (another source, a wrapped sequence)
	Foreign     uint64 // ICMP packets that were not answers to this engine
	Malformed   uint64 // packets our parser rejected
	BadChecksum uint64 // IPv4 ICMP messages with a wrong checksum (raw sockets only)
	Corrupted   uint64 // replies whose payload differed from the request
	KernelDrops uint64 // packets the kernel dropped for want of receive buffer (SO_RXQ_OVFL)
	ReadErrors  uint64 // failed socket reads
}

type counters struct {
	sent, sendErrors, replies, duplicates, errors, timeouts, late, foreign, malformed,
	badChecksum, corrupted, kernelDrops, readErrors atomic.Uint64
}

// key identifies a pending probe by what an answer carries in its clear fields: the address the
// probe went to and the 16-bit ICMP sequence.
type key struct {
	dst netip.Addr
	seq uint16
}

type entry struct {
	key      key
	seq      uint64
	size     int
	sent     time.Time
	deadline time.Time
	done     bool // answered (reply or error): later answers are duplicates
	// expired: the Timeout passed with no answer and was reported; the entry stays one more
	// Timeout so that an answer arriving now reaches its owner as Late.
	expired  bool
	hidx     int  // index in the deadline heap
	flow     bool // the payload carries a flow word (Request.Flow), not pattern, at 16..17
	onResult func(Result)
}

// socket is one opened ICMP socket and its reader's state.
type socket struct {
	conn *rawsock.Conn
	fam  icmp.Family
	id   uint16 // identifier in our requests; answers must carry it
	// lastDropped is the kernel's cumulative drop count last seen; only the reader touches it.
	lastDropped uint32
	// dgram: the kernel already demultiplexed by ident and rewrote our identifier.
	dgram bool
}

// Engine sends ICMP echo probes and matches their answers. It is safe for concurrent use.
type Engine struct {
	cfg   Config
	token uint64
	rawID uint16
	seq   atomic.Uint64

	openMu sync.Mutex // serialises socket opening; never held on the probe path
	socks  [2]atomic.Pointer[socket]

	mu       sync.Mutex // guards pending, deadlines, closed
	pending  map[key]*entry
	byTime   deadlineHeap
	timer    *time.Timer
	closed   bool
	readers  sync.WaitGroup
	bufs     sync.Pool
	counters counters
}

// New returns an Engine. Sockets are opened on the first probe to each family, or by Open.
func New(cfg *Config) *Engine {
	e := &Engine{
		token:   rand.Uint64(),
		rawID:   uint16(rand.Uint32()),
		pending: make(map[key]*entry),
	}
	if cfg != nil {
		e.cfg = *cfg
	}
	e.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	e.timer = time.AfterFunc(time.Hour, e.expire)
	e.timer.Stop()
	return e
}

func famIndex(f icmp.Family) int {
	if f == icmp.IPv6 {
		return 1
	}
	return 0
}

// Open opens the socket for family f now, if it is not open yet. Programs call it to report a
// privilege problem before their first probe, and to open sockets in the network namespace of
// the calling thread.
func (e *Engine) Open(f icmp.Family) error {
	_, err := e.socket(f)
	return err
}

// Mode reports the kind of socket open for family f, or rawsock.Auto if none is open.
func (e *Engine) Mode(f icmp.Family) rawsock.Mode {
	if s := e.socks[famIndex(f)].Load(); s != nil {
		return s.conn.Mode()
	}
	return rawsock.Auto
}

// IdentShared reports whether another ping socket has bound the ident of this engine's datagram
// socket for family f: Linux gives the replies to the socket bound last, so a caller seeing its
// replies stop can tell "the network lost them" from "another socket took them". It is false
// for raw sockets and when no socket is open.
func (e *Engine) IdentShared(f icmp.Family) (bool, error) {
	s := e.socks[famIndex(f)].Load()
	if s == nil {
		return false, nil
	}
	return s.conn.IdentShared()
}

// RecvBuffer returns the receive buffer of the socket of family f in bytes, 0 if none is open.
func (e *Engine) RecvBuffer(f icmp.Family) int {
	s := e.socks[famIndex(f)].Load()
	if s == nil {
		return 0
	}
	n, _ := s.conn.RecvBuffer()
	return n
}

// Token returns the random token that marks this engine's requests.
func (e *Engine) Token() uint64 { return e.token }

func (e *Engine) socket(f icmp.Family) (*socket, error) {
	i := famIndex(f)
	if s := e.socks[i].Load(); s != nil {
		return s, nil
	}
	e.openMu.Lock()
	defer e.openMu.Unlock()
	if s := e.socks[i].Load(); s != nil {
		return s, nil
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	cfg := e.cfg.Socket
	if cfg.Source.IsValid() && icmp.FamilyOf(cfg.Source) != f {
		cfg.Source = netip.Addr{}
	}
	if cfg.RecvBuffer == 0 {
		cfg.RecvBuffer = DefaultRecvBuffer
	}
	conn, err := rawsock.Listen(f, &cfg)
	if err != nil {
		return nil, err
	}
	s := &socket{conn: conn, fam: f, id: e.rawID}
	if conn.Mode() == rawsock.Unprivileged {
		s.dgram = true
		s.id = conn.ID()
	}
	e.socks[i].Store(s)
	e.readers.Add(1)
	go e.read(s)
	return s, nil
}

// Start sends one probe and returns its engine sequence number; r.OnResult receives its
// outcomes. An error means nothing was sent and OnResult will not be called.
func (e *Engine) Start(r Request) (uint64, error) {
	dst := r.Dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() {
		return 0, fmt.Errorf("%w: %v", ErrInvalidAddr, r.Dst)
	}
	f := icmp.FamilyOf(dst)
	maxSize := MaxPayload(f)
	if r.Size < 0 || r.Size > maxSize {
		return 0, fmt.Errorf("%w: %d (0 to %d for %s)", ErrSize, r.Size, maxSize, f)
	}
	if r.Flow != 0 && r.Size < icmp.FlowWordOffset+2 {
		return 0, fmt.Errorf("%w: %d, a Flow needs at least %d", ErrSize, r.Size, icmp.FlowWordOffset+2)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s, err := e.socket(f)
	if err != nil {
		return 0, err
	}
	ent := &entry{size: r.Size, onResult: r.OnResult, flow: r.Flow != 0}
	bp := e.bufs.Get().(*[]byte)
	defer e.bufs.Put(bp)

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return 0, ErrClosed
	}
	// Skip sequence numbers whose 16-bit form is still awaiting an answer from this
	// destination: two such probes could not be told apart by an 8-byte ICMP error quote. An
	// answered or expired probe only stays to recognise duplicates and late answers, and gives
	// its key up to a new one (a flood sends more than 65536 probes within a timeout); a later
	// answer to it then fails the 64-bit sequence check and counts as late.
	for tries := 0; ; tries++ {
		if tries > 0xffff {
			e.mu.Unlock()
			return 0, fmt.Errorf("%w %s", ErrBusy, dst)
		}
		ent.seq = e.seq.Add(1)
		ent.key = key{dst, uint16(ent.seq)}
		old, busy := e.pending[ent.key]
		if !busy {
			break
		}
		if old.done || old.expired {
			delete(e.pending, old.key)
			heap.Remove(&e.byTime, old.hidx)
			break
		}
	}
	e.pending[ent.key] = ent
	// Registered before the write: a quick reply cannot race its own registration.
	ent.sent = time.Now()
	ent.deadline = ent.sent.Add(timeout)
	heap.Push(&e.byTime, ent)
	if ent.hidx == 0 {
		e.timer.Reset(timeout)
	}
	e.mu.Unlock()

	// One buffer holds the payload and then the packet built from it.
	if need := 2*r.Size + 64; cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	b := icmp.AppendPayload((*bp)[:0], r.Size, e.token, ent.seq)
	pkt := icmp.AppendEchoRequest(b[len(b):], f, s.id, uint16(ent.seq), b)
	if r.Flow != 0 {
		icmp.FixChecksum(pkt, f, r.Flow)
	}
	var opt *rawsock.WriteOptions
	if r.TTL > 0 {
		opt = &rawsock.WriteOptions{TTL: r.TTL}
	}
	if err := s.conn.WriteTo(pkt, dst, opt); err != nil {
		e.counters.sendErrors.Add(1)
		e.remove(ent.key, ent.seq)
		return 0, fmt.Errorf("probe: send to %s: %w", dst, err)
	}
	e.counters.sent.Add(1)
	return ent.seq, nil
}

// Send sends one probe and waits for its first outcome. The error is nil for a Reply, else
// Result.Error() (ErrTimeout, an *ICMPErr) or the context's error. A context deadline shorter
// than r.Timeout shortens the probe's wait. Later duplicates are counted by the engine only.
func (e *Engine) Send(ctx context.Context, r Request) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 && (r.Timeout <= 0 || d < r.Timeout) {
			r.Timeout = d
		}
	}
	ch := make(chan Result, 1)
	r.OnResult = func(res Result) {
		// Only the first outcome answers Send; a buffered slot of one always takes it.
		select {
		case ch <- res:
		default:
		}
	}
	seq, err := e.Start(r)
	if err != nil {
		return Result{}, err
	}
	select {
	case res := <-ch:
		return res, res.Error()
	case <-ctx.Done():
		e.Cancel(r.Dst, seq)
		select {
		case res := <-ch: // it raced the cancellation and won
			return res, res.Error()
		default:
		}
		return Result{Outcome: Canceled, Dst: r.Dst.Unmap(), Seq: seq, TTL: -1, Err: ctx.Err()}, ctx.Err()
	}
}

// remove drops the pending probe (dst, seq) if it is still registered, and reports whether it
// was still unanswered. Entries are removed exactly once: here, by expire or by Close.
func (e *Engine) remove(k key, seq uint64) (unanswered bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent := e.pending[k]
	if ent == nil || ent.seq != seq {
		return false
	}
	delete(e.pending, k)
	heap.Remove(&e.byTime, ent.hidx)
	return !ent.done
}

// Cancel gives up the probe (dst, seq) before its Timeout. Its OnResult is not called again.
// It reports whether the probe was still unanswered.
func (e *Engine) Cancel(dst netip.Addr, seq uint64) bool {
	return e.remove(key{dst.Unmap(), uint16(seq)}, seq)
}

// expire runs on the engine's single timer: every probe whose deadline has passed is removed
// and, if unanswered, reported as a Timeout. No goroutine or timer per probe.
func (e *Engine) expire() {
	now := time.Now()
	var lost []*entry
	e.mu.Lock()
	for len(e.byTime) > 0 && !e.byTime[0].deadline.After(now) {
		ent := e.byTime[0]
		if ent.expired {
			heap.Pop(&e.byTime)
			delete(e.pending, ent.key)
			continue
		}
		if ent.done {
			// Answered: it only stayed to recognise duplicates. Later copies are counted
			// late by their token.
			heap.Pop(&e.byTime)
			delete(e.pending, ent.key)
			continue
		}
		// Unanswered: report the Timeout and keep the entry one more Timeout, so that an
		// answer now reaches the probe's owner as Late.
		ent.expired = true
		ent.deadline = ent.deadline.Add(ent.deadline.Sub(ent.sent))
		heap.Fix(&e.byTime, 0)
		lost = append(lost, ent)
	}
	if len(e.byTime) > 0 && !e.closed {
		e.timer.Reset(e.byTime[0].deadline.Sub(now))
	}
	e.mu.Unlock()
	for _, ent := range lost {
		e.counters.timeouts.Add(1)
		if ent.onResult != nil {
			ent.onResult(Result{Outcome: Timeout, Dst: ent.key.dst, Seq: ent.seq, Sent: ent.sent, TTL: -1})
		}
	}
}

// Close closes the sockets, stops the readers and reports every unanswered probe as Canceled
// with ErrClosed. Later calls return ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.closed = true
	e.timer.Stop()
	var left []*entry
	for _, ent := range e.byTime {
		if !ent.done {
			left = append(left, ent)
		}
	}
	e.byTime = nil
	e.pending = make(map[key]*entry)
	e.mu.Unlock()

	e.openMu.Lock()
	var errs []error
	for i := range e.socks {
		if s := e.socks[i].Load(); s != nil {
			errs = append(errs, s.conn.Close())
		}
	}
	e.openMu.Unlock()
	e.readers.Wait()
	for _, ent := range left {
		if ent.onResult != nil {
			ent.onResult(Result{Outcome: Canceled, Dst: ent.key.dst, Seq: ent.seq, Sent: ent.sent, TTL: -1, Err: ErrClosed})
		}
	}
	return errors.Join(errs...)
}

// Counters returns a snapshot of the engine-wide counts.
func (e *Engine) Counters() Counters {
	c := &e.counters
	return Counters{
		Sent: c.sent.Load(), SendErrors: c.sendErrors.Load(), Replies: c.replies.Load(),
		Duplicates: c.duplicates.Load(), Errors: c.errors.Load(), Timeouts: c.timeouts.Load(),
		Late: c.late.Load(), Foreign: c.foreign.Load(), Malformed: c.malformed.Load(),
		BadChecksum: c.badChecksum.Load(), Corrupted: c.corrupted.Load(),
		KernelDrops: c.kernelDrops.Load(), ReadErrors: c.readErrors.Load(),
	}
}

// readBatch is how many packets the reader takes per wakeup, with one recvmmsg. Each has a
// buffer of the largest possible packet; pages a packet never reaches are never touched, so the
// resident cost is a page or two per slot.
const readBatch = 16

// read is the one reader goroutine of socket s.
func (e *Engine) read(s *socket) {
	defer e.readers.Done()
	const slot = 1<<16 + 512
	slab := make([]byte, readBatch*slot)
	bufs := make([][]byte, readBatch)
	for i := range bufs {
		bufs[i] = slab[i*slot : (i+1)*slot : (i+1)*slot]
	}
	var (
		pkts     [readBatch]rawsock.Packet
		msg      icmp.Message
		failures int
	)
	for {
		n, err := s.conn.ReadBatch(bufs, pkts[:])
		if n > 0 {
			failures = 0
			now := time.Now()
			for i := range n {
				e.handle(s, &pkts[i], &msg, now)
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.counters.readErrors.Add(1)
			if failures++; failures > maxReadErrors {
				return
			}
		}
	}
}

// arrival is what the reader learned from one packet that may answer a probe.
type arrival struct {
	outcome    Outcome
	dst        netip.Addr
	seq        uint16
	payload    []byte
	from       netip.Addr
	ttl, size  int
	kernelTime time.Time
	now        time.Time
	kind       icmp.Kind
	typ, code  uint8
	mtu        int
	errno      syscall.Errno
	// quoted: the payload is a quote of our request (ICMP error), not an echoed copy.
	quoted bool
	ext    []byte // RFC 4884 extensions of an ICMP error, aliasing the read buffer
}

func (e *Engine) handle(s *socket, pkt *rawsock.Packet, msg *icmp.Message, now time.Time) {
	if pkt.Dropped != s.lastDropped {
		e.counters.kernelDrops.Add(uint64(pkt.Dropped - s.lastDropped))
		s.lastDropped = pkt.Dropped
	}
	if err := icmp.Parse(s.fam, pkt.Data, msg); err != nil {
		e.counters.malformed.Add(1)
		return
	}
	a := arrival{from: pkt.Src, ttl: pkt.TTL, size: len(pkt.Data), kernelTime: pkt.Time, now: now}
	if pkt.Err != nil {
		// From the error queue of a datagram socket: the data is our own request, the
		// error's details come from the kernel.
		if msg.Kind != icmp.KindEchoRequest {
			e.counters.malformed.Add(1)
			return
		}
		a.outcome, a.quoted = ICMPError, true
		a.dst, a.seq, a.payload = pkt.Dst, msg.Seq, msg.Payload
		a.typ, a.code, a.errno = pkt.Err.Type, pkt.Err.Code, pkt.Err.Errno
		a.kind = icmp.Classify(s.fam, a.typ)
		a.from = pkt.Err.Offender
		if a.kind == icmp.KindPacketTooBig || (a.kind == icmp.KindDestinationUnreachable && s.fam == icmp.IPv4 && a.code == 4) {
			a.mtu = int(pkt.Err.Info)
		}
		if pkt.Err.Origin == rawsock.OriginLocal {
			a.kind, a.typ, a.code = icmp.KindOther, 0, 0
			if a.errno == syscall.EMSGSIZE {
				a.mtu = int(pkt.Err.Info)
			}
		}
		a.size = 0
		e.match(s, &a)
		return
	}
	if !msg.ChecksumOK {
		e.counters.badChecksum.Add(1)
		return
	}
	switch msg.Kind {
	case icmp.KindEchoReply:
		if msg.ID != s.id {
			e.counters.foreign.Add(1)
			return
		}
		a.outcome, a.dst, a.seq, a.payload = Reply, pkt.Src, msg.Seq, msg.Payload
	case icmp.KindDestinationUnreachable, icmp.KindTimeExceeded, icmp.KindPacketTooBig, icmp.KindParameterProblem:
		q := &msg.Quote
		if !q.Valid || int(q.Protocol) != s.fam.Protocol() || q.ICMPType != s.fam.EchoRequestType() || q.ICMPID != s.id {
			e.counters.foreign.Add(1)
			return
		}
		a.outcome, a.quoted = ICMPError, true
		a.dst, a.seq, a.payload = q.Dst.Unmap(), q.ICMPSeq, q.Payload
		a.kind, a.typ, a.code, a.mtu = msg.Kind, msg.Type, msg.Code, msg.MTU
		a.ext = msg.Extensions
	default:
		e.counters.foreign.Add(1)
		return
	}
	e.match(s, &a)
}

// match finds the probe an answer belongs to and delivers its outcome.
func (e *Engine) match(s *socket, a *arrival) {
	token, seq64, hasHeader := icmp.ParsePayload(a.payload)
	e.mu.Lock()
	ent := e.pending[key{a.dst, a.seq}]
	if ent == nil {
		e.mu.Unlock()
		if hasHeader && token == e.token {
			e.counters.late.Add(1)
		} else {
			e.counters.foreign.Add(1)
		}
		return
	}
	corrupted := false
	if ent.size >= icmp.PayloadHeaderLen {
		switch {
		case hasHeader && token != e.token:
			e.mu.Unlock()
			e.counters.foreign.Add(1)
			return
		case hasHeader && seq64 != ent.seq:
			// An older probe with the same 16-bit sequence: the wire sequence wrapped.
			e.mu.Unlock()
			e.counters.late.Add(1)
			return
		case !hasHeader && !a.quoted:
			// A reply too short to carry the header it was sent with.
			corrupted = true
		}
	}
	if !a.quoted && !corrupted {
		bad := icmp.CheckPattern(a.payload) >= 0
		if ent.flow {
			bad = icmp.CheckPatternAfter(a.payload, icmp.FlowWordOffset+2) >= 0
		}
		corrupted = len(a.payload) != ent.size || bad
	}
	res := Result{
		Outcome: a.outcome, Dst: a.dst, Seq: ent.seq, From: a.from, TTL: a.ttl, Size: a.size,
		Sent: ent.sent, Kind: a.kind, Type: a.typ, Code: a.code, MTU: a.mtu, Errno: a.errno,
		Corrupted: corrupted,
	}
	switch {
	case ent.expired:
		res.Outcome = Late
	case ent.done:
		res.Outcome = Duplicate
	}
	ent.done = true
	cb := ent.onResult
	e.mu.Unlock()

	res.RTT = rtt(ent.sent, a.now, a.kernelTime)
	if len(a.ext) > 0 {
		res.Extensions = append([]byte(nil), a.ext...) // the read buffer is reused
	}
	switch res.Outcome {
	case Reply:
		e.counters.replies.Add(1)
	case Duplicate:
		e.counters.duplicates.Add(1)
	case ICMPError:
		e.counters.errors.Add(1)
	case Late:
		e.counters.late.Add(1)
	}
	if corrupted {
		e.counters.corrupted.Add(1)
	}
	if cb != nil {
		cb(res)
	}
}

// rtt is the monotonic time from send to now, less the time the packet waited in the socket
// queue by the kernel's timestamp. Only that short queueing interval is read from the wall
// clock, so a clock step cannot distort the result beyond clamping it.
func rtt(sent, now, kernel time.Time) time.Duration {
	d := now.Sub(sent)
	if !kernel.IsZero() {
		if q := now.Round(0).Sub(kernel); q > 0 && q < d {
			d -= q
		}
	}
	return d
}

// deadlineHeap orders pending probes by deadline for the single expiry timer.
type deadlineHeap []*entry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *deadlineHeap) Push(x any) {
	ent := x.(*entry)
	ent.hidx = len(*h)
	*h = append(*h, ent)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	ent := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ent
}
