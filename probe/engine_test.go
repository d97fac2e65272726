package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/rawsock"
)

var (
	lo4 = netip.MustParseAddr("127.0.0.1")
	lo6 = netip.MustParseAddr("::1")
)

// newEngine returns an engine of the given socket mode, or skips when this machine cannot open
// that kind of socket for that family (no privilege, no IPv6).
func newEngine(t testing.TB, mode rawsock.Mode, f icmp.Family) *Engine {
	t.Helper()
	e := New(&Config{Socket: rawsock.Config{Mode: mode}})
	if err := e.Open(f); err != nil {
		// The host's ping_group_range is not ours to change; lab_test.go covers datagram
		// sockets inside a namespace where the test sets it.
		t.Skipf("cannot open %s %s socket here: %v", mode, f, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type modeFamily struct {
	mode rawsock.Mode
	dst  netip.Addr
}

func (m modeFamily) String() string { return fmt.Sprintf("%s/%s", m.mode, icmp.FamilyOf(m.dst)) }

var matrix = []modeFamily{
	{rawsock.Privileged, lo4}, {rawsock.Unprivileged, lo4},
	{rawsock.Privileged, lo6}, {rawsock.Unprivileged, lo6},
}

func (e *Engine) pendingLen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Every registered entry is queued once; the queues may also hold dead entries.
	live := 0
	for _, q := range [][]handle{e.byTime, e.fifo.contents()} {
		for _, h := range q {
			if !e.ent(h).is(entryDead) {
				live++
				if got, _ := e.pending.get(keyOf(e.ent(h).dst, uint16(e.ent(h).seq))); got != h {
					panic("a queued live entry is not registered")
				}
			}
		}
	}
	if live != len(e.pending.handles()) {
		panic("pending map and deadline queues disagree")
	}
	return len(e.pending.handles())
}

// handles lists the slots of every registered probe.
func (t *table) handles() []handle {
	var hs []handle
	for _, h := range t.v4 {
		hs = append(hs, h)
	}
	for _, h := range t.v6 {
		hs = append(hs, h)
	}
	return hs
}

func TestSendLoopback(t *testing.T) {
	for _, m := range matrix {
		t.Run(m.String(), func(t *testing.T) {
			e := newEngine(t, m.mode, icmp.FamilyOf(m.dst))
			for _, size := range []int{0, 8, 15, 16, 56, 1400, 9000} {
				before := time.Now()
				res, err := e.Send(context.Background(), Request{Dst: m.dst, Size: size, Timeout: 5 * time.Second})
				if err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				if res.Outcome != Reply || res.From != m.dst || res.Size != 8+size || res.Corrupted {
					t.Fatalf("size %d: got %+v", size, res)
				}
				if res.RTT <= 0 || res.RTT > time.Since(before) {
					t.Fatalf("size %d: rtt %v outside (0, %v]", size, res.RTT, time.Since(before))
				}
				if res.TTL != 64 {
					t.Errorf("size %d: reply TTL %d, want Linux's default 64", size, res.TTL)
				}
			}
			c := e.Counters()
			if c.Sent != 7 || c.Replies != 7 || c.Foreign != 0 || c.Malformed != 0 || c.Late != 0 {
				t.Errorf("counters %+v", c)
			}
		})
	}
}

// TestPingSummary checks a series through the Pinger and that the pending table is empty after.
func TestPingSummary(t *testing.T) {
	for _, m := range matrix {
		t.Run(m.String(), func(t *testing.T) {
			e := newEngine(t, m.mode, icmp.FamilyOf(m.dst))
			var got []Result
			s, err := e.Ping(context.Background(), m.dst, &PingConfig{
				Count: 5, Interval: time.Millisecond, Timeout: 5 * time.Second,
				OnResult: func(r Result) { got = append(got, r) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if s.Sent != 5 || s.Received != 5 || s.Lost != 0 || s.Errors != 0 || s.Duplicates != 0 {
				t.Fatalf("summary %+v", s)
			}
			if s.Min <= 0 || s.Min > s.Avg || s.Avg > s.Max {
				t.Fatalf("rtt figures out of order: %+v", s)
			}
			if len(got) != 5 {
				t.Fatalf("OnResult saw %d results, want 5", len(got))
			}
			seen := map[uint64]bool{}
			for _, r := range got {
				if r.Outcome != Reply || seen[r.Seq] {
					t.Fatalf("bad or repeated result %+v", r)
				}
				seen[r.Seq] = true
			}
			// Answered entries stay until their timeout for duplicate detection; Close
			// must then leave nothing behind.
			if n := e.pendingLen(); n > 5 {
				t.Fatalf("%d pending entries after 5 probes", n)
			}
			e.Close()
			if n := e.pendingLen(); n != 0 {
				t.Fatalf("%d pending entries after Close", n)
			}
		})
	}
}

// TestEnginesIsolated runs several engines in one process against the same host at once: each
// must count exactly its own replies, in both socket modes.
func TestEnginesIsolated(t *testing.T) {
	for _, m := range matrix {
		t.Run(m.String(), func(t *testing.T) {
			const engines, count = 8, 20
			es := make([]*Engine, engines)
			for i := range es {
				es[i] = newEngine(t, m.mode, icmp.FamilyOf(m.dst))
			}
			var wg sync.WaitGroup
			sums := make([]error, engines)
			for i, e := range es {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := e.Ping(context.Background(), m.dst, &PingConfig{Count: count, Interval: 100 * time.Microsecond, Timeout: 5 * time.Second})
					switch {
					case err != nil:
						sums[i] = err
					case s.Received != count || s.Duplicates != 0:
						sums[i] = fmt.Errorf("engine %d: %+v", i, s)
					}
				}()
			}
			wg.Wait()
			for _, err := range sums {
				if err != nil {
					t.Error(err)
				}
			}
			for i, e := range es {
				c := e.Counters()
				if c.Replies != count || c.Duplicates != 0 || c.Late != 0 {
					t.Errorf("engine %d counters %+v", i, c)
				}
				// Raw sockets see the other engines' replies and must call them foreign;
				// datagram sockets are demultiplexed by the kernel and see none.
				if m.mode == rawsock.Unprivileged && c.Foreign != 0 {
					t.Errorf("engine %d (dgram) saw %d foreign packets", i, c.Foreign)
				}
			}
		})
	}
}

// TestConcurrentCallers shares one engine between many goroutines.
func TestConcurrentCallers(t *testing.T) {
	e := newEngine(t, rawsock.Auto, icmp.IPv4)
	const callers, each = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				res, err := e.Send(context.Background(), Request{Dst: lo4, Size: 56, Timeout: 5 * time.Second})
				if err != nil || res.Outcome != Reply {
					errs <- fmt.Errorf("%v %+v", err, res)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := e.Counters(); c.Replies != callers*each || c.Duplicates != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestReachable(t *testing.T) {
	e := newEngine(t, rawsock.Auto, icmp.IPv4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Reachable(ctx, lo4); err != nil {
		t.Fatal(err)
	}
}

func TestStartValidates(t *testing.T) {
	e := New(nil)
	defer e.Close()
	for _, r := range []Request{
		{},
		{Dst: netip.IPv4Unspecified()},
		{Dst: lo4, Size: -1},
		{Dst: lo4, Size: MaxPayload4 + 1},
		{Dst: lo6, Size: MaxPayload6 + 1},
	} {
		if _, err := e.Start(r); !errors.Is(err, ErrInvalidAddr) && !errors.Is(err, ErrSize) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidAddr or ErrSize", r, err)
		}
	}
}

func TestClosedEngine(t *testing.T) {
	e := newEngine(t, rawsock.Auto, icmp.IPv4)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(Request{Dst: lo4}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	if err := e.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

// TestSendCanceled: a canceled context ends Send and removes the pending entry.
func TestSendCanceled(t *testing.T) {
	e := newEngine(t, rawsock.Auto, icmp.IPv4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Send(ctx, Request{Dst: lo4}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with canceled ctx = %v", err)
	}
	if n := e.pendingLen(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}

// TestRTT checks the RTT arithmetic against its definition.
func TestRTT(t *testing.T) {
	sent := time.Now()
	now := sent.Add(10 * time.Millisecond)
	kernel := now.Round(0).Add(-3 * time.Millisecond)
	if got := rtt(sent, now, kernel); got != 7*time.Millisecond {
		t.Errorf("rtt with 3ms queueing = %v, want 7ms", got)
	}
	if got := rtt(sent, now, time.Time{}); got != 10*time.Millisecond {
		t.Errorf("rtt without kernel time = %v, want 10ms", got)
	}
	// A kernel time in the future (clock stepped back) or before the send is ignored.
	if got := rtt(sent, now, now.Round(0).Add(time.Second)); got != 10*time.Millisecond {
		t.Errorf("rtt with future kernel time = %v", got)
	}
	if got := rtt(sent, now, now.Round(0).Add(-time.Hour)); got != 10*time.Millisecond {
		t.Errorf("rtt with ancient kernel time = %v", got)
	}
}

func BenchmarkSendLoopback(b *testing.B) {
	for _, m := range matrix {
		b.Run(m.String(), func(b *testing.B) {
			e := newEngine(b, m.mode, icmp.FamilyOf(m.dst))
			for b.Loop() {
				if _, err := e.Send(context.Background(), Request{Dst: m.dst, Size: 56, Timeout: time.Second}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFlood is gping -f on loopback: one probe in flight, the next sent as soon as the
// reply is in (compare with iputils' ping -f, about 150k/s on this kind of machine).
func BenchmarkFlood(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run(fmt.Sprintf("window-%d", window), func(b *testing.B) {
			e := newEngine(b, rawsock.Privileged, icmp.IPv4)
			b.ResetTimer()
			s, err := e.Ping(context.Background(), lo4, &PingConfig{Count: b.N, Flood: true, Preload: window, Timeout: time.Second})
			if err != nil || s.Received != uint64(b.N) {
				b.Fatalf("%+v %v", s, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "probes/s")
		})
	}
}

// TestFlowProbes: probes with a Flow are answered like any other (the flow word is not taken
// for corruption) in every socket kind; a Flow with a payload too small for its word is refused.
func TestFlowProbes(t *testing.T) {
	for _, m := range matrix {
		t.Run(m.String(), func(t *testing.T) {
			e := newEngine(t, m.mode, icmp.FamilyOf(m.dst))
			for range 5 {
				res, err := e.Send(context.Background(), Request{Dst: m.dst, Size: 56, Flow: 0x5a5a, Timeout: 5 * time.Second})
				if err != nil || res.Outcome != Reply || res.Corrupted {
					t.Fatalf("%+v %v", res, err)
				}
			}
			if _, err := e.Start(Request{Dst: m.dst, Size: 17, Flow: 1}); !errors.Is(err, ErrSize) {
				t.Errorf("17-byte flow probe: %v", err)
			}
		})
	}
}

// contents returns the queued slots in order.
func (r *ring) contents() []handle {
	out := make([]handle, r.n)
	for i := range out {
		out[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	return out
}

// TestDeadlineQueues: slots scheduled with deadlines in any order (runs of equal timeouts, as
// the FIFO expects, mixed with shorter and longer ones, as the heap takes) come out of popDue
// exactly once each, in deadline order, and none before its deadline.
func TestDeadlineQueues(t *testing.T) {
	e := New(nil)
	defer e.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	e.mu.Lock()
	defer e.mu.Unlock()
	want := map[handle]int64{}
	clock := int64(0)
	for i := range 5000 {
		clock += rng.Int64N(3)
		timeout := int64(1000)
		if i%7 == 0 {
			timeout = rng.Int64N(2000)
		}
		h := e.alloc()
		e.ent(h).deadline = clock + timeout
		e.schedule(h)
		want[h] = clock + timeout
	}
	if len(e.byTime) == 0 || e.fifo.n == 0 {
		t.Fatalf("fifo %d, heap %d: the test should exercise both", e.fifo.n, len(e.byTime))
	}
	last := int64(-1)
	for now := int64(0); len(want) > 0; now += 100 {
		for {
			h, ok := e.popDue(now)
			if !ok {
				break
			}
			dl, queued := want[h]
			switch {
			case !queued:
				t.Fatalf("slot %d popped twice", h)
			case dl > now:
				t.Fatalf("slot %d popped at %d, before its deadline %d", h, now, dl)
			case dl < last:
				t.Fatalf("deadline %d popped after %d", dl, last)
			}
			last = dl
			delete(want, h)
		}
		if d, ok := e.nextDeadline(); ok && d <= now {
			t.Fatalf("next deadline %d not popped at %d", d, now)
		}
	}
}

// BenchmarkRegisterMatch is the engine's own cost per probe, without the syscalls: register a
// probe to one of 1,000 destinations and match its reply, as the reader does; answered entries
// stay pending for their Timeout, as in a sweep.
func BenchmarkRegisterMatch(b *testing.B) {
	e := New(nil)
	defer e.Close()
	dsts := make([]netip.Addr, 1000)
	for i := range dsts {
		dsts[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	var got int
	onResult := func(r Result) {
		if r.Outcome == Reply {
			got++
		}
	}
	payload := make([]byte, 0, 64)
	now := time.Now()
	i := 0
	for b.Loop() {
		dst := dsts[i%len(dsts)]
		i++
		e.mu.Lock()
		seq, _, err := e.register(dst, time.Second, &Request{Size: 56, OnResult: onResult})
		e.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		payload = icmp.AppendPayload(payload[:0], 56, e.token, seq)
		e.match(nil, &arrival{outcome: Reply, dst: dst, seq: uint16(seq), payload: payload, from: dst, now: now})
	}
	if got != i {
		b.Fatalf("%d replies matched of %d", got, i)
	}
}

// TestNextWant: a reader that keeps finding one packet per read asks for one, still asks for a
// full batch at least once every recheckReads reads, and goes back to full batches as soon as
// a read finds more than one.
func TestNextWant(t *testing.T) {
	want, run := readBatch, 0
	sinceFull := 0
	for i := 1; i <= 5*recheckReads; i++ {
		want, run = nextWant(1, run)
		if want == readBatch {
			sinceFull = 0
		} else if sinceFull++; sinceFull >= recheckReads {
			t.Fatalf("read %d: %d reads in a row ask for %d, none for a full batch", i, sinceFull, want)
		}
		if i >= singleReads && i%recheckReads != 0 && want != 1 {
			t.Fatalf("read %d of one packet each: asks for %d, want 1", i, want)
		}
		if i < singleReads && want != readBatch {
			t.Fatalf("after only %d single reads: asks for %d, want %d", i, want, readBatch)
		}
	}
	if want, run = nextWant(3, run); want != readBatch || run != 0 {
		t.Fatalf("after a read of 3: asks for %d (run %d), want %d (run 0)", want, run, readBatch)
	}
	if want, _ = nextWant(1, run); want != readBatch {
		t.Fatalf("one single read after a batch: asks for %d, want %d", want, readBatch)
	}
}

// TestStartBatchStamps: a batch leaves in chunks of stampChunk probes, and each probe's send
// time is read just before its chunk's call, not once for the whole batch: all probes of a
// chunk share a send time, and each chunk's is later than the one before. So with several
// senders, whose stamps do not take the engine's lock. A small batch sends (and stamps) each
// probe alone.
func TestStartBatchStamps(t *testing.T) {
	check := func(t *testing.T, e *Engine, dst netip.Addr) {
		for _, n := range []int{3*stampChunk + 1, 2 * stampChunk} {
			chunk := stampChunk
			if n <= 2*stampChunk {
				chunk = 1
			}
			checkBatch(t, e, dst, n, chunk)
		}
	}
	for _, m := range matrix {
		t.Run(m.String(), func(t *testing.T) {
			check(t, newEngine(t, m.mode, icmp.FamilyOf(m.dst)), m.dst)
		})
	}
	t.Run("senders", func(t *testing.T) {
		e := New(&Config{Senders: 2, Socket: rawsock.Config{Mode: rawsock.Privileged}})
		t.Cleanup(func() { e.Close() })
		if err := e.Open(icmp.IPv4); err != nil {
			t.Skipf("cannot open a raw socket here: %v", err)
		}
		check(t, e, lo4)
	})
}

// checkBatch sends n probes to dst with one StartBatch and checks that they were stamped chunk
// by chunk.
func checkBatch(t *testing.T, e *Engine, dst netip.Addr, n, chunk int) {
	t.Helper()
	results := make(chan Result, n)
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Dst: dst, Size: 56, Timeout: 5 * time.Second, OnResult: func(r Result) { results <- r }}
	}
	seqs, errs := make([]uint64, n), make([]error, n)
	e.StartBatch(reqs, seqs, errs)
	sent := map[uint64]time.Time{}
	for range n {
		r := <-results
		if r.Outcome != Reply {
			t.Fatalf("%+v", r)
		}
		sent[r.Seq] = r.Sent
	}
	for i := 1; i < n; i++ {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		prev, cur := sent[seqs[i-1]], sent[seqs[i]]
		if i%chunk == 0 && !cur.After(prev) {
			t.Errorf("batch of %d: probe %d opens a chunk but was stamped %v, not after probe %d's %v", n, i, cur, i-1, prev)
		}
		if i%chunk != 0 && !cur.Equal(prev) {
			t.Errorf("batch of %d: probes %d and %d share a chunk but were stamped %v and %v", n, i-1, i, prev, cur)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, seq := range seqs {
		if h, ok := e.pending.get(keyOf(dst.Unmap(), uint16(seq))); ok && e.ent(h).stamp != nil {
			t.Errorf("probe %d still points at its batch's stamps after StartBatch", seq)
		}
	}
}

// readerless returns an engine whose IPv4 socket is open but read by nobody until the test
// reads it with readOnce: answers wait in the socket as they do while one P is busy sending.
func readerless(t *testing.T) (*Engine, *socket) {
	t.Helper()
	e := New(nil)
	conn, err := rawsock.Listen(icmp.IPv4, &rawsock.Config{Mode: rawsock.Privileged})
	if err != nil {
		t.Skipf("cannot open a raw IPv4 socket here: %v", err)
	}
	s := &socket{conn: conn, fam: icmp.IPv4, id: e.rawID}
	e.socks[0].Store(s)
	t.Cleanup(func() { e.Close() })
	return e, s
}

// readOnce reads and handles what waits in s, as the reader does with one batch.
func readOnce(t *testing.T, e *Engine, s *socket) {
	t.Helper()
	bufs, pkts := make([][]byte, 16), make([]rawsock.Packet, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	n, err := s.conn.ReadBatch(bufs, pkts)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	var msg icmp.Message
	for i := range n {
		e.handle(s, &pkts[i], &msg, time.Now())
	}
	e.caughtUp()
}

// TestExpireWaitsForReader: a probe whose reply waits unread when its deadline passes is not
// reported lost; the reader reports the reply, then expires. Past maxDefer, expiry goes ahead.
func TestExpireWaitsForReader(t *testing.T) {
	e, s := readerless(t)
	got := make(chan Result, 4)
	start := func() {
		if _, err := e.Start(Request{Dst: lo4, Size: 56, Timeout: time.Nanosecond, OnResult: func(r Result) { got <- r }}); err != nil {
			t.Fatal(err)
		}
		// Loopback answers inside the send: the reply waits in the socket now.
		if ok, err := s.conn.Readable(); !ok || err != nil {
			t.Fatalf("no reply waiting after the send: %v %v", ok, err)
		}
	}
	start()
	e.expire() // its deadline has passed: the timer would call this now
	select {
	case r := <-got:
		t.Fatalf("expired with its reply unread: %+v", r)
	default:
	}
	if e.deferred.Load() == 0 {
		t.Fatal("expiry not left to the reader")
	}
	e.mu.Lock()
	armed, now := e.armed, int64(time.Since(e.epoch))
	e.mu.Unlock()
	if armed <= now || armed > now+int64(maxDefer) {
		t.Errorf("timer set for %v from now, want within maxDefer: it must come back if the reader does not", time.Duration(armed-now))
	}
	readOnce(t, e, s)
	if r := <-got; r.Outcome != Reply {
		t.Fatalf("outcome %v, want Reply", r.Outcome)
	}
	if e.deferred.Load() != 0 {
		t.Error("the reader caught up, yet expiry still waits for it")
	}

	// A backlog that never clears delays expiry by maxDefer at most.
	start()
	e.expire()
	e.deferred.Store(e.deferred.Load() - int64(maxDefer))
	e.expire()
	if r := <-got; r.Outcome != Timeout {
		t.Fatalf("outcome %v after maxDefer, want Timeout", r.Outcome)
	}
}

// TestSendDelay: a deadline moves to the probe's send when that came after its registration,
// or has not come yet.
func TestSendDelay(t *testing.T) {
	var stamp atomic.Int64
	for _, c := range []struct {
		name           string
		ent            entry
		stamp, now     int64
		delay, dl, snt int64
	}{
		{"sent with the registration", entry{sent: 100, deadline: 600}, 0, 700, 0, 600, 100},
		{"settled, sent later", entry{sent: 130, deadline: 600, shift: 30}, 0, 700, 30, 630, 130},
		{"chunk sent, batch going on", entry{sent: 100, deadline: 600, stamp: &stamp}, 150, 700, 50, 650, 150},
		{"chunk not sent yet", entry{sent: 100, deadline: 600, stamp: &stamp}, 0, 700, 600, 1200, 700},
	} {
		stamp.Store(c.stamp)
		ent := c.ent
		if d := sendDelay(&ent, c.now); d != c.delay || ent.deadline != c.dl || ent.sent != c.snt || ent.shift != 0 {
			t.Errorf("%s: delay %d, deadline %d, sent %d, shift %d; want %d, %d, %d, 0", c.name, d, ent.deadline, ent.sent, ent.shift, c.delay, c.dl, c.snt)
		}
	}
}
