package probe

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/stats"
)

// Defaults of SweepConfig, fping's.
const (
	DefaultSweepInterval = 10 * time.Millisecond
	DefaultSweepPeriod   = time.Second
	DefaultSweepTimeout  = 500 * time.Millisecond
	DefaultRetries       = 3
	DefaultBackoff       = 1.5
	// DefaultMaxInFlight bounds a burst of replies; a smaller receive buffer lowers it.
	DefaultMaxInFlight = 2048
)

// replyCost is what one queued reply takes of a socket's receive buffer as SO_RCVBUF reports
// it (the kernel's skb overhead included, with a margin): about 1 KiB on Linux for an echo
// reply, and the reported size is twice what was asked for.
const replyCost = 2048

// SweepConfig describes probing many targets at once, as fping does. The zero value is fping's
// default mode: each target is probed until it answers once, with retries.
type SweepConfig struct {
	// Count is the number of probes per target. 0 means fping's default mode: probe until the
	// first reply, giving up after Retries more tries.
	Count int
	// Loop probes every target without end, every Period or as Window allows, until ctx ends
	// (fping -l); Count is then unused. Sweep returns the results so far with ctx's error.
	Loop bool
	// Retries and Backoff apply in default mode only: each retry waits Backoff times longer.
	// Retries < 0 means none; 0 means DefaultRetries; Backoff 0 means DefaultBackoff.
	Retries int
	Backoff float64
	// Interval is the least time between any two sends, to any targets (fping -i); Rate caps
	// the sends per second likewise. The larger gap wins. Interval < 0 means no gap at all.
	Interval time.Duration
	Rate     float64
	// Period is the time between two probes to one target (fping -p).
	Period time.Duration
	// Window, if positive, is throughput mode (with Count > 0 only): each target keeps up to
	// Window probes in flight and is probed again as soon as one of them is answered or times
	// out, not Period after its last probe. Interval, Rate and MaxInFlight still pace the
	// sends, so many targets share them in turn.
	Window int
	// Timeout is how long an answer to one probe counts (fping -t).
	Timeout time.Duration
	Size    int // payload bytes; 0: DefaultSize; EmptyPayload for none
	TTL     int
	// MaxInFlight bounds the probes awaiting an answer, across all targets, so that replies
	// never arrive faster than the socket's receive buffer holds them; 0 means
	// DefaultMaxInFlight, or less if the receive buffer is small (an unprivileged process is
	// held to net.core.rmem_max).
	MaxInFlight int

	// OnResult, if set, receives every outcome with the index of its target and the probe's
	// number for that target (0 for the first; -1 for duplicates), on the goroutine that called
	// Sweep, after the target's summary has counted it.
	OnResult func(target, probe int, r Result)
	// OnSendError, if set, receives failed sends (they count as sent and as errors).
	OnSendError func(target int, err error)
	// OnWait, if set, is called on Sweep's goroutine each time it is about to wait for outcomes
	// or for its next send: output that OnResult buffers can be flushed there, so that it
	// shows at once, yet in a write per burst of outcomes rather than one per outcome.
	OnWait func()
}

// SweepResult is the outcome for one target.
type SweepResult struct {
	Summary stats.Summary
	Alive   bool // at least one reply
}

// target is the scheduling state of one target; constant size, whatever the count.
type target struct {
	dst      netip.Addr
	rec      stats.Recorder
	due      time.Time     // next send
	timeout  time.Duration // grows with Backoff in default mode
	sent     int
	idx      int32
	open     int32 // probes sent and not yet settled; MaxInFlight bounds it
	finished bool  // nothing more to send
	blocked  bool  // throughput mode: has probes to send, but its Window is full
}

// Sweep probes every target as cfg says and returns one result per target, in the same
// order. It returns early, with the results so far, when ctx ends; the probes then in flight
// (at most MaxInFlight) are not waited for: the engine forgets each after its Timeout, and
// their outcomes reach neither the results nor OnResult. The error is non-nil only when probing
// could not start (no socket) or ctx ended.
func (e *Engine) Sweep(ctx context.Context, dsts []netip.Addr, cfg *SweepConfig) ([]SweepResult, error) {
	c := SweepConfig{}
	if cfg != nil {
		c = *cfg
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	c.Retries = max(c.Retries, 0)
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.Interval == 0 {
		c.Interval = DefaultSweepInterval
	}
	c.Interval = max(c.Interval, 0)
	if c.Rate > 0 {
		c.Interval = max(c.Interval, time.Duration(float64(time.Second)/c.Rate))
	}
	if c.Period <= 0 {
		c.Period = DefaultSweepPeriod
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultSweepTimeout
	}
	// MaxInFlight is settled once the sockets are open (below): the default follows their
	// receive buffers.
	switch {
	case c.Size == 0:
		c.Size = DefaultSize
	case c.Size < 0:
		c.Size = 0
	}

	ts := make([]target, len(dsts))
	due := dueQueue{ts: ts}
	helpers := 0 // goroutines that send beside this one
	for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
		for _, d := range dsts {
			if icmp.FamilyOf(d.Unmap()) == f {
				if err := e.Open(f); err != nil {
					return nil, err
				}
				helpers = max(helpers, e.senders(f)-1)
				break
			}
		}
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
		for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
			if rb := e.RecvBuffer(f); rb > 0 {
				c.MaxInFlight = min(c.MaxInFlight, max(16, rb/replyCost))
			}
		}
	}
	now := time.Now()
	for i, d := range dsts {
		ts[i] = target{idx: int32(i), dst: d.Unmap(), due: now, timeout: c.Timeout}
		due.push(&ts[i])
	}

	// Outcomes arrive on engine goroutines and are queued for this one: the targets' state has
	// a single owner, and a slow OnResult never stalls the reader. Each probe's Tag names its
	// target (high half) and its number for that target (low half).
	var (
		mu      sync.Mutex
		queue   []Result
		spare   []Result
		stopped bool // Sweep has returned: outcomes still to come are dropped
		notify  = make(chan struct{}, 1)
	)
	defer func() {
		mu.Lock()
		stopped, queue, spare = true, nil, nil
		mu.Unlock()
	}()
	deliver := func(r Result) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		queue = append(queue, r)
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
	}
	open := 0
	settle := func(r *Result) {
		t := &ts[r.Tag>>32]
		switch r.Outcome {
		case Reply:
			t.rec.Reply(r.Seq, r.RTT)
			if r.Corrupted {
				t.rec.Corrupted()
			}
		case Duplicate:
			t.rec.Duplicate(r.Seq, r.RTT)
		case ICMPError:
			t.rec.Error()
		case Timeout:
			t.rec.Lost()
		case Late:
			t.rec.Late()
		}
		if r.Outcome != Duplicate && r.Outcome != Late {
			t.open--
			open--
			if t.blocked {
				t.blocked = false
				t.due = time.Now()
				due.push(t)
			}
			if c.Count == 0 && !c.Loop {
				// Default mode: done on the first reply; otherwise retry with a longer wait.
				switch {
				case r.Outcome == Reply:
					t.finished = true
				case t.sent <= c.Retries && !t.finished:
					t.timeout = time.Duration(float64(t.timeout) * c.Backoff)
					t.due = time.Now()
					due.push(t)
				default:
					t.finished = true
				}
			}
		}
		if c.OnResult != nil {
			c.OnResult(int(t.idx), int(uint32(r.Tag)), *r)
		}
	}
	drain := func() {
		mu.Lock()
		q := queue
		queue, spare = spare[:0], q
		mu.Unlock()
		for i := range q {
			settle(&q[i])
		}
	}

	// sent accounts for the send of t's next probe, which StartBatch gave err; it reports false
	// when the engine is closed.
	sent := func(t *target, err error, now time.Time) bool {
		t.sent++
		t.rec.Sent()
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return false
			}
			t.rec.Error()
			if c.OnSendError != nil {
				c.OnSendError(int(t.idx), err)
			}
		} else {
			t.open++
			open++
		}
		more := c.Loop || c.Count > 0 && t.sent < c.Count
		switch {
		case more && c.Window > 0:
			if int(t.open) >= c.Window {
				t.blocked = true // the next settled probe queues it
				break
			}
			t.due = now
			due.push(t)
		case more:
			t.due = now.Add(c.Period)
			due.push(t)
		case c.Count == 0 && err != nil && t.sent <= c.Retries:
			t.due = now.Add(c.Period)
			due.push(t)
		case c.Count > 0:
			t.finished = true
		}
		return true
	}

	// The pacing clock: the earliest time of the next send. It advances by Interval per send
	// and may lag the wall clock by at most maxCatchUp, so a late timer (they wake up to a
	// millisecond late) is made up by a short run of sends, not lost, and never by a burst.
	const maxCatchUp = time.Millisecond
	// Probes due together leave in batches of up to sendBatch, one system call each: at full
	// speed that is most of the cost of a probe saved, and replies still come back in time to
	// be read in batches too.
	const sendBatch = 64
	var (
		nextSend time.Time
		sends    int
		// With more than one sender (Config.Senders), batches are handed to helper
		// goroutines while this one picks the next, so that several are in the kernel at
		// once. A helper takes a batch only when idle, and hands it back through done for
		// this goroutine to account for; queued counts the probes with helpers.
		free   []*sendBatchJob
		jobs   chan *sendBatchJob
		done   chan *sendBatchJob
		busy   int
		queued int
	)
	for range helpers + 1 {
		free = append(free, newSendBatchJob(sendBatch))
	}
	if helpers > 0 {
		jobs, done = make(chan *sendBatchJob), make(chan *sendBatchJob, helpers)
		defer close(jobs)
		for range helpers {
			go func() {
				for j := range jobs {
					e.StartBatch(j.reqs, j.seqs, j.errs)
					done <- j
				}
			}()
		}
	}
	// account records the sends of a batch; it reports false when the engine is closed.
	account := func(j *sendBatchJob) bool {
		now := time.Now()
		ok := true
		for i, t := range j.picked {
			ok = sent(t, j.errs[i], now) && ok
		}
		free = append(free, j)
		return ok
	}
	// returned accounts for a batch a helper has sent.
	returned := func(j *sendBatchJob) bool {
		busy--
		queued -= len(j.picked)
		return account(j)
	}
	// collect accounts for the batches helpers have sent, waiting for them all if wait.
	collect := func(wait bool) bool {
		ok := true
		for busy > 0 {
			var j *sendBatchJob
			if wait {
				j = <-done
			} else {
				select {
				case j = <-done:
				default:
					return ok
				}
			}
			ok = returned(j) && ok
		}
		return ok
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var runErr error
loop:
	for due.len() > 0 || open > 0 || busy > 0 {
		now := time.Now()
		for {
			if !collect(false) {
				runErr = ErrClosed
				break loop
			}
			j := free[len(free)-1]
			j.picked, j.reqs = j.picked[:0], j.reqs[:0]
			for len(j.picked) < sendBatch && due.len() > 0 && open+queued+len(j.picked) < c.MaxInFlight && !due.first().due.After(now) && !nextSend.After(now) {
				t := due.pop()
				j.picked = append(j.picked, t)
				tag := uint64(t.idx)<<32 | uint64(uint32(t.sent))
				j.reqs = append(j.reqs, Request{Dst: t.dst, Size: c.Size, TTL: c.TTL, Timeout: t.timeout, Tag: tag, OnResult: deliver})
				if c.Interval > 0 {
					nextSend = later(nextSend, now.Add(-maxCatchUp)).Add(c.Interval)
				}
			}
			if len(j.picked) == 0 {
				break
			}
			free = free[:len(free)-1]
			if sends += len(j.picked); sends >= 1024 {
				sends = 0
				if runErr = ctx.Err(); runErr != nil {
					free = append(free, j)
					break loop
				}
			}
			if jobs != nil {
				select {
				case jobs <- j:
					busy++
					queued += len(j.picked)
					continue
				default:
				}
			}
			e.StartBatch(j.reqs, j.seqs, j.errs)
			if !account(j) {
				runErr = ErrClosed
				break loop
			}
			now = time.Now()
		}
		if due.len() == 0 && open == 0 && busy == 0 {
			// The last sends all failed: no outcome is coming to wake us.
			break
		}
		if due.len() > 0 && open+queued < c.MaxInFlight { // else an outcome will wake us
			timer.Reset(time.Until(later(due.first().due, nextSend)))
		}
		if c.OnWait != nil {
			c.OnWait()
		}
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			break loop
		case <-notify:
			// Outcomes are settled after their sends are accounted for.
			if !collect(true) {
				runErr = ErrClosed
				break loop
			}
			drain()
		case j := <-done:
			if !returned(j) {
				runErr = ErrClosed
				break loop
			}
		case <-timer.C:
		}
	}
	// Batches still with helpers are waited for: their probes count as sent. Probes still open
	// when ctx ends are left to time out in the engine; their outcomes are dropped.
	collect(true)
	drain()

	out := make([]SweepResult, len(ts))
	for i := range ts {
		s := ts[i].rec.Summary()
		out[i] = SweepResult{Summary: s, Alive: s.Received > 0}
	}
	if runErr != nil {
		return out, fmt.Errorf("probe: sweep: %w", runErr)
	}
	return out, nil
}

// sendBatchJob is one batch of Sweep's sends, with what StartBatch returns for it.
type sendBatchJob struct {
	picked []*target
	reqs   []Request
	seqs   []uint64
	errs   []error
}

func newSendBatchJob(n int) *sendBatchJob {
	return &sendBatchJob{
		picked: make([]*target, 0, n),
		reqs:   make([]Request, 0, n),
		seqs:   make([]uint64, n),
		errs:   make([]error, n),
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// dueQueue holds the targets waiting for their next send, earliest first; among equals, in the
// order they were queued (input order at the start), as fping sends. Targets are nearly always
// queued in time order (one Period after a send, and every target has the same Period), so a
// FIFO takes them in O(1); only default mode's retries, due as soon as a probe fails, come out
// of order and go through a heap.
type dueQueue struct {
	ts   []target
	fifo ring // of target indexes
	late dueHeap
}

func (q *dueQueue) len() int { return q.fifo.n + len(q.late) }

func (q *dueQueue) push(t *target) {
	if q.fifo.n == 0 || !t.due.Before(q.ts[q.fifo.last()].due) {
		q.fifo.push(handle(t.idx))
		return
	}
	heap.Push(&q.late, t)
}

// first returns the earliest target; the queue is not empty.
func (q *dueQueue) first() *target {
	if q.fifo.n == 0 {
		return q.late[0]
	}
	if t := &q.ts[q.fifo.first()]; len(q.late) == 0 || !dueBefore(q.late[0], t) {
		return t
	}
	return q.late[0]
}

// pop takes the earliest target; the queue is not empty.
func (q *dueQueue) pop() *target {
	if t := q.first(); len(q.late) == 0 || t != q.late[0] {
		q.fifo.pop()
		return t
	}
	return heap.Pop(&q.late).(*target)
}

func dueBefore(a, b *target) bool {
	if a.due.Equal(b.due) {
		return a.idx < b.idx
	}
	return a.due.Before(b.due)
}

// dueHeap orders targets by their next send time.
type dueHeap []*target

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return dueBefore(h[i], h[j]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(*target)) }
func (h *dueHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
