package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/stats"
)

// Defaults of PingConfig, those of iputils ping.
const (
	DefaultInterval = time.Second
	DefaultSize     = 56
)

// EmptyPayload as PingConfig.Size sends echo requests with no payload at all (ping -s 0).
const EmptyPayload = -1

// PingConfig describes a series of probes to one destination. The zero value pings once a second
// with 56-byte payloads until the context ends.
type PingConfig struct {
	Count    int           // probes to send; 0: until the context ends or Deadline passes
	Interval time.Duration // between sends; 0: DefaultInterval
	// Timeout is how long an answer to one probe counts (iputils -W); 0: DefaultTimeout. After
	// the last probe is sent, Run waits for outstanding answers as iputils does: twice the
	// largest RTT seen (at least a second), or Timeout when nothing has answered yet.
	Timeout  time.Duration
	Deadline time.Duration // stop after this long whatever the count (iputils -w); 0: none
	Size     int           // payload bytes; 0: DefaultSize; EmptyPayload for none
	TTL      int           // 0: socket default
	// Preload probes are sent at once before normal pacing starts (iputils -l).
	Preload int
	// Flood sends the next probe as soon as fewer than max(Preload, 1) are unanswered, and at
	// the latest after Interval (iputils -f, -f -l); a zero Interval then means 10 ms.
	Flood bool

	// OnResult, if set, receives each outcome, on the goroutine that called Run, one at a time,
	// after the summary has counted it.
	OnResult func(Result)
	// OnSend, if set, is called on Run's goroutine after each probe is sent.
	OnSend func(seq uint64)
	// OnUnanswered, if set, is called with the sequence of the previous probe when the next one
	// is about to go out and the previous has had no answer yet (iputils -O).
	OnUnanswered func(seq uint64)
	// OnSendError, if set, receives errors of sends that failed (the probe counts as sent and
	// as an error, as in iputils).
	OnSendError func(err error)
}

// Pinger runs one PingConfig against one destination. Summary may be called from any goroutine
// while Run is going on; Run itself must be called once.
type Pinger struct {
	e   *Engine
	dst netip.Addr
	cfg PingConfig

	// mu guards the fields below. It is held across every send, so that no outcome of a probe
	// can be queued before the event of its send.
	mu       sync.Mutex
	rec      stats.Recorder
	events   []event // sends and outcomes, in order, for Run's goroutine
	spare    []event
	start    time.Time
	last     time.Time
	lastSend time.Time
	woken    time.Time // when a flood send last woke Run's goroutine
	maxRTT   time.Duration
	sent     int // probes sent, failed sends included
	inflight int // probes sent and not settled (answered, lost or canceled)
	window   int // flood: how many probes are kept in flight
	// direct: flood sends may be made by the goroutine that delivers an outcome, as soon as the
	// outcome makes room in the window, instead of waking Run's goroutine to make them.
	direct bool
	runErr error // a send failed in a way that ends the run
	notify chan struct{}
	// deliver is every probe's OnResult: it queues the outcome and, flooding, sends the next.
	deliver func(Result)
}

// event is one send or one outcome, queued for Run's goroutine in the order they happened.
type event struct {
	res     Result
	sendErr error // a failed send
	sent    bool  // a send: res.Seq is its sequence unless sendErr is set
}

// maxQueued bounds the events the delivering goroutine queues before it leaves flood sends to
// Run's goroutine, so that the queue stays small however long Run's goroutine is kept waiting.
const maxQueued = 1024

// A flood wakes Run's goroutine when notifyBatch events wait or notifyDelay has passed.
const (
	notifyBatch = 128
	notifyDelay = time.Millisecond
)

// NewPinger prepares a Pinger. It sends nothing until Run.
func (e *Engine) NewPinger(dst netip.Addr, cfg *PingConfig) *Pinger {
	p := &Pinger{e: e, dst: dst.Unmap(), notify: make(chan struct{}, 1)}
	if cfg != nil {
		p.cfg = *cfg
	}
	switch {
	case p.cfg.Interval > 0:
	case p.cfg.Flood:
		p.cfg.Interval = 10 * time.Millisecond
	default:
		p.cfg.Interval = DefaultInterval
	}
	if p.cfg.Timeout <= 0 {
		p.cfg.Timeout = DefaultTimeout
	}
	switch {
	case p.cfg.Size == 0:
		p.cfg.Size = DefaultSize
	case p.cfg.Size < 0:
		p.cfg.Size = 0
	}
	p.window = max(p.cfg.Preload, 1)
	// The engine calls this on its own goroutines; queueing instead of calling OnResult there
	// keeps a slow consumer from stalling the reader, and never drops an outcome. A flood's
	// next probe goes out from here: a hop through Run's goroutine would cost two goroutine
	// switches per probe, which is most of a flood's time on loopback.
	p.deliver = func(r Result) {
		p.mu.Lock()
		p.events = append(p.events, event{res: r})
		wake := true
		if settles(r.Outcome) {
			p.inflight--
			if p.direct && r.Outcome != Canceled && len(p.events) < maxQueued && p.inflight < p.window && p.more() {
				// The flood goes on without Run's goroutine, which only reports: waking it
				// per probe would cost a thread wakeup each. It runs when the queue has
				// grown, when a little time has passed, and at the latest on its send
				// timer, an Interval after this send.
				now := time.Now()
				p.sendLocked(now)
				wake = len(p.events) >= notifyBatch || now.Sub(p.woken) >= notifyDelay
				if wake {
					p.woken = now
				}
			}
		}
		p.mu.Unlock()
		if !wake {
			return
		}
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
	return p
}

// settles reports whether an outcome ends its probe (the first one of each probe does).
func settles(o Outcome) bool { return o != Duplicate && o != Late }

// more reports whether probes remain to be sent; p.mu is held.
func (p *Pinger) more() bool { return p.cfg.Count == 0 || p.sent < p.cfg.Count }

// sendLocked sends one probe, with p.mu held, and queues its event. It reports false when
// probing cannot go on at all.
func (p *Pinger) sendLocked(now time.Time) bool {
	seq, err := p.e.Start(Request{Dst: p.dst, Size: p.cfg.Size, TTL: p.cfg.TTL, Timeout: p.cfg.Timeout, OnResult: p.deliver})
	if p.start.IsZero() {
		p.start = now
	}
	p.last, p.lastSend = now, now
	p.sent++
	if err != nil {
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidAddr) || errors.Is(err, ErrSize) {
			p.runErr = err
			p.direct = false
			return false
		}
		p.rec.Sent()
		p.rec.Error()
		p.events = append(p.events, event{sent: true, sendErr: err})
		return true
	}
	p.rec.Sent()
	p.inflight++
	p.events = append(p.events, event{sent: true, res: Result{Seq: seq}})
	return true
}

// Ping sends probes to dst as cfg says and returns their summary. The error is nil when the run
// ended as configured (count reached, deadline or context ended); it reports only failures to
// probe at all, such as a socket that cannot be opened.
func (e *Engine) Ping(ctx context.Context, dst netip.Addr, cfg *PingConfig) (stats.Summary, error) {
	p := e.NewPinger(dst, cfg)
	err := p.Run(ctx)
	return p.Summary(), err
}

// Reachable reports whether dst answers an echo request before ctx ends. It sends a probe every
// DefaultInterval, each waiting up to DefaultTimeout, and returns nil on the first reply.
func (e *Engine) Reachable(ctx context.Context, dst netip.Addr) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := false
	p := e.NewPinger(dst, &PingConfig{OnResult: func(r Result) {
		if r.Outcome == Reply {
			got = true
			cancel()
		}
	}})
	if err := p.Run(ctx); err != nil {
		return err
	}
	if got {
		return nil
	}
	return fmt.Errorf("probe: %s not reachable: %w", dst, ctx.Err())
}

// Summary returns the figures so far. Safe for concurrent use.
func (p *Pinger) Summary() stats.Summary {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.Summary()
}

// Elapsed returns the time from the first send to the last event, as iputils' "time" figure.
func (p *Pinger) Elapsed() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		return 0
	}
	return p.last.Sub(p.start)
}

// Quantile returns the q-quantile of the RTTs so far. Safe for concurrent use.
func (p *Pinger) Quantile(q float64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.Quantile(q)
}

// Run sends the probes and processes their outcomes until the count is done and settled, the
// Deadline passes or ctx ends. Probes still outstanding at the end are canceled: they are
// neither received nor lost in the summary (see stats.Summary.InFlight).
func (p *Pinger) Run(ctx context.Context) error {
	if !p.dst.IsValid() || p.dst.IsUnspecified() {
		return fmt.Errorf("%w: %v", ErrInvalidAddr, p.dst)
	}
	// Open the socket first so that a privilege problem is reported as such, not as a failed
	// send.
	if err := p.e.Open(icmp.FamilyOf(p.dst)); err != nil {
		return err
	}
	if p.cfg.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.Deadline)
		defer cancel()
	}
	// outstanding mirrors p.inflight with the sequences, as Run's goroutine learns of them.
	outstanding := make(map[uint64]struct{})
	var (
		lastSeq  uint64
		send     = time.NewTimer(0)
		linger   *time.Timer
		lingerC  <-chan time.Time
		replies  int
		preload  = max(p.cfg.Preload, 1)
		finished bool
	)
	defer send.Stop()
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	// iputils -O reports the previous probe unanswered before each send, which needs Run's
	// view of the outstanding probes: that keeps flood sends on this goroutine.
	p.mu.Lock()
	p.direct = p.cfg.Flood && p.cfg.OnUnanswered == nil
	p.mu.Unlock()

	// sendBurst sends up to n probes; it reports false when probing cannot go on.
	sendBurst := func(n int) bool {
		for range n {
			if p.cfg.OnUnanswered != nil && lastSeq != 0 {
				if _, open := outstanding[lastSeq]; open {
					p.cfg.OnUnanswered(lastSeq)
				}
			}
			p.mu.Lock()
			ok := !p.more() || p.sendLocked(time.Now())
			p.mu.Unlock()
			if !ok {
				return false
			}
			if p.cfg.OnUnanswered != nil {
				replies += p.drain(outstanding, &lastSeq)
			}
		}
		return true
	}

	for !finished {
		select {
		case <-ctx.Done():
			finished = true
		case <-send.C:
			p.mu.Lock()
			n := preload // the first tick sends the preload
			if p.cfg.Flood && preload == 1 {
				// A flood sends when a probe is answered, and at the latest Interval after
				// the last send, however that send was made.
				if d := p.cfg.Interval - time.Since(p.lastSend); d > 0 && !p.lastSend.IsZero() {
					n = 0
					send.Reset(d)
				} else {
					n = max(p.window-p.inflight, 1) // refill the window
				}
			}
			p.mu.Unlock()
			preload = 1
			if n > 0 {
				finished = !sendBurst(n)
				p.mu.Lock()
				if p.more() {
					send.Reset(p.cfg.Interval)
				}
				p.mu.Unlock()
			}
		case <-p.notify:
		case <-lingerC:
			finished = true
		}
		replies += p.drain(outstanding, &lastSeq)
		p.mu.Lock()
		room := 0
		if p.cfg.Flood && p.more() {
			room = p.window - p.inflight
		}
		p.mu.Unlock()
		if room > 0 && !finished {
			// An answer made room in the window (one probe, or Preload) and the delivering
			// goroutine did not fill it: send now, from here.
			finished = !sendBurst(room)
			replies += p.drain(outstanding, &lastSeq)
		}
		p.mu.Lock()
		done := !p.more()
		inflight := p.inflight
		p.mu.Unlock()
		switch {
		case done && p.cfg.Count > 0 && inflight == 0:
			finished = true
		case done && linger == nil:
			if d := p.lingerTime(replies); d < p.cfg.Timeout {
				// Nothing to linger for when the wait is the probes' own Timeout: the
				// engine reports each of them, and a timer racing it would cut the last.
				linger = time.NewTimer(d)
				lingerC = linger.C
			}
		}
	}
	// Stop the flood sends, cancel what is still out, then take in what arrived before the
	// cancel.
	p.mu.Lock()
	p.direct = false
	p.mu.Unlock()
	p.drain(outstanding, &lastSeq)
	for seq := range outstanding {
		p.e.Cancel(p.dst, seq)
	}
	p.drain(outstanding, &lastSeq)
	p.mu.Lock()
	if !p.start.IsZero() {
		p.last = time.Now()
	}
	err := p.runErr
	p.mu.Unlock()
	return err
}

// lingerTime is iputils' wait after the last send: twice the largest RTT (whole seconds, at
// least one) once anything has answered, else the per-probe timeout.
func (p *Pinger) lingerTime(replies int) time.Duration {
	if replies == 0 {
		return p.cfg.Timeout
	}
	p.mu.Lock()
	d := 2 * p.maxRTT
	p.mu.Unlock()
	d = d.Truncate(time.Second)
	if d < time.Second {
		d = time.Second
	}
	return min(d, p.cfg.Timeout)
}

// drain counts and hands on every queued event; it returns how many were first replies.
func (p *Pinger) drain(outstanding map[uint64]struct{}, lastSeq *uint64) (replies int) {
	p.mu.Lock()
	q := p.events
	p.events, p.spare = p.spare[:0], nil
	for i := range q {
		ev := &q[i]
		if ev.sent {
			if ev.sendErr == nil {
				outstanding[ev.res.Seq] = struct{}{}
				*lastSeq = ev.res.Seq
			}
			continue
		}
		r := &ev.res
		switch r.Outcome {
		case Reply:
			p.rec.Reply(r.Seq, r.RTT)
			if r.Corrupted {
				p.rec.Corrupted()
			}
			p.maxRTT = max(p.maxRTT, r.RTT)
			replies++
		case Duplicate:
			p.rec.Duplicate(r.Seq, r.RTT)
		case ICMPError:
			p.rec.Error()
		case Timeout:
			p.rec.Lost()
		case Late:
			p.rec.Late()
		}
		if settles(r.Outcome) {
			delete(outstanding, r.Seq)
		}
	}
	if len(q) > 0 {
		p.last = time.Now()
	}
	p.mu.Unlock()
	for i := range q {
		ev := &q[i]
		switch {
		case ev.sent && ev.sendErr != nil:
			if p.cfg.OnSendError != nil {
				p.cfg.OnSendError(ev.sendErr)
			}
		case ev.sent:
			if p.cfg.OnSend != nil {
				p.cfg.OnSend(ev.res.Seq)
			}
		case p.cfg.OnResult != nil:
			p.cfg.OnResult(ev.res)
		}
	}
	clear(q)
	p.mu.Lock()
	if p.spare == nil {
		p.spare = q[:0]
	}
	p.mu.Unlock()
	return replies
}
