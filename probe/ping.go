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

	mu      sync.Mutex // guards rec, queue, start, last
	rec     stats.Recorder
	queue   []Result
	start   time.Time
	last    time.Time
	maxRTT  time.Duration
	notify  chan struct{}
	deliver func(Result)
}

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
	// The engine calls this on its own goroutines; queueing instead of calling OnResult there
	// keeps a slow consumer from stalling the reader, and never drops an outcome.
	p.deliver = func(r Result) {
		p.mu.Lock()
		p.queue = append(p.queue, r)
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
	return p
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
	outstanding := make(map[uint64]struct{})
	var (
		sent     int
		lastSeq  uint64
		settled  = func() bool { return p.cfg.Count > 0 && sent >= p.cfg.Count && len(outstanding) == 0 }
		send     = time.NewTimer(0)
		linger   *time.Timer
		lingerC  <-chan time.Time
		replies  int
		runErr   error
		preload  = max(p.cfg.Preload, 1)
		window   = preload // flood keeps this many probes in flight, as iputils -f -l
		finished bool
	)
	defer send.Stop()
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()

	// sendOne sends a probe; it returns false when probing cannot go on at all.
	sendOne := func() bool {
		if lastSeq != 0 && p.cfg.OnUnanswered != nil {
			if _, open := outstanding[lastSeq]; open {
				p.cfg.OnUnanswered(lastSeq)
			}
		}
		now := time.Now()
		seq, err := p.e.Start(Request{Dst: p.dst, Size: p.cfg.Size, TTL: p.cfg.TTL, Timeout: p.cfg.Timeout, OnResult: p.deliver})
		p.mu.Lock()
		if p.start.IsZero() {
			p.start = now
		}
		p.last = now
		p.mu.Unlock()
		sent++
		if err != nil {
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidAddr) || errors.Is(err, ErrSize) {
				runErr = err
				return false
			}
			p.mu.Lock()
			p.rec.Sent()
			p.rec.Error()
			p.mu.Unlock()
			if p.cfg.OnSendError != nil {
				p.cfg.OnSendError(err)
			}
			return true
		}
		p.mu.Lock()
		p.rec.Sent()
		p.mu.Unlock()
		outstanding[seq] = struct{}{}
		lastSeq = seq
		if p.cfg.OnSend != nil {
			p.cfg.OnSend(seq)
		}
		return true
	}

	// sendBurst sends up to n probes, then arms the timer for the next send, or the linger
	// after the last; it reports false when probing cannot go on.
	sendBurst := func(n int) bool {
		for i := 0; i < n && (p.cfg.Count == 0 || sent < p.cfg.Count); i++ {
			if !sendOne() {
				return false
			}
		}
		if p.cfg.Count == 0 || sent < p.cfg.Count {
			send.Reset(p.cfg.Interval)
		} else if d := p.lingerTime(replies); len(outstanding) > 0 && d < p.cfg.Timeout && linger == nil {
			// Nothing to linger for when the wait is the probes' own Timeout: the engine
			// reports each of them, and a timer racing it would cut the last.
			linger = time.NewTimer(d)
			lingerC = linger.C
		}
		return true
	}

	for !finished {
		select {
		case <-ctx.Done():
			finished = true
		case <-send.C:
			n := preload // the first tick sends the preload
			if p.cfg.Flood {
				n = max(window-len(outstanding), 1) // refill the window
			}
			preload = 1
			finished = !sendBurst(n)
		case <-p.notify:
			replies += p.drain(outstanding)
			if p.cfg.Flood && len(outstanding) < window && (p.cfg.Count == 0 || sent < p.cfg.Count) {
				// An answer made room in the window (one probe, or Preload): flood mode sends
				// now, from here; a hop through the send timer would cost a wakeup per probe.
				finished = !sendBurst(window - len(outstanding))
			}
		case <-lingerC:
			finished = true
		}
		if settled() {
			finished = true
		}
	}
	// Cancel what is still out, then take in what arrived before the cancel.
	for seq := range outstanding {
		p.e.Cancel(p.dst, seq)
	}
	p.drain(outstanding)
	p.mu.Lock()
	if !p.start.IsZero() {
		p.last = time.Now()
	}
	p.mu.Unlock()
	return runErr
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

// drain counts and hands on every queued outcome; it returns how many were first replies.
func (p *Pinger) drain(outstanding map[uint64]struct{}) (replies int) {
	p.mu.Lock()
	q := p.queue
	p.queue = nil
	for i := range q {
		r := &q[i]
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
		if r.Outcome != Duplicate && r.Outcome != Late {
			delete(outstanding, r.Seq)
		}
	}
	p.last = time.Now()
	p.mu.Unlock()
	if p.cfg.OnResult != nil {
		for _, r := range q {
			p.cfg.OnResult(r)
		}
	}
	return replies
}
