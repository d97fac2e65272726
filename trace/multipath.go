package trace

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
)

// DefaultConfidence is MultipathConfig.Confidence's default: the chance, per hop, of missing
// one of its interfaces that MDA accepts (Augustin et al. use 5%).
const DefaultConfidence = 0.05

// MaxFlows bounds the flows Multipath sends to one hop. At DefaultConfidence it covers up to
// 11 interfaces per hop (n_11 = 63); a hop with more is reported after MaxFlows flows with
// what they found, at less than the configured confidence. UDP and TCP flows are destination
// ports Port..Port+MaxFlows-1.
const MaxFlows = 64

// multipathAhead is how many TTLs past the highest hop whose router has relayed (answered
// Time Exceeded) get flows before it answers. More would only draw answers from the
// destination at several TTLs, and a UDP destination's port unreachables are rate limited;
// fewer would stall the trace for a full Wait behind every silent hop.
const multipathAhead = 2

// MultipathConfig describes a multipath trace. First, Max, Wait, Parallel and Size mean what
// they mean in Config and have the same defaults (Parallel bounds probes in flight over all
// TTLs). The zero value, and a nil *MultipathConfig, is usable. Multipath only reads it, so
// one MultipathConfig may serve concurrent runs.
type MultipathConfig struct {
	First, Max int
	Wait       time.Duration
	Parallel   int
	Size       int
	// Confidence is the accepted probability of missing one interface of a hop, in (0, 1);
	// 0: DefaultConfidence. Smaller values send more flows per hop.
	Confidence float64
}

// Interface is one address that answered at a hop of a multipath trace. It is a plain value.
type Interface struct {
	Addr netip.Addr
	RTT  time.Duration // the best of its answers
	// Annotation is traceroute's mark (see ProbeResult) of its first answer.
	Annotation string
	// Final is set when it answered with something other than Time Exceeded: the
	// destination itself, or a router that would not forward.
	Final bool
}

// MultiHop is what the flows sent with one TTL found. It is a plain value; Interfaces is not
// shared with Multipath once the hop is reported.
type MultiHop struct {
	TTL        int
	Interfaces []Interface // sorted by address; none for a silent hop
	Flows      int         // probes that counted: answered or timed out
}

// MultiResult summarizes a multipath trace. It is a plain value.
type MultiResult struct {
	Reached bool // an answer came from the destination's address
	Hops    []MultiHop
	Sent    int // probes sent, all TTLs together
}

// Probe states, shared between Multipath's goroutine and the Prober's callback: the one that
// moves a probe out of mpPending owns its outcome.
const (
	mpPending   = iota
	mpDelivered // the callback queued the probe's outcome
	mpAbandoned // Multipath gave up on it; its outcome, if any, is dropped
)

// mprobe is the probe of one flow at one TTL.
type mprobe struct {
	state   atomic.Uint32
	seq     uint64
	sent    time.Time
	live    bool // counts towards Parallel: pending, or its outcome is queued
	settled bool // answered, timed out or given up
}

// mhop is one TTL of a multipath trace; probes[f] is flow f's probe.
type mhop struct {
	probes  []*mprobe
	settled int
	ifaces  []Interface // in order of first answer
	relayed bool        // an answer was Time Exceeded
	final   bool        // an answer ended the trace
}

// best is the best RTT of any answer at the hop, false if there is none.
func (h *mhop) best() (time.Duration, bool) {
	if len(h.ifaces) == 0 {
		return 0, false
	}
	rtt := h.ifaces[0].RTT
	for _, i := range h.ifaces[1:] {
		rtt = min(rtt, i.RTT)
	}
	return rtt, true
}

type mevent struct {
	ttl, flow int
	r         probe.Result
}

type multipather struct {
	e      Prober
	dst    netip.Addr
	cfg    Config // First, Max, Wait, Parallel, Size
	echo   bool   // e is a *probe.Engine: flows are ICMP checksums
	stop   []int  // stop[k]: flows a hop with k interfaces needs, capped at MaxFlows
	onHop  func(MultiHop)
	hops   []mhop
	events chan mevent
	live   int // probes counting towards Parallel
	limit  int // last TTL that may be sent or reported
	next   int // next TTL to report
	res    MultiResult
	err    error
}

// Multipath discovers every path to dst through routers that balance flows over equal-cost
// paths, with the Multipath Detection Algorithm of Paris traceroute (Augustin, Friedman and
// Teixeira, "Multipath tracing with Paris traceroute", E2EMON 2007; Veitch et al., "Failure
// control in multipath route tracing", INFOCOM 2009), in its per-hop form without node
// control, which is enough for diamonds.
//
// Every probe carries a flow number f, the same at every TTL, so that flow f follows one path
// (p's Request.Flow: for an l4.Prober the destination port Port+f, for a probe.Engine the ICMP
// checksum f+1). At each TTL flows 0, 1, 2, ... are sent; once k interfaces have answered
// there, flows are added until n_k have an outcome, n_k being the least n with
// (k+1)·(k/(k+1))^n ≤ Confidence, a bound on the chance that, were there k+1 interfaces
// sharing flows equally, n flows missed one of them (n_1 = 6, n_2 = 11, n_3 = 16 at 5%). A flow that
// gets no answer counts towards n_k too, so a silent hop ends after n_1 flows. At most
// MaxFlows flows go to a hop. Run's single flow is Paris traceroute's answer to load balancing
// when one path is enough; Multipath shows them all.
//
// Hops are probed in parallel, as far as Parallel allows and up to two TTLs past the highest
// hop whose router has answered with Time Exceeded; lower TTLs go first. No probe is retried (an ICMP error a
// router's rate limit suppressed never comes): a hop waits for each outcome, but only, once it
// has an answer, 3 times its best RTT for the rest (Config.Here's default), and, while it has
// none, 10 times the best RTT of a later hop with an answer (Config.Near's default), with
// Run's floors of 150 and 300 ms, and never more than Wait.
//
// The trace ends after the first hop at which answers ended it (the destination, or an error
// other than Time Exceeded) and none relayed, or at Max. onHop gets every hop in TTL order, on
// Multipath's goroutine, as soon as it and all hops before it are settled. The error is nil
// when the trace ended by itself; it wraps ErrConfig for a bad cfg or destination (or, with a
// probe.Engine, a Size too small for a flow word), the context's error when ctx ended first
// (with the hops reported so far), and a Prober error when a probe could not be sent. An
// l4.Prober that is Classic moves every probe to a port of its own, and defeats the flows.
func Multipath(ctx context.Context, p Prober, dst netip.Addr, cfg *MultipathConfig, onHop func(MultiHop)) (MultiResult, error) {
	var mc MultipathConfig
	if cfg != nil {
		mc = *cfg
	}
	c, err := (&Config{First: mc.First, Max: mc.Max, Wait: mc.Wait, Parallel: mc.Parallel, Size: mc.Size}).withDefaults()
	if err != nil {
		return MultiResult{}, err
	}
	alpha := mc.Confidence
	if alpha == 0 {
		alpha = DefaultConfidence
	}
	if !(alpha > 0 && alpha < 1) {
		return MultiResult{}, fmt.Errorf("%w: confidence %v out of (0, 1)", ErrConfig, mc.Confidence)
	}
	dst = dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() {
		return MultiResult{}, fmt.Errorf("%w: destination %v", ErrConfig, dst)
	}
	_, echo := p.(*probe.Engine)
	if least := icmp.FlowWordOffset + 2; echo && c.Size < least {
		return MultiResult{}, fmt.Errorf("%w: size %d, ICMP flows need %d", ErrConfig, c.Size, least)
	}
	m := &multipather{
		e: p, dst: dst, cfg: c, echo: echo, onHop: onHop,
		stop: make([]int, MaxFlows+1),
		hops: make([]mhop, c.Max-c.First+1),
		// Every live probe owes at most one event, and at most Parallel are live: the
		// Prober's callback never blocks on this channel.
		events: make(chan mevent, c.Parallel),
		limit:  c.Max, next: c.First,
	}
	for k := range m.stop {
		m.stop[k] = min(stopFlows(max(k, 1), alpha), MaxFlows)
	}
	defer m.abandonAll()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.report()
		if m.err != nil {
			return m.res, m.err
		}
		if m.next > m.limit {
			return m.res, nil
		}
		now := time.Now()
		wake := m.expire(now)
		m.report()
		if m.next > m.limit {
			return m.res, nil
		}
		if err := m.send(now); err != nil {
			return m.res, err
		}
		var tc <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			tc = timer.C
		}
		select {
		case ev := <-m.events:
			m.handle(ev)
		case <-tc:
		case <-ctx.Done():
			return m.res, ctx.Err()
		}
	}
}

// stopFlows is n_k: the least n with (k+1)·(k/(k+1))^n ≤ alpha, for k ≥ 1 and 0 < alpha < 1.
func stopFlows(k int, alpha float64) int {
	kf := float64(k)
	missed := func(n int) float64 { return (kf + 1) * math.Pow(kf/(kf+1), float64(n)) }
	n := max(1, int(math.Ceil(math.Log(alpha/(kf+1))/math.Log(kf/(kf+1)))))
	// The logarithms may round across an integer; the inequality itself decides.
	for n > 1 && missed(n-1) <= alpha {
		n--
	}
	for missed(n) > alpha {
		n++
	}
	return n
}

func (m *multipather) hop(ttl int) *mhop { return &m.hops[ttl-m.cfg.First] }

// need is how many flows h must have sent, and settled, before it is done.
func (m *multipather) need(h *mhop) int { return m.stop[min(len(h.ifaces), MaxFlows)] }

func (m *multipather) done(h *mhop) bool {
	return len(h.probes) >= m.need(h) && h.settled == len(h.probes)
}

// send starts every flow that is due, lowest TTLs first, as far as Parallel allows.
func (m *multipather) send(now time.Time) error {
	frontier := m.next - 1
	for ttl := m.limit; ttl >= m.next; ttl-- {
		if m.hop(ttl).relayed {
			frontier = max(frontier, ttl)
			break
		}
	}
	for ttl := m.next; ttl <= min(m.limit, frontier+multipathAhead); ttl++ {
		h := m.hop(ttl)
		for len(h.probes) < m.need(h) {
			if m.live >= m.cfg.Parallel {
				return nil
			}
			if err := m.start(ttl, h, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *multipather) start(ttl int, h *mhop, now time.Time) error {
	p := &mprobe{sent: now}
	f := len(h.probes)
	flow := uint16(f)
	if m.echo {
		flow++ // 0 means no flow word to the engine
	}
	events := m.events
	req := probe.Request{
		Dst: m.dst, Size: m.cfg.Size, TTL: ttl, Timeout: m.cfg.Wait, Flow: flow,
		OnResult: func(r probe.Result) {
			// The first outcome is the probe's; later packets (Duplicate, Late) and the
			// Canceled that Multipath's own Cancel may cause add nothing.
			if r.Outcome == probe.Duplicate || r.Outcome == probe.Late {
				return
			}
			if p.state.CompareAndSwap(mpPending, mpDelivered) {
				events <- mevent{ttl: ttl, flow: f, r: r}
			}
		},
	}
	seq, err := m.e.Start(req)
	if err != nil {
		return fmt.Errorf("trace: ttl %d flow %d: %w", ttl, f, err)
	}
	p.seq, p.live = seq, true
	h.probes = append(h.probes, p)
	m.live++
	m.res.Sent++
	return nil
}

func (m *multipather) handle(ev mevent) {
	h := m.hop(ev.ttl)
	p := h.probes[ev.flow]
	p.live = false
	m.live--
	if p.settled {
		return
	}
	p.settled = true
	h.settled++
	switch ev.r.Outcome {
	case probe.Reply, probe.ICMPError:
	case probe.Timeout:
		return
	default:
		if m.err == nil {
			m.err = fmt.Errorf("trace: ttl %d flow %d: %w", ev.ttl, ev.flow, ev.r.Error())
		}
		return
	}
	mark, final := annotate(&ev.r)
	if final {
		h.final = true
	} else {
		h.relayed = true
	}
	for i := range h.ifaces {
		if in := &h.ifaces[i]; in.Addr == ev.r.From {
			in.RTT = min(in.RTT, ev.r.RTT)
			in.Final = in.Final || final
			return
		}
	}
	h.ifaces = append(h.ifaces, Interface{Addr: ev.r.From, RTT: ev.r.RTT, Annotation: mark, Final: final})
}

// expire gives up the probes whose shortened wait (see Multipath) has run out, and returns
// when the next one's will (zero: none; the Prober's Timeout comes at Wait).
func (m *multipather) expire(now time.Time) (wake time.Time) {
	var nearRTT time.Duration
	near := false
	for ttl := m.limit; ttl >= m.next; ttl-- {
		h := m.hop(ttl)
		var w time.Duration
		best, here := h.best()
		switch {
		case here:
			w = shortWait(DefaultHere, best)
		case near:
			w = max(shortWait(DefaultNear, nearRTT), minNearWait)
		}
		if here {
			near, nearRTT = true, best
		}
		if w == 0 || w >= m.cfg.Wait {
			continue
		}
		for _, p := range h.probes {
			if p.settled || !p.live {
				continue
			}
			at := p.sent.Add(w)
			if now.Before(at) {
				if wake.IsZero() || at.Before(wake) {
					wake = at
				}
				continue
			}
			if m.abandon(p) {
				p.settled = true
				h.settled++
			}
		}
	}
	return wake
}

// abandon gives up a live probe and reports whether it did. A probe whose outcome the callback
// has already taken stays live until handle consumes it, so that it keeps its place in the
// bound on the events owed to the channel.
func (m *multipather) abandon(p *mprobe) bool {
	if !p.state.CompareAndSwap(mpPending, mpAbandoned) {
		return false
	}
	m.e.Cancel(m.dst, p.seq)
	p.live = false
	m.live--
	return true
}

func (m *multipather) abandonAll() {
	for i := range m.hops {
		for _, p := range m.hops[i].probes {
			if p.live {
				m.abandon(p)
			}
		}
	}
}

// report hands every newly settled hop, in order, to onHop.
func (m *multipather) report() {
	for m.next <= m.limit {
		h := m.hop(m.next)
		if !m.done(h) {
			return
		}
		out := MultiHop{TTL: m.next, Interfaces: slices.Clone(h.ifaces), Flows: h.settled}
		slices.SortFunc(out.Interfaces, func(a, b Interface) int { return a.Addr.Compare(b.Addr) })
		for _, in := range out.Interfaces {
			if in.Addr == m.dst {
				m.res.Reached = true
			}
		}
		m.res.Hops = append(m.res.Hops, out)
		if m.onHop != nil {
			m.onHop(MultiHop{TTL: out.TTL, Interfaces: slices.Clone(out.Interfaces), Flows: out.Flows})
		}
		m.next++
		if h.final && !h.relayed {
			m.limit = out.TTL
			return
		}
	}
}
