package trace

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
)

// TestStopFlows: n_k from its definition, (k+1)·(k/(k+1))^n ≤ alpha: at 5% against the
// values of the MDA papers for k ≤ 6 and the bound of MaxFlows (n_11 = 63), and for other
// confidences against a direct product.
func TestStopFlows(t *testing.T) {
	for k, want := range []int{1: 6, 2: 11, 3: 16, 4: 21, 5: 27, 6: 33, 11: 63, 12: 0} {
		if want == 0 {
			continue
		}
		if got := stopFlows(k, 0.05); got != want {
			t.Errorf("n_%d at 5%% = %d, want %d", k, got, want)
		}
	}
	for _, alpha := range []float64{0.5, 0.1, 0.05, 0.01, 1e-6} {
		for k := 1; k <= 40; k++ {
			n := stopFlows(k, alpha)
			// missed[i] = (k+1)·(k/(k+1))^i by repeated multiplication.
			missed := float64(k + 1)
			for range n - 1 {
				missed *= float64(k) / float64(k+1)
			}
			before := missed
			missed *= float64(k) / float64(k+1)
			if missed > alpha*(1+1e-12) || n > 1 && before <= alpha*(1-1e-12) {
				t.Errorf("alpha %v k %d: n %d misses %v, n-1 misses %v", alpha, k, n, missed, before)
			}
		}
	}
}

// fakeNet is a Prober over a model network: at(ttl, flow) is the answer a probe of that flow
// with that TTL draws, a zero Outcome for none (its Timeout then comes at Request.Timeout).
// Answers come at once, each from a goroutine of its own; Cancel delivers Canceled on the
// caller's goroutine, as l4.Prober does. Safe for concurrent use.
type fakeNet struct {
	at func(ttl int, flow uint16) probe.Result

	mu       sync.Mutex
	seq      uint64
	pending  map[uint64]*fakeProbe
	flows    map[int][]uint16 // flows sent, per TTL, in order
	inFlight int
	most     int // the largest inFlight seen
}

type fakeProbe struct {
	req   probe.Request
	timer *time.Timer
}

func newFakeNet(at func(ttl int, flow uint16) probe.Result) *fakeNet {
	return &fakeNet{at: at, pending: map[uint64]*fakeProbe{}, flows: map[int][]uint16{}}
}

func (n *fakeNet) Start(r probe.Request) (uint64, error) {
	n.mu.Lock()
	n.seq++
	seq := n.seq
	fp := &fakeProbe{req: r}
	n.pending[seq] = fp
	n.flows[r.TTL] = append(n.flows[r.TTL], r.Flow)
	n.inFlight++
	n.most = max(n.most, n.inFlight)
	ans := n.at(r.TTL, r.Flow)
	if ans.Outcome == 0 {
		fp.timer = time.AfterFunc(r.Timeout, func() { n.finish(seq, probe.Result{Outcome: probe.Timeout}) })
	} else {
		go n.finish(seq, ans)
	}
	n.mu.Unlock()
	return seq, nil
}

func (n *fakeNet) finish(seq uint64, r probe.Result) bool {
	n.mu.Lock()
	fp := n.pending[seq]
	delete(n.pending, seq)
	if fp != nil {
		n.inFlight--
		if fp.timer != nil {
			fp.timer.Stop()
		}
	}
	n.mu.Unlock()
	if fp == nil {
		return false
	}
	r.Dst, r.Seq = fp.req.Dst, seq
	if r.Outcome == probe.Reply || r.Outcome == probe.ICMPError {
		r.RTT = time.Duration(fp.req.TTL) * 100 * time.Microsecond
	}
	fp.req.OnResult(r)
	return true
}

func (n *fakeNet) Cancel(_ netip.Addr, seq uint64) bool {
	return n.finish(seq, probe.Result{Outcome: probe.Canceled, Err: probe.ErrClosed})
}

// check verifies what must hold after any run: nothing left pending, and flows 0..n-1, each
// once, at every TTL.
func (n *fakeNet) check(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending) != 0 {
		t.Errorf("%d probes left pending", len(n.pending))
	}
	for ttl, fs := range n.flows {
		for i, f := range fs {
			if int(f) != i {
				t.Errorf("ttl %d: flows %v, want 0..%d in order", ttl, fs, len(fs)-1)
				break
			}
		}
	}
}

func (n *fakeNet) sentAt(ttl int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.flows[ttl])
}

var (
	mpDst = netip.MustParseAddr("198.18.9.2")
	mpR1  = netip.MustParseAddr("198.18.1.1")
	mpR2a = netip.MustParseAddr("198.18.2.1")
	mpR2b = netip.MustParseAddr("198.18.2.2")
	mpR2c = netip.MustParseAddr("198.18.2.3")
	mpR3  = netip.MustParseAddr("198.18.3.1")
)

func timeExceeded(from netip.Addr) probe.Result {
	return probe.Result{Outcome: probe.ICMPError, From: from, Kind: icmp.KindTimeExceeded, Type: 11}
}

// network answers at TTL i+1 from hops[i](flow), and with an Echo Reply from mpDst from
// TTL len(hops)+1 on; a hop function returning the zero Addr is silent for that flow.
func network(hops ...func(flow uint16) netip.Addr) func(int, uint16) probe.Result {
	return func(ttl int, flow uint16) probe.Result {
		if ttl > len(hops) {
			return probe.Result{Outcome: probe.Reply, From: mpDst}
		}
		if a := hops[ttl-1](flow); a.IsValid() {
			return timeExceeded(a)
		}
		return probe.Result{}
	}
}

func only(a netip.Addr) func(uint16) netip.Addr { return func(uint16) netip.Addr { return a } }

func spread(as ...netip.Addr) func(uint16) netip.Addr {
	return func(f uint16) netip.Addr { return as[int(f)%len(as)] }
}

// multipath runs Multipath bounded in time, and checks that onHop saw exactly the Result's
// hops, in TTL order from First, each with sorted interfaces.
func multipath(t *testing.T, p Prober, cfg *MultipathConfig) (MultiResult, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var seen []MultiHop
	start := time.Now()
	res, err := Multipath(ctx, p, mpDst, cfg, func(h MultiHop) { seen = append(seen, h) })
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Multipath: %v", err)
	}
	first := 1
	if cfg != nil && cfg.First > 0 {
		first = cfg.First
	}
	if len(seen) != len(res.Hops) {
		t.Fatalf("onHop saw %d hops, Result has %d", len(seen), len(res.Hops))
	}
	for i, h := range seen {
		if h.TTL != first+i || !slices.EqualFunc(h.Interfaces, res.Hops[i].Interfaces, func(a, b Interface) bool { return a == b }) {
			t.Fatalf("hop %d: onHop %+v, Result %+v", i, h, res.Hops[i])
		}
		if !slices.IsSortedFunc(h.Interfaces, func(a, b Interface) int { return a.Addr.Compare(b.Addr) }) {
			t.Errorf("ttl %d: interfaces not sorted: %+v", h.TTL, h.Interfaces)
		}
	}
	return res, took
}

// wantHop checks a hop's interfaces and how many flows counted.
func wantHop(t *testing.T, res MultiResult, ttl int, flows int, addrs ...netip.Addr) {
	t.Helper()
	i := slices.IndexFunc(res.Hops, func(h MultiHop) bool { return h.TTL == ttl })
	if i < 0 {
		t.Fatalf("no hop %d in %+v", ttl, res.Hops)
	}
	h := res.Hops[i]
	var got []netip.Addr
	for _, in := range h.Interfaces {
		got = append(got, in.Addr)
		if in.RTT <= 0 {
			t.Errorf("ttl %d: %s has RTT %v", ttl, in.Addr, in.RTT)
		}
	}
	if !slices.Equal(got, addrs) || h.Flows != flows {
		t.Errorf("ttl %d: %v after %d flows, want %v after %d", ttl, got, h.Flows, addrs, flows)
	}
}

// TestMultipathStopping: how many flows each hop gets, with the default confidence, over
// model networks.
func TestMultipathStopping(t *testing.T) {
	n1, n2, n3 := stopFlows(1, DefaultConfidence), stopFlows(2, DefaultConfidence), stopFlows(3, DefaultConfidence)
	t.Run("one path", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1), only(mpR2a), only(mpR3)))
		res, _ := multipath(t, n, nil)
		n.check(t)
		if len(res.Hops) != 4 || !res.Reached {
			t.Fatalf("%d hops, reached %v: %+v", len(res.Hops), res.Reached, res.Hops)
		}
		for ttl, a := range []netip.Addr{mpR1, mpR2a, mpR3, mpDst} {
			wantHop(t, res, ttl+1, n1, a)
		}
		if last := res.Hops[3].Interfaces[0]; !last.Final || last.Annotation != "" {
			t.Errorf("destination %+v, want final with no mark", last)
		}
		if res.Hops[0].Interfaces[0].Final {
			t.Errorf("router %+v marked final", res.Hops[0].Interfaces[0])
		}
		if res.Sent < 4*n1 || res.Sent > 4*n1+DefaultParallel {
			t.Errorf("sent %d, want %d and at most Parallel past the destination", res.Sent, 4*n1)
		}
	})
	t.Run("two branches", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1), spread(mpR2a, mpR2b), only(mpR3)))
		res, _ := multipath(t, n, nil)
		n.check(t)
		wantHop(t, res, 1, n1, mpR1)
		wantHop(t, res, 2, n2, mpR2a, mpR2b)
		wantHop(t, res, 3, n1, mpR3)
		wantHop(t, res, 4, n1, mpDst)
		if !res.Reached || len(res.Hops) != 4 {
			t.Errorf("reached %v after %d hops", res.Reached, len(res.Hops))
		}
	})
	t.Run("three branches", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1), spread(mpR2c, mpR2a, mpR2b), only(mpR3)))
		res, _ := multipath(t, n, nil)
		n.check(t)
		wantHop(t, res, 2, n3, mpR2a, mpR2b, mpR2c)
		wantHop(t, res, 3, n1, mpR3)
	})
	t.Run("branch seen late", func(t *testing.T) {
		// The second branch takes only flow 4: seen within n_1, so n_2 flows in all.
		n := newFakeNet(network(only(mpR1), func(f uint16) netip.Addr {
			if f == 4 {
				return mpR2b
			}
			return mpR2a
		}))
		res, _ := multipath(t, n, nil)
		n.check(t)
		wantHop(t, res, 2, n2, mpR2a, mpR2b)
	})
	t.Run("confidence", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1), spread(mpR2a, mpR2b)))
		res, _ := multipath(t, n, &MultipathConfig{Confidence: 1e-3})
		n.check(t)
		wantHop(t, res, 1, stopFlows(1, 1e-3), mpR1)
		wantHop(t, res, 2, stopFlows(2, 1e-3), mpR2a, mpR2b)
	})
	t.Run("max flows", func(t *testing.T) {
		// One interface per flow: k keeps growing, and MaxFlows ends it.
		n := newFakeNet(network(func(f uint16) netip.Addr {
			return netip.AddrFrom4([4]byte{198, 18, 100, byte(f)})
		}))
		res, _ := multipath(t, n, nil)
		n.check(t)
		if h := res.Hops[0]; len(h.Interfaces) != MaxFlows || h.Flows != MaxFlows || n.sentAt(1) != MaxFlows {
			t.Errorf("%d interfaces after %d flows (%d sent), want %d", len(h.Interfaces), h.Flows, n.sentAt(1), MaxFlows)
		}
	})
	t.Run("parallel", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1), spread(mpR2a, mpR2b), only(mpR3)))
		res, _ := multipath(t, n, &MultipathConfig{Parallel: 2})
		n.check(t)
		wantHop(t, res, 2, n2, mpR2a, mpR2b)
		wantHop(t, res, 4, n1, mpDst)
		if n.most > 2 {
			t.Errorf("%d probes in flight, Parallel 2", n.most)
		}
	})
	t.Run("first", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1), spread(mpR2a, mpR2b), only(mpR3)))
		res, _ := multipath(t, n, &MultipathConfig{First: 2})
		n.check(t)
		if res.Hops[0].TTL != 2 || n.sentAt(1) != 0 {
			t.Fatalf("first hop %d, %d probes at TTL 1", res.Hops[0].TTL, n.sentAt(1))
		}
		wantHop(t, res, 2, n2, mpR2a, mpR2b)
	})
}

// TestMultipathSilent: a hop that never answers counts n_1 timed-out flows and shows no
// interface; the trace goes on past it and gives it up after its Near wait, well before Wait.
// A hop that lost one flow of several (a rate limit) waits for it only its Here wait.
func TestMultipathSilent(t *testing.T) {
	n1 := stopFlows(1, DefaultConfidence)
	for _, c := range []struct {
		name string
		hop2 func(uint16) netip.Addr
		want []netip.Addr
	}{
		{"silent", func(uint16) netip.Addr { return netip.Addr{} }, nil},
		{"one flow lost", func(f uint16) netip.Addr {
			if f == 2 {
				return netip.Addr{}
			}
			return mpR2a
		}, []netip.Addr{mpR2a}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newFakeNet(network(only(mpR1), c.hop2, only(mpR3)))
			res, took := multipath(t, n, nil)
			n.check(t)
			wantHop(t, res, 2, n1, c.want...)
			wantHop(t, res, 4, n1, mpDst)
			if took < minShortWait || took > DefaultWait/2 {
				t.Errorf("took %v, want between %v and %v", took, minShortWait, DefaultWait/2)
			}
		})
	}
	t.Run("nothing past it", func(t *testing.T) {
		// No later answer to go by: the Prober's own timeouts, at Wait, end the hops.
		n := newFakeNet(network(only(mpR1), only(netip.Addr{}), only(netip.Addr{})))
		wait := 50 * time.Millisecond
		res, took := multipath(t, n, &MultipathConfig{Max: 3, Wait: wait})
		n.check(t)
		if res.Reached || len(res.Hops) != 3 || took < wait {
			t.Fatalf("reached %v, %d hops, in %v: %+v", res.Reached, len(res.Hops), took, res.Hops)
		}
		wantHop(t, res, 2, n1)
		wantHop(t, res, 3, n1)
	})
}

// TestMultipathEnd: the destination ends the trace at its TTL, and so does an error other
// than Time Exceeded; a hop where some flows reach the destination and others meet a router
// (paths of unequal length) does not.
func TestMultipathEnd(t *testing.T) {
	n1 := stopFlows(1, DefaultConfidence)
	t.Run("destination", func(t *testing.T) {
		n := newFakeNet(network(only(mpR1)))
		res, _ := multipath(t, n, &MultipathConfig{Max: 10})
		n.check(t)
		if len(res.Hops) != 2 || !res.Reached {
			t.Fatalf("%d hops, reached %v", len(res.Hops), res.Reached)
		}
		wantHop(t, res, 2, n1, mpDst)
		for ttl := 3; ttl <= 10; ttl++ {
			if s := n.sentAt(ttl); s > 0 && ttl > 2+multipathAhead {
				t.Errorf("%d probes at TTL %d, past the lookahead", s, ttl)
			}
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		n := newFakeNet(func(ttl int, flow uint16) probe.Result {
			if ttl == 1 {
				return timeExceeded(mpR1)
			}
			return probe.Result{Outcome: probe.ICMPError, From: mpR2a, Kind: icmp.KindDestinationUnreachable, Type: 3, Code: 1}
		})
		res, _ := multipath(t, n, nil)
		n.check(t)
		if len(res.Hops) != 2 || res.Reached {
			t.Fatalf("%d hops, reached %v", len(res.Hops), res.Reached)
		}
		if in := res.Hops[1].Interfaces; len(in) != 1 || in[0].Annotation != "!H" || !in[0].Final {
			t.Errorf("hop 2: %+v, want %s !H final", in, mpR2a)
		}
	})
	t.Run("unequal paths", func(t *testing.T) {
		// Odd flows take a longer branch and reach the destination a hop later.
		n := newFakeNet(func(ttl int, flow uint16) probe.Result {
			switch {
			case ttl == 1:
				return timeExceeded(mpR1)
			case ttl == 2 && flow%2 == 1:
				return timeExceeded(mpR2b)
			case ttl == 2:
				return timeExceeded(mpR2a)
			case ttl == 3 && flow%2 == 1:
				return timeExceeded(mpR3)
			}
			return probe.Result{Outcome: probe.Reply, From: mpDst}
		})
		res, _ := multipath(t, n, nil)
		n.check(t)
		if len(res.Hops) != 4 || !res.Reached {
			t.Fatalf("%d hops, reached %v: %+v", len(res.Hops), res.Reached, res.Hops)
		}
		wantHop(t, res, 3, stopFlows(2, DefaultConfidence), mpR3, mpDst)
		wantHop(t, res, 4, n1, mpDst)
	})
}

// TestMultipathCancel: when ctx ends, Multipath returns its error with the hops reported so
// far, and leaves no probe pending.
func TestMultipathCancel(t *testing.T) {
	n := newFakeNet(network(only(mpR1), only(netip.Addr{}), only(netip.Addr{})))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var res MultiResult
	var err error
	go func() {
		defer close(done)
		res, err = Multipath(ctx, n, mpDst, &MultipathConfig{Wait: time.Minute}, func(h MultiHop) { cancel() })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Multipath did not return after its context ended")
	}
	if !errors.Is(err, context.Canceled) || len(res.Hops) != 1 {
		t.Fatalf("err %v, %d hops; want context.Canceled after 1", err, len(res.Hops))
	}
	n.check(t)
}

// TestMultipathConfig: what Multipath refuses.
func TestMultipathConfig(t *testing.T) {
	e := probe.New(nil)
	n := newFakeNet(network())
	for _, c := range []struct {
		name string
		p    Prober
		dst  netip.Addr
		cfg  MultipathConfig
	}{
		{"confidence 1", n, mpDst, MultipathConfig{Confidence: 1}},
		{"negative confidence", n, mpDst, MultipathConfig{Confidence: -0.1}},
		{"max under first", n, mpDst, MultipathConfig{First: 5, Max: 4}},
		{"max over 255", n, mpDst, MultipathConfig{Max: MaxTTL + 1}},
		{"negative parallel", n, mpDst, MultipathConfig{Parallel: -1}},
		{"no destination", n, netip.Addr{}, MultipathConfig{}},
		{"unspecified destination", n, netip.IPv6Unspecified(), MultipathConfig{}},
		// An echo request this small has no room for the flow word.
		{"echo size 10", e, mpDst, MultipathConfig{Size: 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Multipath(context.Background(), c.p, c.dst, &c.cfg, nil)
			if !errors.Is(err, ErrConfig) {
				t.Errorf("err %v, want ErrConfig", err)
			}
		})
	}
	if n.sentAt(1) != 0 {
		t.Errorf("a refused configuration sent %d probes", n.sentAt(1))
	}
}
