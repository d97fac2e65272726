package trace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
)

// Defaults of Config, those of traceroute -I except DefaultMax.
const (
	// DefaultMax is above traceroute's 30 so that a path through 31 routers, whose
	// destination is the 32nd hop, is traced whole by default.
	DefaultMax      = 32
	DefaultQueries  = 3
	DefaultParallel = 16 // traceroute -N
	DefaultWait     = 5 * time.Second
	// DefaultRetryAfter is a little over Linux's default net.ipv4.icmp_ratelimit of one
	// second: the kernel counts its tokens in jiffies, and a retry exactly one second after the
	// burst ran out can come a jiffy before the next token.
	DefaultRetryAfter = 1100 * time.Millisecond
	// DefaultSize is the payload that makes traceroute's 60-byte IPv4 (80-byte IPv6) packets:
	// IP header, 8 bytes of ICMP header, 32 bytes of payload.
	DefaultSize = 32
	// MaxQueries is traceroute's limit on -q.
	MaxQueries = 10
	// MaxTTL is the largest value the TTL and hop-limit fields hold.
	MaxTTL = 255
	// DefaultHere and DefaultNear are traceroute's -w MAX,HERE,NEAR factors.
	DefaultHere = 3
	DefaultNear = 10
)

// NoFactor as Config.Here or Config.Near turns that shortening of the wait off.
const NoFactor = -1

// waitPrecision is added to a reference RTT before it is multiplied, as traceroute adds its
// DEF_WAIT_PREC: a 50 µs RTT must not make a 150 µs wait.
const waitPrecision = time.Millisecond

// minShortWait is the least wait that Here or Near can give. An answer is timestamped by the
// kernel but judged by this process, and a scheduling delay (the race detector, a loaded
// machine: CI saw answers 50 ms late) must not turn it into a "*".
const minShortWait = 150 * time.Millisecond

// minNearWait is the least wait that Near gives. It is longer than minShortWait so that a rate
// limit, which shows as a hop answering some queries but not others after a Here wait, is
// seen before a hop with no answer is taken for a silent router.
const minNearWait = 2 * minShortWait

// EmptyPayload as Config.Size sends echo requests with no payload at all.
const EmptyPayload = probe.EmptyPayload

// minRetryBudget is the least time a retry must have left to be worth sending: a retry that
// cannot be answered in time only costs a router one more rate-limit token.
const minRetryBudget = 10 * time.Millisecond

// Prober sends the probes of a trace. *probe.Engine (ICMP echo) and *l4.Prober (UDP, TCP)
// implement it. Start must deliver every probe's outcome to Request.OnResult once (Reply,
// ICMPError, Timeout or Canceled), never blocking in Start itself on that call; Cancel reports
// whether the probe was still pending.
type Prober interface {
	Start(probe.Request) (uint64, error)
	Cancel(dst netip.Addr, seq uint64) bool
}

// burster is a Prober whose destination answers with rate-limited ICMP errors (UDP: port
// unreachable) of which it sends AnswerBurst back to back; Run then sets a Lookahead when the
// Config has none.
type burster interface {
	AnswerBurst() int
}

// ErrConfig is wrapped by the error of Run for a Config or destination it cannot trace with.
var ErrConfig = errors.New("trace: invalid configuration")

// Config describes a trace. The zero value (and a nil *Config) traces with traceroute's
// defaults, except that Max is DefaultMax. Run only reads it, so one Config may serve concurrent
// runs.
type Config struct {
	First    int // first TTL, 1..MaxTTL; 0: 1
	Max      int // last TTL, First..MaxTTL; 0: DefaultMax (or First, if that is larger)
	Queries  int // probes per hop, 1..MaxQueries; 0: DefaultQueries
	Parallel int // probes in flight at once; 0: DefaultParallel
	// Wait is how long an answer to a query counts, from the query's first attempt; 0:
	// DefaultWait.
	Wait time.Duration
	Size int // payload bytes; 0: DefaultSize; EmptyPayload for none
	// SendWait is the least time between any two probes (traceroute -z); 0: none.
	SendWait time.Duration
	// Gap is the least time between the first attempts of two queries of one hop; 0: none.
	// Queries of one hop are sent round-robin with those of the other hops in any case.
	Gap time.Duration
	// RetryAfter is how long a query waits for an answer before its one retry, and the least
	// time between two retries of one hop; 0: DefaultRetryAfter. A RetryAfter not shorter than
	// Wait disables retries.
	RetryAfter time.Duration
	// Flow is the ICMP checksum every probe of the trace carries (Paris traceroute: routers
	// that balance equal-cost paths hash ICMP on it, so all probes follow one path); 0 picks
	// one at random per trace. Classic turns this off and lets the checksum vary with each
	// probe's sequence, as traceroute does. A payload under 18 bytes has no room for the
	// compensating word, and is classic. Both apply to a *probe.Engine; an l4.Prober's flow
	// is its ports, set by its own Config (l4.Config.Classic).
	Flow    uint16
	Classic bool
	// Here and Near shorten the wait as traceroute's -w MAX,HERE,NEAR do (Wait being MAX):
	// once a query of a hop is answered, the other queries of that hop wait only Here times
	// its RTT; a hop none of whose queries is answered waits Near times the RTT of the nearest
	// later hop's answer. The RTT has a millisecond added first, and the wait is at least
	// 50 ms (Here) or 200 ms (Near) and at most Wait, counted from the attempt's send time. 0: DefaultHere,
	// DefaultNear; NoFactor turns one off. See the package doc for how they meet retries.
	Here, Near float64
	// Lookahead, if not zero, bounds the probes in flight to TTLs above the highest hop whose
	// router has answered with Time Exceeded. A destination that answers with a rate-limited
	// ICMP error (UDP port unreachable: Linux allows a burst of 6, then one a second) must
	// not spend its burst on probes with TTLs past it before the queries at its own TTL are
	// sent: with Lookahead + Queries at most 6, none of its answers are lost.
	Lookahead int
	// MTU, if not zero, discovers the path MTU as traceroute --mtu does: probes are packets
	// of MTU bytes (IP header included; Size is ignored), which the Prober must send with
	// don't-fragment set (rawsock.PMTUProbe), and a query answered by Packet Too Big or
	// Fragmentation Needed with a smaller MTU is sent again at that size rather than ending the
	// trace. The first probe to go at a smaller size carries it in ProbeResult.MTU. Parallel
	// then defaults to 1, as with traceroute, since every probe past the narrow link would
	// draw its own rate-limited error.
	MTU int
}

// ProbeResult is the outcome of one query of a hop. It is a plain value.
type ProbeResult struct {
	From netip.Addr // who answered; zero for a timeout
	RTT  time.Duration
	// Annotation is traceroute's mark for an ICMP error ("!H", "!N", "!P", "!S", "!F-<mtu>",
	// "!X", "!V", "!C", "!<code>" or "!<type-code>"), empty for Echo Reply and Time Exceeded.
	Annotation string
	Timeout    bool // no answer within Wait, retry included
	// MTU is set, with Config.MTU, on the first probe of the trace sent at a smaller size than
	// the probes before it: the packet size (IP header included) the path needed from this
	// hop on. traceroute prints it as F=MTU.
	MTU int
	// MPLS is the label stack the router reported in an RFC 4950 extension (raw sockets
	// only: a datagram socket's error queue drops extensions).
	MPLS []icmp.MPLSLabel
	// Interfaces are the RFC 5837 interface information objects of the answer: which of the
	// router's interfaces the probe came in by, left by, and so on (raw sockets only, as MPLS).
	Interfaces []icmp.InterfaceInfo
}

// Hop is the outcome of every query sent with one TTL, in query order. It is a plain value;
// Probes is not shared with Run after the hop is reported.
type Hop struct {
	TTL    int
	Probes []ProbeResult
}

// Result summarizes a trace. It is a plain value.
type Result struct {
	// Reached is true when the destination itself answered: an Echo Reply, or an ICMP error
	// sent from the destination's address.
	Reached bool
	// Hops are the hops reported, in TTL order, the last one ending the trace.
	Hops []Hop
	// Sent counts the probes sent, Retries those of them that were second attempts.
	Sent, Retries int
	// PathMTU is, with Config.MTU, the smallest MTU the path reported (Config.MTU if none).
	PathMTU int
}

// Least MTUs: RFC 791 (every IPv4 host takes 68 bytes unfragmented) and RFC 8200 (1280 for
// IPv6).
const (
	minMTU4 = 68
	minMTU6 = 1280
)

func (c *Config) withDefaults() (Config, error) {
	var o Config
	if c != nil {
		o = *c
	}
	if o.First == 0 {
		o.First = 1
	}
	if o.Max == 0 {
		o.Max = max(DefaultMax, o.First)
	}
	if o.Queries == 0 {
		o.Queries = DefaultQueries
	}
	if o.Parallel == 0 {
		o.Parallel = DefaultParallel
		if o.MTU > 0 {
			o.Parallel = 1
		}
	}
	if o.Wait == 0 {
		o.Wait = DefaultWait
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Here == 0 {
		o.Here = DefaultHere
	}
	if o.Near == 0 {
		o.Near = DefaultNear
	}
	switch {
	case o.First < 1 || o.First > MaxTTL:
		return o, fmt.Errorf("%w: first ttl %d out of 1..%d", ErrConfig, o.First, MaxTTL)
	case o.Max < o.First || o.Max > MaxTTL:
		return o, fmt.Errorf("%w: max ttl %d out of %d..%d", ErrConfig, o.Max, o.First, MaxTTL)
	case o.Queries < 1 || o.Queries > MaxQueries:
		return o, fmt.Errorf("%w: %d queries out of 1..%d", ErrConfig, o.Queries, MaxQueries)
	case o.Parallel < 1:
		return o, fmt.Errorf("%w: parallel %d below 1", ErrConfig, o.Parallel)
	case o.MTU != 0 && (o.MTU < minMTU4 || o.MTU > 65535):
		return o, fmt.Errorf("%w: mtu %d out of %d..65535", ErrConfig, o.MTU, minMTU4)
	case o.Lookahead < 0:
		return o, fmt.Errorf("%w: lookahead %d below 0", ErrConfig, o.Lookahead)
	case o.Wait < 0 || o.SendWait < 0 || o.Gap < 0 || o.RetryAfter < 0:
		return o, fmt.Errorf("%w: negative duration", ErrConfig)
	case o.Size < 0 && o.Size != EmptyPayload:
		return o, fmt.Errorf("%w: size %d", ErrConfig, o.Size)
	case !validFactor(o.Here) || !validFactor(o.Near):
		return o, fmt.Errorf("%w: wait factors %v,%v", ErrConfig, o.Here, o.Near)
	}
	if o.Size == EmptyPayload {
		o.Size = 0
	}
	return o, nil
}

func validFactor(f float64) bool { return f == NoFactor || f > 0 && f <= 1e6 }

// attempt is one echo request sent for a query.
type attempt struct {
	seq  uint64
	live bool // sent, and its outcome neither consumed nor canceled
	mtu  int  // with Config.MTU: the packet size it was sent at
}

// query is one of the Queries probes of a hop: a first attempt and at most one retry.
type query struct {
	sent     time.Time // first attempt's send time; zero until sent
	retried  time.Time // the retry's send time
	tries    [2]attempt
	nsent    int  // attempts sent
	noRetry  bool // the retry was sent or will not be
	answered bool
	final    bool // the answer ends the trace
	mtu      int  // with Config.MTU: the size of the answered attempt
	resend   bool // with Config.MTU: too big; sent again once no attempt is live
	parked   bool // not counted in busy: see tracer.park
	shrunk   bool // with Config.MTU: this is that second sending
	gaveUp   bool // its wait, shortened by Here or Near, ran out: a timeout
	res      ProbeResult
}

func (q *query) live() bool { return q.tries[0].live || q.tries[1].live }

func (q *query) settled() bool {
	return !q.resend && (q.answered || q.gaveUp || q.nsent > 0 && q.noRetry && !q.live())
}

// answer returns the first answered query of h, traceroute's reference for Here and Near.
func (h *hop) answer() (q *query, ok bool) {
	for i := range h.queries {
		if h.queries[i].answered {
			return &h.queries[i], true
		}
	}
	return nil, false
}

// relayed reports whether a router answered one of h's queries with Time Exceeded: it
// forwards, and it sends errors to this host right now.
func (h *hop) relayed() bool {
	for i := range h.queries {
		if q := &h.queries[i]; q.answered && !q.final && q.res.Annotation == "" {
			return true
		}
	}
	return false
}

type hop struct {
	queries []query
	// paced is the earliest time for this hop's next probe, once it has needed a retry: its
	// router may be rate limiting, and then a probe sent before the router has a new token
	// would only be lost and take the token from the retry that follows it.
	paced time.Time
}

// event is one outcome delivered by the engine for attempt try of query q of hop ttl.
type event struct {
	ttl, q, try int
	r           probe.Result
}

// tracer is the state of one Run, owned by Run's goroutine.
type tracer struct {
	e      Prober
	dst    netip.Addr
	flow   uint16 // the probes' fixed ICMP checksum, 0 for classic
	cfg    Config
	onHop  func(Hop)
	hops   []hop // index ttl-First
	events chan event

	// busy counts the queries with a live attempt that are not parked; Parallel bounds it. A
	// retry takes over the place of the attempt it repeats, so that first attempts lost to a
	// rate limit cannot keep their own retries from going out; and a query parked for its
	// retry (see park) gives its place up, so that lost queries cannot keep other queries'
	// first attempts back until the refill that their retries need.
	busy     int
	lastSend time.Time // for SendWait
	limit    int       // highest TTL that can still matter: Max, or the lowest final TTL
	next     int       // next TTL to report
	res      Result
	err      error // a probe was canceled under us: the engine is closed
	// mtu is the current probe size with Config.MTU (0 without); shown the last size reported
	// in a ProbeResult.MTU; hdr the IP and ICMP/UDP header bytes of a probe.
	mtu, shown, hdr int
	// limited is set once the trace has seen a router lose some answers and give others, the
	// mark of an ICMP rate limit: from then on no hop is judged silent before its retries.
	limited bool
}

// Run traces the path to dst with e, calling onHop for every hop in TTL order as soon as that
// hop and all before it are settled (each query answered or timed out). It returns when a hop
// has ended the trace (the destination answered, or an ICMP error other than Time Exceeded
// came back) and every lower hop is settled, when Max is settled, or when ctx ends; probes
// still in flight then are canceled.
//
// onHop is called on Run's goroutine and should return quickly: while it runs no probe is sent
// (answers wait in a queue and are not lost). cfg may be nil. The error is nil when the trace
// ended by itself, whether or not the destination was reached; it wraps ErrConfig for a bad
// cfg or destination, the context's error when ctx ended first (the Result then holds the hops
// reported so far), and an engine error when a probe could not be sent.
func Run(ctx context.Context, e Prober, dst netip.Addr, cfg *Config, onHop func(Hop)) (Result, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	dst = dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() {
		return Result{}, fmt.Errorf("%w: destination %v", ErrConfig, dst)
	}
	if b, ok := e.(burster); ok && c.Lookahead == 0 && b.AnswerBurst() > 0 {
		c.Lookahead = max(1, b.AnswerBurst()-c.Queries)
	}
	flow := c.Flow
	_, echo := e.(*probe.Engine)
	switch {
	case !echo:
		// Other probers fix the flow by their configuration (ports), not per trace.
		flow = 0
	case c.Classic || c.Size < icmp.FlowWordOffset+2:
		flow = 0
	case flow == 0:
		flow = uint16(rand.Uint32()) | 1
	}
	t := &tracer{
		e: e, dst: dst, cfg: c, onHop: onHop, flow: flow,
		hops: make([]hop, c.Max-c.First+1),
		// Every live attempt owes at most one event, and each query has at most two live
		// attempts: the engine's callback never blocks on this channel. (Parallel does not
		// bound live attempts: parked queries keep theirs.)
		events: make(chan event, 2*c.Queries*(c.Max-c.First+1)),
		limit:  c.Max, next: c.First,
	}
	for i := range t.hops {
		t.hops[i].queries = make([]query, c.Queries)
	}
	if c.MTU > 0 {
		t.mtu, t.shown, t.hdr = c.MTU, c.MTU, 28
		if icmp.FamilyOf(dst) == icmp.IPv6 {
			t.hdr = 48
			if c.MTU < minMTU6 {
				return Result{}, fmt.Errorf("%w: mtu %d below IPv6's %d", ErrConfig, c.MTU, minMTU6)
			}
		}
		t.res.PathMTU = c.MTU
	}
	defer t.cancelAll()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.report()
		if t.err != nil {
			return t.res, t.err
		}
		if t.next > t.limit {
			return t.res, nil
		}
		now := time.Now()
		wake := t.expire(now)
		t.report()
		if t.next > t.limit {
			return t.res, nil
		}
		sendWake, err := t.send(now)
		if !sendWake.IsZero() && (wake.IsZero() || sendWake.Before(wake)) {
			wake = sendWake
		}
		if err != nil {
			return t.res, err
		}
		var tc <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			tc = timer.C
		}
		select {
		case ev := <-t.events:
			t.handle(ev)
		case <-tc:
		case <-ctx.Done():
			return t.res, ctx.Err()
		}
	}
}

func (t *tracer) hop(ttl int) *hop { return &t.hops[ttl-t.cfg.First] }

// send sends every attempt that is due, retries first since their time is short, and returns
// the next time something will be due (zero: only an event can make anything due).
func (t *tracer) send(now time.Time) (wake time.Time, err error) {
	later := func(at time.Time) {
		if wake.IsZero() || at.Before(wake) {
			wake = at
		}
	}
	// can reports whether a probe may go now, and otherwise notes when SendWait allows one.
	can := func(retry bool) bool {
		if !retry && t.busy >= t.cfg.Parallel {
			return false
		}
		if t.cfg.SendWait > 0 && !t.lastSend.IsZero() {
			if at := t.lastSend.Add(t.cfg.SendWait); now.Before(at) {
				later(at)
				return false
			}
		}
		return true
	}
	retries := t.cfg.RetryAfter < t.cfg.Wait
	for ttl := t.cfg.First; retries && ttl <= t.limit; ttl++ {
		h := t.hop(ttl)
		for qi := range h.queries {
			q := &h.queries[qi]
			if q.nsent == 0 || q.noRetry || q.answered {
				continue
			}
			at := q.sent.Add(t.cfg.RetryAfter)
			if h.paced.After(at) {
				at = h.paced
			}
			if now.After(at) {
				at = now
			}
			// The retry's answer counts only as long as the first attempt's would have.
			budget := q.sent.Add(t.cfg.Wait).Sub(at)
			if budget < minRetryBudget {
				q.noRetry = true
				continue
			}
			if now.Before(at) {
				later(at)
				continue
			}
			if q.gaveUp || !q.tries[0].live || !can(true) {
				continue
			}
			if err := t.start(ttl, qi, 1, budget, now); err != nil {
				return wake, err
			}
			q.noRetry, q.retried = true, now
			h.paced = now.Add(t.cfg.RetryAfter)
		}
	}
	frontier, beyond := t.frontier()
	// First attempts round-robin: query 0 of every hop, then query 1, so that the queries of
	// one hop are spread out rather than back to back.
	for qi := 0; qi < t.cfg.Queries; qi++ {
		for ttl := t.cfg.First; ttl <= t.limit; ttl++ {
			h := t.hop(ttl)
			q := &h.queries[qi]
			if q.nsent > 0 {
				continue
			}
			if t.cfg.Lookahead > 0 && ttl > frontier && beyond >= t.cfg.Lookahead {
				break // an answer moves the frontier
			}
			if qi > 0 {
				prev := h.queries[qi-1].sent
				if prev.IsZero() {
					continue
				}
				if at := prev.Add(t.cfg.Gap); now.Before(at) {
					later(at)
					continue
				}
			}
			if !h.paced.IsZero() {
				if now.Before(h.paced) {
					later(h.paced)
					continue
				}
			}
			if !can(false) {
				return wake, nil
			}
			if err := t.start(ttl, qi, 0, t.cfg.Wait, now); err != nil {
				return wake, err
			}
			if ttl > frontier {
				beyond++
			}
			q.sent = now
			if !h.paced.IsZero() {
				h.paced = now.Add(t.cfg.RetryAfter)
			}
		}
	}
	return wake, nil
}

// frontier returns the highest TTL whose router relayed (First-1 if none has yet), and how
// many queries above it are in flight.
func (t *tracer) frontier() (ttl, beyond int) {
	ttl = t.cfg.First - 1
	for h := t.limit; h >= t.cfg.First; h-- {
		if t.hop(h).relayed() {
			ttl = h
			break
		}
	}
	for h := ttl + 1; h <= t.limit; h++ {
		for i := range t.hop(h).queries {
			if t.hop(h).queries[i].live() {
				beyond++
			}
		}
	}
	return ttl, beyond
}

func (t *tracer) start(ttl, qi, try int, timeout time.Duration, now time.Time) error {
	events := t.events
	size := t.cfg.Size
	if t.mtu > 0 {
		size = t.mtu - t.hdr
	}
	req := probe.Request{
		Dst: t.dst, Size: size, TTL: ttl, Timeout: timeout, Flow: t.flow,
		OnResult: func(r probe.Result) {
			// Duplicates and late answers add nothing to a trace (and may come after Run has
			// returned, when nothing reads events); every other outcome comes once per attempt.
			if r.Outcome != probe.Duplicate && r.Outcome != probe.Late {
				events <- event{ttl: ttl, q: qi, try: try, r: r}
			}
		},
	}
	// Datagram sockets can hold a stale error from an earlier probe's ICMP error; rawsock
	// sends past it, so an error here is this probe's own.
	seq, err := t.e.Start(req)
	if err != nil {
		return fmt.Errorf("trace: ttl %d: %w", ttl, err)
	}
	q := &t.hop(ttl).queries[qi]
	if !q.live() {
		t.busy++
	}
	q.tries[try] = attempt{seq: seq, live: true, mtu: t.mtu}
	q.nsent++
	t.res.Sent++
	if try > 0 {
		t.res.Retries++
	}
	t.lastSend = now
	return nil
}

func (t *tracer) handle(ev event) {
	q := &t.hop(ev.ttl).queries[ev.q]
	a := &q.tries[ev.try]
	if !a.live || a.seq != ev.r.Seq {
		return // canceled after its outcome was already on its way
	}
	t.ended(q, a)
	if q.resend {
		if !q.live() {
			*q = query{shrunk: true}
		}
		return
	}
	if q.gaveUp || ev.ttl < t.next {
		return // judged a timeout already, as traceroute ignores an answer after its wait
	}
	switch ev.r.Outcome {
	case probe.Reply, probe.ICMPError:
	case probe.Timeout:
		// The first attempt's time is the query's whole budget: a retry not sent by now
		// never will be.
		if ev.try == 0 {
			q.noRetry = true
		}
		return
	default:
		if t.err == nil {
			t.err = fmt.Errorf("trace: ttl %d: %w", ev.ttl, ev.r.Error())
		}
		return
	}
	if q.answered {
		return
	}
	if t.shrink(q, a, &ev.r) {
		return
	}
	mark, final := annotate(&ev.r)
	q.answered, q.final, q.mtu = true, final, a.mtu
	if ev.try == 1 {
		t.limited = true // a first attempt was lost and its retry answered
	}
	q.res = ProbeResult{From: ev.r.From, RTT: ev.r.RTT, Annotation: mark}
	q.res.MPLS, q.res.Interfaces = extensions(ev.r.Extensions)
	if other := &q.tries[1-ev.try]; other.live {
		t.cancel(q, other)
	}
	if final && ev.ttl < t.limit {
		for ttl := ev.ttl + 1; ttl <= t.limit; ttl++ {
			t.cancelHop(ttl)
		}
		t.limit = ev.ttl
	}
}

// shrink handles, with Config.MTU, an answer saying that attempt a of q was too big for the
// path: the trace takes the smaller MTU, and q is sent again at it. It reports whether it did.
func (t *tracer) shrink(q *query, a *attempt, r *probe.Result) bool {
	tooBig := r.Kind == icmp.KindPacketTooBig ||
		r.Kind == icmp.KindDestinationUnreachable && icmp.FamilyOf(t.dst) == icmp.IPv4 && r.Code == 4
	if t.mtu == 0 || !tooBig || r.MTU <= 0 || r.MTU >= a.mtu {
		return false
	}
	least := minMTU4
	if icmp.FamilyOf(t.dst) == icmp.IPv6 {
		least = minMTU6
	}
	t.mtu = min(t.mtu, max(r.MTU, least, t.hdr))
	t.res.PathMTU = t.mtu
	for j := range q.tries {
		if q.tries[j].live {
			t.cancel(q, &q.tries[j])
		}
	}
	// As if never sent: send picks it up again as a first attempt, with the whole Wait. An
	// attempt whose outcome is on its way still holds its place (busy, the events channel)
	// until handle takes that outcome and does this.
	if q.live() {
		q.resend, q.noRetry = true, true
	} else {
		*q = query{shrunk: true}
	}
	return true
}

// expire judges as timeouts the queries whose wait, shortened by Here or Near, has run out,
// and returns when the next one will (zero: none is due to).
//
// A query that may still get its retry is not judged before that retry has had its own wait:
// a router that answered some queries and lost others is rate limiting, and its next token
// comes within about a second. Only a hop with no answer at all, past which a router has
// answered with Time Exceeded while no hop of the trace has shown a rate limit, is taken for
// a silent router and given up without its retry. Hops before the destination with no answer
// at all where no router has answered yet (every router's token bucket empty after earlier
// traces) keep their retries.
func (t *tracer) expire(now time.Time) (wake time.Time) {
	retries := t.cfg.RetryAfter < t.cfg.Wait
	// waitOf is the wait of h's queries given the nearest later answer's RTT, if any.
	waitOf := func(h *hop, nearRTT time.Duration, near bool) (w time.Duration, here bool) {
		w = t.cfg.Wait
		if a, ok := h.answer(); ok {
			if t.cfg.Here > 0 {
				w = min(w, shortWait(t.cfg.Here, a.res.RTT))
			}
			return w, true
		}
		if near && t.cfg.Near > 0 {
			w = min(w, max(shortWait(t.cfg.Near, nearRTT), minNearWait))
		}
		return w, false
	}
	// First the evidence of a rate limit: a hop with an answer and a query whose first
	// attempt went unanswered for the same wait.
	for ttl := t.next; !t.limited && ttl <= t.limit; ttl++ {
		h := t.hop(ttl)
		w, here := waitOf(h, 0, false)
		if !here {
			continue
		}
		for i := range h.queries {
			q := &h.queries[i]
			if q.nsent > 0 && !q.answered && !q.resend && !now.Before(q.sent.Add(w)) {
				t.limited = true
			}
		}
	}
	for ttl := t.next; ttl <= t.limit; ttl++ {
		h := t.hop(ttl)
		w, here := waitOf(h, 0, false)
		if !here {
			continue
		}
		for i := range h.queries {
			if q := &h.queries[i]; q.nsent == 1 && !q.answered && !q.resend && !now.Before(q.sent.Add(w)) {
				t.park(h, q)
			} else if q.nsent == 1 && !q.answered && !q.parked && q.live() {
				if at := q.sent.Add(w); wake.IsZero() || at.Before(wake) {
					wake = at
				}
			}
		}
	}
	var nearRTT time.Duration
	near, relayed := false, false
	for ttl := t.limit; ttl >= t.next; ttl-- {
		h := t.hop(ttl)
		w, here := waitOf(h, nearRTT, near)
		silent := !here && relayed && !t.limited
		for i := range h.queries {
			q := &h.queries[i]
			if q.nsent == 0 || q.answered || q.gaveUp || q.resend {
				continue
			}
			if retries && !q.noRetry && !silent {
				continue // send schedules the retry; its own wait counts after it
			}
			last := q.sent
			if q.nsent > 1 {
				last = q.retried
			}
			at := last.Add(w)
			if end := q.sent.Add(t.cfg.Wait); at.After(end) {
				at = end
			}
			if now.Before(at) {
				if wake.IsZero() || at.Before(wake) {
					wake = at
				}
				continue
			}
			t.giveUp(q)
		}
		if a, ok := h.answer(); ok {
			near, nearRTT = true, a.res.RTT
		}
		relayed = relayed || h.relayed()
	}
	return wake
}

// shortWait is traceroute's factor × (rtt + DEF_WAIT_PREC), at least minShortWait.
func shortWait(factor float64, rtt time.Duration) time.Duration {
	return max(time.Duration(factor*float64(rtt+waitPrecision)), minShortWait)
}

// giveUp judges q a timeout and cancels its attempts.
func (t *tracer) giveUp(q *query) {
	q.gaveUp, q.noRetry = true, true
	for j := range q.tries {
		if q.tries[j].live {
			t.cancel(q, &q.tries[j])
		}
	}
}

// ended marks attempt a of query q as no longer live.
func (t *tracer) ended(q *query, a *attempt) {
	a.live = false
	if !q.live() && !q.parked {
		t.busy--
	}
}

// park takes q, a query of a hop that has answered other queries and whose first attempt has
// gone unanswered for that hop's Here wait, out of Parallel's count: the router is rate
// limiting, q waits for its retry after the refill, and holding its place until then would
// keep the first attempts of other queries back until that same refill, when they would take
// the token q's retry needs.
//
// The hop is then paced as after a retry: no probe to it before q's retry is due, so that
// first attempts sent into an empty bucket neither get lost themselves nor take the token
// that q's retry will need.
func (t *tracer) park(h *hop, q *query) {
	if !q.parked && q.live() {
		q.parked = true
		t.busy--
		if at := q.sent.Add(t.cfg.RetryAfter); h.paced.Before(at) {
			h.paced = at
		}
	}
}

// cancel gives up a live attempt. When the engine has already delivered (or is delivering) its
// outcome, the attempt stays live until handle consumes that outcome, so that the attempt keeps
// counting towards the bound on the events owed to the channel.
func (t *tracer) cancel(q *query, a *attempt) {
	if t.e.Cancel(t.dst, a.seq) {
		t.ended(q, a)
	}
}

func (t *tracer) cancelHop(ttl int) {
	h := t.hop(ttl)
	for i := range h.queries {
		q := &h.queries[i]
		for j := range q.tries {
			if q.tries[j].live {
				t.cancel(q, &q.tries[j])
			}
		}
	}
}

func (t *tracer) cancelAll() {
	for ttl := t.cfg.First; ttl <= t.cfg.Max; ttl++ {
		t.cancelHop(ttl)
	}
}

// report hands every newly settled hop, in order, to onHop.
func (t *tracer) report() {
	for t.next <= t.limit {
		h := t.hop(t.next)
		out := Hop{TTL: t.next, Probes: make([]ProbeResult, len(h.queries))}
		final := false
		for i := range h.queries {
			if !h.queries[i].settled() {
				return
			}
		}
		for i := range h.queries {
			q := &h.queries[i]
			if q.answered {
				out.Probes[i] = q.res
				if q.shrunk && q.mtu < t.shown {
					out.Probes[i].MTU, t.shown = q.mtu, q.mtu
				}
			} else {
				out.Probes[i] = ProbeResult{Timeout: true}
			}
			final = final || q.final
			if q.answered && q.res.From == t.dst {
				t.res.Reached = true
			}
		}
		t.res.Hops = append(t.res.Hops, out)
		if t.onHop != nil {
			t.onHop(Hop{TTL: out.TTL, Probes: append([]ProbeResult(nil), out.Probes...)})
		}
		t.next++
		if final {
			t.limit = out.TTL
			return
		}
	}
}

// extensions returns the MPLS label stacks (RFC 4950) and interface information objects (RFC
// 5837) of an RFC 4884 extension structure; nil for those absent, or when it does not parse.
func extensions(ext []byte) (labels []icmp.MPLSLabel, ifaces []icmp.InterfaceInfo) {
	if len(ext) == 0 {
		return nil, nil
	}
	objs, err := icmp.ParseExtensions(ext)
	if err != nil {
		return nil, nil
	}
	for _, o := range objs {
		if l, ok := o.MPLS(); ok {
			labels = append(labels, l...)
		}
		if in, ok := o.Interface(); ok {
			ifaces = append(ifaces, in)
		}
	}
	return labels, ifaces
}
