package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/rawsock"
)

func loopbacks(n int) []netip.Addr {
	var out []netip.Addr
	for i := 1; i <= n; i++ {
		out = append(out, netip.MustParseAddr(fmt.Sprintf("127.0.%d.%d", i/250, 1+i%250)))
	}
	return out
}

// TestSweepSendsFail: a sweep whose last sends all fail ends at once; nothing else would wake
// it. It used to wait forever.
func TestSweepSendsFail(t *testing.T) {
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := 0
	res, err := e.Sweep(ctx, loopbacks(3), &SweepConfig{
		Count: 2, Period: time.Millisecond, Size: MaxPayload4 + 1,
		OnSendError: func(int, error) { failed++ },
	})
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for k, r := range res {
		if r.Alive || r.Summary.Sent != 2 || r.Summary.Errors != 2 {
			t.Errorf("target %d: %+v, want 2 sent, 2 errors", k, r)
		}
	}
	if failed != 6 {
		t.Errorf("%d send errors reported, want 6", failed)
	}
}

// TestSweepCount: every target gets exactly Count probes and answers them, outcomes are routed
// to the right target with the right probe number, and the interval spaces the sends.
func TestSweepCount(t *testing.T) {
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	dsts := append(loopbacks(50), lo6)
	if err := e.Open(icmp.IPv6); err != nil {
		dsts = dsts[:50]
	}
	seen := make([]map[int]bool, len(dsts))
	for i := range seen {
		seen[i] = map[int]bool{}
	}
	const count = 4
	start := time.Now()
	res, err := e.Sweep(context.Background(), dsts, &SweepConfig{
		Count: count, Period: time.Millisecond, Interval: 100 * time.Microsecond, Timeout: 2 * time.Second,
		OnResult: func(k, n int, r Result) {
			if r.Dst != dsts[k] || r.Outcome != Reply || seen[k][n] || n < 0 || n >= count {
				t.Errorf("target %d probe %d: %+v", k, n, r)
			}
			seen[k][n] = true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if !r.Alive || r.Summary.Sent != count || r.Summary.Received != count || len(seen[k]) != count {
			t.Errorf("target %v: %+v, saw %d", dsts[k], r, len(seen[k]))
		}
	}
	// count*len(dsts) sends 100µs apart, less the pacing clock's 1 ms of catch-up.
	if min := time.Duration(count*len(dsts)-1)*100*time.Microsecond - time.Millisecond; time.Since(start) < min {
		t.Errorf("took %v, less than the %v the interval allows", time.Since(start), min)
	}
	if n := e.pendingLen(); n > count*len(dsts) {
		t.Errorf("%d entries pending", n)
	}
}

// sweepAllReplies runs cfg (Count > 0, no OnResult) over dsts and checks that every target sent
// Count probes and had each answered exactly once.
func sweepAllReplies(t *testing.T, e *Engine, ctx context.Context, dsts []netip.Addr, cfg *SweepConfig) {
	t.Helper()
	count := cfg.Count
	seen := make([]int, len(dsts)*count)
	cfg.OnResult = func(k, n int, r Result) {
		if r.Dst != dsts[k] || r.Outcome != Reply || n < 0 || n >= count {
			t.Errorf("target %d probe %d: %+v", k, n, r)
			return
		}
		seen[k*count+n]++
	}
	res, err := e.Sweep(ctx, dsts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if r.Summary.Sent != uint64(count) || r.Summary.Received != uint64(count) {
			t.Errorf("target %v: %+v", dsts[k], r.Summary)
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("target %d probe %d: %d outcomes", i/count, i%count, n)
		}
	}
}

// TestSweepSenders: with several senders, batches leave from helper goroutines too, and still
// every target gets exactly Count probes, each outcome once, at full speed and paced.
func TestSweepSenders(t *testing.T) {
	e := New(&Config{Senders: 3, Socket: rawsock.Config{Mode: rawsock.Privileged}})
	t.Cleanup(func() { e.Close() })
	if err := e.Open(icmp.IPv4); err != nil {
		t.Skipf("cannot open a raw socket here: %v", err)
	}
	dsts := loopbacks(400)
	if err := e.Open(icmp.IPv6); err == nil {
		dsts = append(dsts, lo6)
	}
	for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
		if e.socks[famIndex(f)].Load() != nil && e.senders(f) != 3 {
			t.Fatalf("%s: %d senders, want 3", f, e.senders(f))
		}
	}
	for _, interval := range []time.Duration{-1, time.Microsecond} {
		t.Run(fmt.Sprint(interval), func(t *testing.T) {
			const count = 5
			before := e.Counters().Sent
			sweepAllReplies(t, e, context.Background(), dsts, &SweepConfig{
				Count: count, Period: time.Millisecond, Interval: interval, Timeout: 5 * time.Second,
			})
			if sent := e.Counters().Sent - before; sent != uint64(len(dsts)*count) {
				t.Errorf("engine sent %d, want %d", sent, len(dsts)*count)
			}
		})
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestSweepWindow: throughput mode over many targets of both families: each gets exactly Count
// probes, each answered once, with an hour's Period that only the window replaces.
// TestResponderSweepWindow checks the window's bound with delayed replies.
func TestSweepWindow(t *testing.T) {
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	dsts := append(loopbacks(30), lo6)
	if err := e.Open(icmp.IPv6); err != nil {
		dsts = dsts[:30]
	}
	for _, window := range []int{1, 3} {
		t.Run(fmt.Sprintf("window-%d", window), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sweepAllReplies(t, e, ctx, dsts, &SweepConfig{
				Count: 300, Window: window, Period: time.Hour, Interval: -1, Timeout: 5 * time.Second,
			})
		})
	}
}

// TestSweepDefaultMode: fping's default mode stops probing a target at its first reply.
func TestSweepDefaultMode(t *testing.T) {
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	dsts := loopbacks(20)
	res, err := e.Sweep(context.Background(), dsts, &SweepConfig{Interval: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if !r.Alive || r.Summary.Sent != 1 {
			t.Errorf("%v: %+v", dsts[k], r)
		}
	}
}

// TestSweepCanceled: a canceled sweep returns what it has, with the context's error.
func TestSweepCanceled(t *testing.T) {
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	ctx, cancel := context.WithCancel(context.Background())
	dsts := loopbacks(5)
	n := 0
	res, err := e.Sweep(ctx, dsts, &SweepConfig{Count: 1000, Period: time.Millisecond, OnResult: func(int, int, Result) {
		if n++; n == 10 {
			cancel()
		}
	}})
	if err == nil || len(res) != len(dsts) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	var sent uint64
	for _, r := range res {
		sent += r.Summary.Sent
	}
	if sent >= 5000 {
		t.Errorf("sent %d after cancel", sent)
	}
	// Answered entries linger until their timeout for duplicates. Probes in flight at the
	// cancel are left to expire: each within the sweep's Timeout, and no more of them than may
	// be in flight.
	e.mu.Lock()
	unanswered := 0
	for _, h := range e.pending.handles() {
		if ent := e.ent(h); !ent.is(entryDone) {
			unanswered++
			if d := time.Duration(ent.deadline - ent.sent); d != DefaultSweepTimeout {
				t.Errorf("unanswered probe %d expires %v after its send, want the sweep's %v", ent.seq, d, DefaultSweepTimeout)
			}
		}
	}
	e.mu.Unlock()
	if unanswered > DefaultMaxInFlight {
		t.Errorf("%d unanswered probes left, more than the %d that may be in flight", unanswered, DefaultMaxInFlight)
	}
}

// BenchmarkSweep is fping's full-speed case on loopback: 2,000 targets x 3, no gap between sends.
func BenchmarkSweep(b *testing.B) {
	e := newEngine(b, rawsock.Privileged, icmp.IPv4)
	dsts := loopbacks(2000)
	b.ResetTimer()
	for b.Loop() {
		res, err := e.Sweep(context.Background(), dsts, &SweepConfig{Count: 3, Interval: -1, Period: 10 * time.Millisecond, Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Summary.Received != 3 {
				b.Fatalf("%+v", r.Summary)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(dsts)*3)/b.Elapsed().Seconds(), "probes/s")
}

// TestSweepLoop: loop mode probes every target until ctx ends, then returns what it has with
// ctx's error; no target stops at its first reply, as default mode's would. OnWait comes
// before outcomes are handed over, and again later.
func TestSweepLoop(t *testing.T) {
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	dsts := loopbacks(20)
	const want = 30 // replies per target before the test ends the loop
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(time.Minute, cancel) // a bound, not a pace: the test cancels long before
	defer stop.Stop()
	replies := make([]int, len(dsts))
	done, waits, waitsAtFirst := 0, 0, -1
	res, err := e.Sweep(ctx, dsts, &SweepConfig{
		Loop: true, Period: time.Millisecond, Interval: -1, Timeout: 5 * time.Second,
		// Outcomes are handed over only after Sweep has waited, and it calls OnWait first.
		OnWait: func() { waits++ },
		OnResult: func(k, n int, r Result) {
			if waitsAtFirst < 0 {
				waitsAtFirst = waits
			}
			if r.Dst != dsts[k] || r.Outcome != Reply || n != replies[k] {
				t.Errorf("target %d probe %d (after %d replies): %+v", k, n, replies[k], r)
			}
			if replies[k]++; replies[k] == want {
				if done++; done == len(dsts) {
					cancel()
				}
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sweep ended with %v, want context.Canceled", err)
	}
	if waitsAtFirst < 1 || waits <= waitsAtFirst {
		t.Errorf("OnWait called %d times before the first outcome and %d in all; want it before and after", waitsAtFirst, waits)
	}
	for k, r := range res {
		if r.Summary.Received < want || r.Summary.Sent < r.Summary.Received || !r.Alive {
			t.Errorf("target %v: %+v", dsts[k], r.Summary)
		}
	}
}
