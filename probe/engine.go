package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
	// Senders is how many goroutines may send at once through StartBatch (Sweep runs that
	// many). Beside each raw socket it reads from, the engine opens Senders-1 send-only sockets
	// (see rawsock.Config.SendOnly), because the kernel sends on one raw socket at a time, and
	// on a path where the answer is built by this host (loopback, a veth into a namespace) that
	// is most of a probe's cost: one socket tops out at what one core sends. 0 or 1 means one
	// socket per family. Datagram sockets always send alone (answers go to the sending socket),
	// so with Senders > 1 Auto mode tries a raw socket first.
	Senders int
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
	// Tag is the caller's own value for this probe, handed back in each of its Results, so that
	// a caller routing the outcomes of many probes needs no table of its own.
	Tag uint64
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
// probe went to and the 16-bit ICMP sequence. The address is in its 16-byte form (addresses are
// unmapped first, so IPv4 and IPv6 cannot collide); the zone, if any, is checked against the
// entry's dst. 18 bytes instead of netip.Addr's 24 and a uint32 handle instead of a pointer make
// a map slot 24 bytes instead of 40: the table holds every probe answered within a Timeout.
type key struct {
	addr [16]byte
	seq  uint16
}

func keyOf(dst netip.Addr, seq uint16) key { return key{dst.As16(), seq} }

// table is the pending table. IPv4 keys are packed into a uint64, whose maps Go hashes and
// compares fastest (a 16-byte key takes a generic hash and memequal per lookup); IPv6 keys stay
// whole. A slot is 16 bytes for IPv4 and 24 for IPv6.
type table struct {
	v4 map[uint64]handle
	v6 map[key]handle
}

func newTable() table { return table{v4: make(map[uint64]handle), v6: make(map[key]handle)} }

// v4 returns k packed, if its address is an IPv4 address in IPv6 form.
func (k key) v4() (uint64, bool) {
	if [12]byte(k.addr[:12]) != [12]byte{10: 0xff, 11: 0xff} {
		return 0, false
	}
	return uint64(binary.BigEndian.Uint32(k.addr[12:]))<<16 | uint64(k.seq), true
}

func (t *table) get(k key) (handle, bool) {
	if p, ok := k.v4(); ok {
		h, ok := t.v4[p]
		return h, ok
	}
	h, ok := t.v6[k]
	return h, ok
}

func (t *table) set(k key, h handle) {
	if p, ok := k.v4(); ok {
		t.v4[p] = h
		return
	}
	t.v6[k] = h
}

func (t *table) del(k key) {
	if p, ok := k.v4(); ok {
		delete(t.v4, p)
		return
	}
	delete(t.v6, k)
}

// handle is an entry's index in the engine's slab.
type handle uint32

// entry is one registered probe, 80 bytes: the engine keeps one for each probe sent within the
// last Timeout (two for the unanswered), so at thousands of targets it is most of the heap.
type entry struct {
	dst  netip.Addr
	seq  uint64
	tag  uint64
	sent int64 // monotonic nanoseconds since Engine.epoch
	// deadline, in the same clock, is when the entry leaves the deadline queues: its Timeout, or
	// a Timeout later once expired.
	deadline int64
	onResult func(Result)
	// stamp, while StartBatch sends the entry's batch, holds the send time of its chunk once
	// that chunk is sent; StartBatch then moves it into sent.
	stamp *atomic.Int64
	// shift is how much later than its registration the probe left, in ns, once StartBatch
	// knows: its deadline, set at registration, moves by as much when it comes due.
	shift uint32
	size  uint16 // payload bytes; MaxPayload6 fits
	state uint8  // entryDone | entryExpired | entryFlow | entryDead
}

const (
	// entryDone: answered (reply or error); later answers are duplicates.
	entryDone = 1 << iota
	// entryExpired: the Timeout passed with no answer and was reported; the entry stays one more
	// Timeout so that an answer arriving now reaches its owner as Late.
	entryExpired
	// entryFlow: the payload carries a flow word (Request.Flow), not pattern, at 16..17.
	entryFlow
	// entryDead: removed from pending (canceled, failed to send, or its key given to a newer
	// probe); the slot is freed when the deadline queues reach it.
	entryDead
)

func (ent *entry) is(flag uint8) bool { return ent.state&flag != 0 }

// slabChunk entries are allocated at a time; chunks are never moved, so growing the slab
// copies nothing.
const slabChunk = 256

// socket is one opened ICMP socket and its reader's state.
type socket struct {
	conn *rawsock.Conn
	fam  icmp.Family
	id   uint16 // identifier in our requests; answers must carry it
	// lastDropped is the kernel's cumulative drop count last seen; only the reader touches it.
	lastDropped uint32
	// dgram: the kernel already demultiplexed by ident and rewrote our identifier.
	dgram bool
	// senders, if not nil, holds conn and the send-only sockets beside it, each taken by one
	// StartBatch at a time.
	senders chan *rawsock.Conn
	extra   []*rawsock.Conn // the send-only sockets, to close
}

// sender takes a socket to send a batch on; put it back with release.
func (s *socket) sender() *rawsock.Conn {
	if s.senders == nil {
		return s.conn
	}
	return <-s.senders
}

func (s *socket) release(c *rawsock.Conn) {
	if s.senders != nil {
		s.senders <- c
	}
}

// Engine sends ICMP echo probes and matches their answers. It is safe for concurrent use.
type Engine struct {
	cfg   Config
	token uint64
	rawID uint16
	seq   atomic.Uint64

	openMu sync.Mutex // serialises socket opening; never held on the probe path
	socks  [2]atomic.Pointer[socket]

	// epoch is the zero of the entries' int64 clock; its monotonic reading makes every time
	// derived from it monotonic too.
	epoch time.Time

	mu      sync.Mutex // guards the fields below
	pending table
	slab    []*[slabChunk]entry
	free    []handle // slots to reuse
	used    handle   // slots ever handed out
	// Entries leave in deadline order through fifo while deadlines arrive in order, which they
	// do whenever probes share a Timeout (a clock that only advances, plus a constant); the
	// others go through byTime. Either way an entry is pushed once and popped once, and Cancel
	// only marks it dead, so no removal from the middle is ever needed.
	fifo   ring
	byTime handleHeap
	armed  int64 // deadline the timer is set for; -1 when stopped
	// deferred is when expire first found answers unread and left expiry to the readers; 0
	// when it does not wait for them.
	deferred atomic.Int64
	timer    *time.Timer
	closed   bool
	readers  sync.WaitGroup
	bufs     sync.Pool // of *[]byte, Start's packet buffers
	batches  sync.Pool // of *batch
	counters counters
}

// New returns an Engine. Sockets are opened on the first probe to each family, or by Open.
func New(cfg *Config) *Engine {
	e := &Engine{
		token:   rand.Uint64(),
		rawID:   uint16(rand.Uint32()),
		epoch:   time.Now(),
		pending: newTable(),
		armed:   -1,
	}
	if cfg != nil {
		e.cfg = *cfg
	}
	e.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	e.batches.New = func() any { return new(batch) }
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

// senders reports how many StartBatch calls may send at once to family f's socket, once open.
func (e *Engine) senders(f icmp.Family) int {
	if s := e.socks[famIndex(f)].Load(); s != nil && s.senders != nil {
		return cap(s.senders)
	}
	return 1
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
	var conn *rawsock.Conn
	if e.cfg.Senders > 1 && cfg.Mode == rawsock.Auto {
		// Only raw sockets can have senders beside them: try one first, and fall back on
		// Auto's choice (whose error, if it fails too, names both remedies).
		raw := cfg
		raw.Mode = rawsock.Privileged
		conn, _ = rawsock.Listen(f, &raw)
	}
	if conn == nil {
		var err error
		if conn, err = rawsock.Listen(f, &cfg); err != nil {
			return nil, err
		}
	}
	s := &socket{conn: conn, fam: f, id: e.rawID}
	if conn.Mode() == rawsock.Unprivileged {
		s.dgram = true
		s.id = conn.ID()
	}
	if n := e.cfg.Senders; n > 1 && !s.dgram {
		send := cfg
		send.SendOnly = true
		s.senders = make(chan *rawsock.Conn, n)
		s.senders <- conn
		for range n - 1 {
			c, err := rawsock.Listen(f, &send)
			if err != nil {
				for _, c := range s.extra {
					c.Close()
				}
				conn.Close()
				return nil, fmt.Errorf("probe: send-only socket: %w", err)
			}
			s.extra = append(s.extra, c)
			s.senders <- c
		}
	}
	e.socks[i].Store(s)
	e.readers.Add(1)
	go e.read(s)
	return s, nil
}

// Start sends one probe and returns its engine sequence number; r.OnResult receives its
// outcomes. An error means nothing was sent and OnResult will not be called.
func (e *Engine) Start(r Request) (uint64, error) {
	dst, timeout, s, err := e.check(&r)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	seq, _, err := e.register(dst, timeout, &r)
	e.mu.Unlock()
	if err != nil {
		return 0, err
	}
	bp := e.bufs.Get().(*[]byte)
	defer e.bufs.Put(bp)
	// One buffer holds the payload and then the packet built from it.
	if need := 2*r.Size + 64; cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	pkt := e.appendProbe((*bp)[r.Size:r.Size], (*bp)[:0], s, &r, seq)
	var opt *rawsock.WriteOptions
	if r.TTL > 0 {
		opt = &rawsock.WriteOptions{TTL: r.TTL}
	}
	if err := s.conn.WriteTo(pkt, dst, opt); err != nil {
		e.counters.sendErrors.Add(1)
		e.remove(dst, seq)
		return 0, fmt.Errorf("probe: send to %s: %w", dst, err)
	}
	e.counters.sent.Add(1)
	return seq, nil
}

// StartBatch is Start for many probes at once: it registers them all under one lock and sends
// each family's several to a system call (sendmmsg, stampChunk at a time; one at a time in a
// batch of up to 2*stampChunk), where Start makes one per probe. seqs[i] and errs[i] receive what
// Start would have returned for reqs[i]; both must be at least as long as reqs. Probes of one
// family leave in the order given.
func (e *Engine) StartBatch(reqs []Request, seqs []uint64, errs []error) {
	if len(seqs) < len(reqs) || len(errs) < len(reqs) {
		panic("probe: StartBatch: seqs or errs shorter than reqs")
	}
	b := e.batches.Get().(*batch)
	defer e.batches.Put(b)
	b.items = b.items[:0]
	var (
		socks [2]*socket
		need  [2]int // packet bytes
		count [2]int // probes
	)
	for i := range reqs {
		seqs[i], errs[i] = 0, nil
		dst, timeout, s, err := e.check(&reqs[i])
		if err != nil {
			errs[i] = err
			continue
		}
		fi := famIndex(s.fam)
		socks[fi] = s
		need[fi] += echoHeaderLen + reqs[i].Size
		count[fi]++
		b.items = append(b.items, batchItem{req: i, dst: dst, timeout: timeout, fam: uint8(fi)})
	}
	for fi := range b.stamps {
		b.chunk[fi] = stampChunk
		if count[fi] <= 2*stampChunk {
			// A batch this small is paced, not pressed for CPU (a full-speed sweep hands
			// over 64): each probe gets its own call and its own send time.
			b.chunk[fi] = 1
		}
		if chunks := (count[fi] + b.chunk[fi] - 1) / b.chunk[fi]; len(b.stamps[fi]) < chunks {
			b.stamps[fi] = make([]atomic.Int64, chunks)
		}
	}
	// The k-th probe of a family registered here is that family's k-th message, and it
	// leaves with chunk k/b.chunk.
	var pos [2]int
	e.mu.Lock()
	for i := range b.items {
		it := &b.items[i]
		seqs[it.req], it.h, errs[it.req] = e.register(it.dst, it.timeout, &reqs[it.req])
		if errs[it.req] == nil {
			e.ent(it.h).stamp = &b.stamps[it.fam][pos[it.fam]/b.chunk[it.fam]]
			pos[it.fam]++
		}
	}
	e.mu.Unlock()

	// Packets are appended to one buffer per family, sized first so that appends do not copy.
	for fi := range b.msgs {
		b.msgs[fi], b.idx[fi], b.hs[fi] = b.msgs[fi][:0], b.idx[fi][:0], b.hs[fi][:0]
		if cap(b.pkts[fi]) < need[fi] {
			b.pkts[fi] = make([]byte, 0, need[fi])
		}
		b.pkts[fi] = b.pkts[fi][:0]
	}
	for _, it := range b.items {
		if errs[it.req] != nil {
			continue
		}
		r := &reqs[it.req]
		if cap(b.payload) < r.Size {
			b.payload = make([]byte, 0, r.Size)
		}
		pkts := e.appendProbe(b.pkts[it.fam], b.payload[:0], socks[it.fam], r, seqs[it.req])
		pkt := pkts[len(b.pkts[it.fam]):]
		b.pkts[it.fam] = pkts
		b.msgs[it.fam] = append(b.msgs[it.fam], rawsock.Message{Data: pkt, Dst: it.dst, TTL: r.TTL})
		b.idx[it.fam] = append(b.idx[it.fam], it.req)
		b.hs[it.fam] = append(b.hs[it.fam], sentProbe{it.h, seqs[it.req]})
	}
	for fi, msgs := range b.msgs {
		if len(msgs) == 0 {
			continue
		}
		conn := socks[fi].sender()
		for off := 0; off < len(msgs); {
			// Chunks stay aligned after a failed message; its chunk keeps the time
			// read before its first message.
			chunk := b.chunk[fi]
			end := min((off/chunk+1)*chunk, len(msgs))
			if off%chunk == 0 {
				b.stamps[fi][off/chunk].Store(int64(time.Since(e.epoch)))
			}
			n, err := conn.WriteBatch(msgs[off:end])
			e.counters.sent.Add(uint64(n))
			if off += n; err == nil {
				continue
			}
			i := b.idx[fi][off]
			e.counters.sendErrors.Add(1)
			e.remove(msgs[off].Dst, seqs[i])
			seqs[i], errs[i] = 0, fmt.Errorf("probe: send to %s: %w", msgs[off].Dst, err)
			off++
		}
		socks[fi].release(conn)
		for i := range msgs {
			msgs[i] = rawsock.Message{} // let the pool forget the packets' owners
		}
	}
	e.settleStamps(b)
}

// batch is StartBatch's scratch space, pooled in the Engine.
type batch struct {
	items   []batchItem
	pkts    [2][]byte // packets of each family, back to back
	msgs    [2][]rawsock.Message
	idx     [2][]int // the request of each message
	hs      [2][]sentProbe
	stamps  [2][]atomic.Int64 // each chunk's send time, 0 until it is sent
	chunk   [2]int            // probes per chunk
	payload []byte
}

type batchItem struct {
	req     int
	dst     netip.Addr
	timeout time.Duration
	fam     uint8
	h       handle
}

// sentProbe names the entry of a batched probe: the slot and, to tell if the slot still holds
// it, the probe's sequence.
type sentProbe struct {
	h   handle
	seq uint64
}

// stampChunk is how many probes of a batch leave in one sendmmsg, each chunk's send time read
// just before its call. Registration happens before the whole batch goes out: on a veth, where
// each packet's answer is made inside the sending call, a 64-probe call takes 0.3 ms, which the
// last probes' RTTs would include if their send time were read then. 10,000 targets x 3 on the
// lab's fan, mean RTT: 0.214 ms with one send time per 64 probes, 0.028 ms per 8 for the same
// CPU, 0.016 ms per 4 for 8% more; fping, which sends one probe per call, 0.005 ms. Paced at
// -i 0.1, whose batches are about 10 probes sent one per call: 0.008 ms, fping 0.009.
const stampChunk = 8

// settleStamps writes each probe's chunk send time into its entry once the batch has gone out.
// Until then the reader, which can match an answer while the batch is still being sent, reads
// it through the entry's stamp; the chunks' times are atomics so that the senders need not take
// e.mu for each (with several senders, that contention left cores idle).
func (e *Engine) settleStamps(b *batch) {
	e.mu.Lock()
	if !e.closed { // else the slab is gone
		for fi := range b.hs {
			for k, p := range b.hs[fi] {
				st := &b.stamps[fi][k/b.chunk[fi]]
				// The slot may have been freed, or reused, if the probe's Timeout was
				// shorter than the batch took.
				if ent := e.ent(p.h); ent.seq == p.seq && ent.stamp == st {
					if v := st.Load(); v != 0 {
						if v > ent.sent {
							ent.shift = uint32(min(v-ent.sent, math.MaxUint32))
						}
						ent.sent = v
					}
					ent.stamp = nil
				}
			}
		}
	}
	e.mu.Unlock()
	for fi := range b.stamps {
		for i := range b.stamps[fi] {
			b.stamps[fi][i].Store(0)
		}
	}
}

// check validates r for Start and returns its unmapped destination, its timeout and the socket
// of its family, opened if need be.
func (e *Engine) check(r *Request) (netip.Addr, time.Duration, *socket, error) {
	dst := r.Dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() {
		return dst, 0, nil, fmt.Errorf("%w: %v", ErrInvalidAddr, r.Dst)
	}
	f := icmp.FamilyOf(dst)
	maxSize := MaxPayload(f)
	if r.Size < 0 || r.Size > maxSize {
		return dst, 0, nil, fmt.Errorf("%w: %d (0 to %d for %s)", ErrSize, r.Size, maxSize, f)
	}
	if r.Flow != 0 && r.Size < icmp.FlowWordOffset+2 {
		return dst, 0, nil, fmt.Errorf("%w: %d, a Flow needs at least %d", ErrSize, r.Size, icmp.FlowWordOffset+2)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s, err := e.socket(f)
	return dst, timeout, s, err
}

// echoHeaderLen is the ICMP echo header before the payload.
const echoHeaderLen = 8

// appendProbe appends probe seq's echo request to b, building its payload in scratch first
// (scratch must not overlap b's free capacity), and returns the extended b.
func (e *Engine) appendProbe(b, scratch []byte, s *socket, r *Request, seq uint64) []byte {
	payload := icmp.AppendPayload(scratch, r.Size, e.token, seq)
	n := len(b)
	b = icmp.AppendEchoRequest(b, s.fam, s.id, uint16(seq), payload)
	if r.Flow != 0 {
		icmp.FixChecksum(b[n:], s.fam, r.Flow)
	}
	return b
}

// register enters a probe to dst in the pending table and returns its sequence number; e.mu is
// held. Registration comes before the write, so a quick reply cannot race it.
func (e *Engine) register(dst netip.Addr, timeout time.Duration, r *Request) (uint64, handle, error) {
	if e.closed {
		return 0, 0, ErrClosed
	}
	var state uint8
	if r.Flow != 0 {
		state = entryFlow
	}
	var (
		seq uint64
		k   key
	)
	// Skip sequence numbers whose 16-bit form is still awaiting an answer from this
	// destination: two such probes could not be told apart by an 8-byte ICMP error quote. An
	// answered or expired probe only stays to recognise duplicates and late answers, and gives
	// its key up to a new one (a flood sends more than 65536 probes within a timeout); a later
	// answer to it then fails the 64-bit sequence check and counts as late.
	for tries := 0; ; tries++ {
		if tries > 0xffff {
			return 0, 0, fmt.Errorf("%w %s", ErrBusy, dst)
		}
		seq = e.seq.Add(1)
		k = keyOf(dst, uint16(seq))
		oh, busy := e.pending.get(k)
		if !busy {
			break
		}
		if old := e.ent(oh); old.is(entryDone | entryExpired) {
			e.drop(k, old)
			break
		}
	}
	h := e.alloc()
	ent := e.ent(h)
	sent := int64(time.Since(e.epoch))
	*ent = entry{dst: dst, seq: seq, tag: r.Tag, sent: sent, deadline: sent + int64(timeout), onResult: r.OnResult, size: uint16(r.Size), state: state}
	e.pending.set(k, h)
	e.schedule(h)
	if e.armed < 0 || ent.deadline < e.armed {
		e.armed = ent.deadline
		e.timer.Reset(timeout)
	}
	return seq, h, nil
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
		return Result{Outcome: Canceled, Dst: r.Dst.Unmap(), Seq: seq, Tag: r.Tag, TTL: -1, Err: ctx.Err()}, ctx.Err()
	}
}

// remove drops the pending probe (dst, seq) if it is still registered, and reports whether it
// was still unanswered. Entries leave pending exactly once: here, in Start for a newer probe
// with the same key, by expire or by Close.
func (e *Engine) remove(dst netip.Addr, seq uint64) (unanswered bool) {
	k := keyOf(dst, uint16(seq))
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.pending.get(k)
	if !ok {
		return false
	}
	ent := e.ent(h)
	if ent.seq != seq || ent.dst != dst {
		return false
	}
	unanswered = !ent.is(entryDone)
	e.drop(k, ent)
	return unanswered
}

// drop takes the entry registered under k out of pending; its slot stays queued, dead, until its
// deadline or until it reaches the front of its queue. e.mu is held.
func (e *Engine) drop(k key, ent *entry) {
	e.pending.del(k)
	ent.state |= entryDead
	ent.onResult = nil // let its owner go now, not at the deadline
	e.trim()
}

// trim frees the dead slots at the front of the deadline queues; e.mu is held. A flood gives an
// answered probe's key to a new probe 65536 probes later, long before its Timeout, in the order
// the probes were queued: without trim the slab would hold every probe sent within a Timeout (a
// million at 100k/s and 10 s), not only the 65536 that can still be told from their successors.
func (e *Engine) trim() {
	for e.fifo.n > 0 && e.ent(e.fifo.first()).is(entryDead) {
		e.release(e.fifo.pop())
	}
	for len(e.byTime) > 0 && e.ent(e.byTime[0]).is(entryDead) {
		e.release(e.byTime.pop(e))
	}
}

// Cancel gives up the probe (dst, seq) before its Timeout. Its OnResult is not called again.
// It reports whether the probe was still unanswered.
func (e *Engine) Cancel(dst netip.Addr, seq uint64) bool {
	return e.remove(dst.Unmap(), seq)
}

// sendDelay moves an unanswered entry that came due to its send time, if that is later than
// its registration (a batch's chunks leave one after the other) or still to come (its sender
// was preempted between registration and send: a sweep on one P lost whole chunks so, to
// replies that came back in microseconds). It moves the deadline by as much, and returns how
// much; it is 0 when the deadline stands. e.mu is held.
func sendDelay(ent *entry, now int64) int64 {
	var d int64
	switch {
	case ent.stamp == nil:
		d, ent.shift = int64(ent.shift), 0
	case ent.stamp.Load() != 0:
		d = ent.stamp.Load() - ent.sent
		ent.sent += d
	default:
		// Not sent yet: it leaves now at the earliest. StartBatch records the rest in shift.
		d = now - ent.sent
		ent.sent = now
	}
	d = max(d, 0)
	ent.deadline += d
	return d
}

// ended is what is reported of a probe after its entry may have been reused.
type ended struct {
	dst      netip.Addr
	seq, tag uint64
	sent     int64
	onResult func(Result)
}

func (e *Engine) endedOf(ent *entry) ended {
	return ended{ent.dst, ent.seq, ent.tag, ent.sent, ent.onResult}
}

// maxDefer bounds how long expiry waits for the readers to catch up (see expire): answers
// that come faster than they are read must not keep probes from ever timing out.
const maxDefer = 100 * time.Millisecond

// expire runs on the engine's single timer. Answers may wait unread in a socket when it
// fires: on one P the reader runs only once the sender yields, and a 10,000-target sweep with
// fping's 10 ms count-mode timeout had 62% of its probes reported lost whose replies had come
// back in microseconds. Then the readers expire once they have read what waits (caughtUp),
// and the timer comes back after maxDefer in case they never do.
func (e *Engine) expire() {
	now := int64(time.Since(e.epoch))
	if first := e.deferred.Load(); (first == 0 || now-first < int64(maxDefer)) && e.unread() {
		e.deferred.CompareAndSwap(0, now)
		e.mu.Lock()
		// The timer comes back by maxDefer, unless it is set for sooner already (a probe
		// registered since); e.armed is in the past when this is its own firing.
		if !e.closed && (e.armed <= now || e.armed > now+int64(maxDefer)) {
			e.armed = now + int64(maxDefer)
			e.timer.Reset(maxDefer)
		}
		e.mu.Unlock()
		return
	}
	e.expireNow()
}

// unread reports whether a socket holds answers not yet read.
func (e *Engine) unread() bool {
	for i := range e.socks {
		if s := e.socks[i].Load(); s != nil {
			if ok, err := s.conn.Readable(); err == nil && ok {
				return true
			}
		}
	}
	return false
}

// caughtUp is called by a reader after each batch: if expiry waits for the readers and no
// socket holds anything more, it expires now.
func (e *Engine) caughtUp() {
	if e.deferred.Load() != 0 && !e.unread() {
		e.expireNow()
	}
}

// expireNow removes every probe whose deadline has passed and reports the unanswered ones as
// Timeouts. No goroutine or timer per probe.
func (e *Engine) expireNow() {
	e.deferred.Store(0)
	var buf [16]ended
	lost := buf[:0]
	e.mu.Lock()
	now := int64(time.Since(e.epoch))
	for {
		h, ok := e.popDue(now)
		if !ok {
			break
		}
		ent := e.ent(h)
		switch {
		case ent.is(entryDead):
		case ent.is(entryDone | entryExpired):
			// Answered, or expired and past its grace Timeout: it only stayed to recognise
			// duplicates and late answers. Later copies are counted late by their token.
			e.pending.del(keyOf(ent.dst, uint16(ent.seq)))
		case sendDelay(ent, now) > 0:
			// Its Timeout counts from a send later than its registration, or still to come:
			// it comes due again then.
			e.schedule(h)
			continue
		default:
			// Unanswered: report the Timeout and keep the entry one more Timeout, so that an
			// answer now reaches the probe's owner as Late.
			ent.state |= entryExpired
			ent.deadline += ent.deadline - ent.sent
			e.schedule(h)
			lost = append(lost, e.endedOf(ent))
			continue
		}
		e.release(h)
	}
	e.armed = -1
	if dl, ok := e.nextDeadline(); ok && !e.closed {
		e.armed = dl
		e.timer.Reset(time.Duration(dl - now))
	}
	e.mu.Unlock()
	for _, p := range lost {
		e.counters.timeouts.Add(1)
		if p.onResult != nil {
			p.onResult(Result{Outcome: Timeout, Dst: p.dst, Seq: p.seq, Tag: p.tag, Sent: e.epoch.Add(time.Duration(p.sent)), TTL: -1})
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
	var left []ended
	for h := range e.used {
		// Answered and timed-out entries have had their outcome; they only wait for
		// duplicates or late answers. Free slots are zero, which is neither.
		if ent := e.ent(h); ent.onResult != nil && !ent.is(entryDone|entryExpired|entryDead) {
			left = append(left, e.endedOf(ent))
		}
	}
	e.pending = newTable()
	e.slab, e.free, e.used = nil, nil, 0
	e.fifo, e.byTime = ring{}, nil
	e.mu.Unlock()

	e.openMu.Lock()
	var errs []error
	for i := range e.socks {
		if s := e.socks[i].Load(); s != nil {
			errs = append(errs, s.conn.Close())
			for _, c := range s.extra {
				errs = append(errs, c.Close())
			}
		}
	}
	e.openMu.Unlock()
	e.readers.Wait()
	for _, p := range left {
		if p.onResult != nil {
			p.onResult(Result{Outcome: Canceled, Dst: p.dst, Seq: p.seq, Tag: p.tag, Sent: e.epoch.Add(time.Duration(p.sent)), TTL: -1, Err: ErrClosed})
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

// A reader that found one packet in each of its last singleReads reads asks for one packet at
// a time, and for a full batch again every recheckReads reads to notice a backlog. recvmmsg
// goes on to the next message after each packet it finds, copying in that message's header
// and locking the queue to find it empty: a flood with one probe in flight, whose every read
// finds one reply, spent 4 to 7% of its time there.
const (
	singleReads  = 8
	recheckReads = 16
)

// nextWant returns how many packets the reader asks for next, given that its last read found n
// and that singles reads in a row before it found one each; it returns the new run of singles.
func nextWant(n, singles int) (want, run int) {
	if n != 1 {
		return readBatch, 0
	}
	run = singles + 1
	if run < singleReads || run%recheckReads == 0 {
		return readBatch, run
	}
	return 1, run
}

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
		want     = readBatch
		singles  int
	)
	for {
		n, err := s.conn.ReadBatch(bufs[:want], pkts[:want])
		if err == nil {
			want, singles = nextWant(n, singles)
		}
		if n > 0 {
			failures = 0
			now := time.Now()
			for i := range n {
				e.handle(s, &pkts[i], &msg, now)
			}
			e.caughtUp()
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
	var ent *entry
	if h, ok := e.pending.get(keyOf(a.dst, a.seq)); ok {
		if ent = e.ent(h); ent.dst != a.dst {
			ent = nil // same address, another zone
		}
	}
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
	size := int(ent.size)
	if size >= icmp.PayloadHeaderLen {
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
		if ent.is(entryFlow) {
			bad = icmp.CheckPatternAfter(a.payload, icmp.FlowWordOffset+2) >= 0
		}
		corrupted = len(a.payload) != size || bad
	}
	res := Result{
		Outcome: a.outcome, Dst: a.dst, Seq: ent.seq, Tag: ent.tag, From: a.from, TTL: a.ttl, Size: a.size,
		Kind: a.kind, Type: a.typ, Code: a.code, MTU: a.mtu, Errno: a.errno,
		Corrupted: corrupted,
	}
	switch {
	case ent.is(entryExpired):
		res.Outcome = Late
	case ent.is(entryDone):
		res.Outcome = Duplicate
	}
	ent.state |= entryDone
	cb, sent := ent.onResult, ent.sent
	if ent.stamp != nil { // its batch is still going out
		if v := ent.stamp.Load(); v != 0 {
			sent = v
		}
	}
	e.mu.Unlock() // ent may be reused from here on

	res.Sent = e.epoch.Add(time.Duration(sent))
	res.RTT = rtt(res.Sent, a.now, a.kernelTime)
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

// ent returns the entry of slot h; e.mu is held.
func (e *Engine) ent(h handle) *entry { return &e.slab[h/slabChunk][h%slabChunk] }

// alloc returns a free slot; e.mu is held.
func (e *Engine) alloc() handle {
	if n := len(e.free); n > 0 {
		h := e.free[n-1]
		e.free = e.free[:n-1]
		return h
	}
	h := e.used
	if int(h/slabChunk) == len(e.slab) {
		e.slab = append(e.slab, new([slabChunk]entry))
	}
	e.used++
	return h
}

// release returns slot h, out of pending and the deadline queues, for reuse; e.mu is held.
func (e *Engine) release(h handle) {
	*e.ent(h) = entry{}
	e.free = append(e.free, h)
}

// schedule queues slot h by its deadline; e.mu is held.
func (e *Engine) schedule(h handle) {
	dl := e.ent(h).deadline
	if e.fifo.n == 0 || e.ent(e.fifo.last()).deadline <= dl {
		e.fifo.push(h)
		return
	}
	e.byTime.push(e, h)
}

// nextDeadline returns the earliest queued deadline; e.mu is held.
func (e *Engine) nextDeadline() (int64, bool) {
	switch {
	case e.fifo.n == 0 && len(e.byTime) == 0:
		return 0, false
	case e.fifo.n == 0:
		return e.ent(e.byTime[0]).deadline, true
	case len(e.byTime) == 0:
		return e.ent(e.fifo.first()).deadline, true
	}
	return min(e.ent(e.fifo.first()).deadline, e.ent(e.byTime[0]).deadline), true
}

// popDue takes the queued slot with the earliest deadline if that deadline is not after now;
// e.mu is held.
func (e *Engine) popDue(now int64) (handle, bool) {
	useFIFO := e.fifo.n > 0 && (len(e.byTime) == 0 || e.ent(e.fifo.first()).deadline <= e.ent(e.byTime[0]).deadline)
	switch {
	case useFIFO && e.ent(e.fifo.first()).deadline <= now:
		return e.fifo.pop(), true
	case !useFIFO && len(e.byTime) > 0 && e.ent(e.byTime[0]).deadline <= now:
		return e.byTime.pop(e), true
	}
	return 0, false
}

// ring is a FIFO of slots; its length is a power of two.
type ring struct {
	buf  []handle
	head int
	n    int
}

func (r *ring) first() handle { return r.buf[r.head] }
func (r *ring) last() handle  { return r.buf[(r.head+r.n-1)&(len(r.buf)-1)] }

func (r *ring) push(h handle) {
	if r.n == len(r.buf) {
		grown := make([]handle, max(64, 2*len(r.buf)))
		for i := range r.n {
			grown[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = h
	r.n++
}

func (r *ring) pop() handle {
	h := r.buf[r.head]
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return h
}

// handleHeap is a min-heap of slots by deadline, for deadlines that arrive out of order.
type handleHeap []handle

func (q *handleHeap) push(e *Engine, h handle) {
	*q = append(*q, h)
	s := *q
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if e.ent(s[p]).deadline <= e.ent(s[i]).deadline {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (q *handleHeap) pop(e *Engine) handle {
	s := *q
	h := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && e.ent(s[c+1]).deadline < e.ent(s[c]).deadline {
			c++
		}
		if e.ent(s[i]).deadline <= e.ent(s[c]).deadline {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	*q = s
	return h
}
