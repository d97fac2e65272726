package probe

import (
	"runtime"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/rawsock"
)

// TestSoak sends a million probes through one engine and checks that memory and goroutines stay
// flat: the live heap after GC at 10^6 probes is within 1 MiB of that at 10^5.
func TestSoak(t *testing.T) {
	if raceEnabled {
		t.Skip("soak runs without -race (scripts/test.sh runs it that way): the race detector's shadow memory would swamp the measurement")
	}
	n := 1_000_000
	if testing.Short() {
		n = 200_000
	}
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	const inFlight = 64
	window := make(chan struct{}, inFlight)
	release := func(r Result) {
		if r.Outcome != Duplicate {
			<-window
		}
	}
	measure := func() (heap uint64, goroutines int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, runtime.NumGoroutine()
	}
	var heapA uint64
	var gorA int
	start := time.Now()
	for i := range n {
		window <- struct{}{}
		// A short timeout keeps the answered entries (kept for duplicate detection) few.
		if _, err := e.Start(Request{Dst: lo4, Size: 56, Timeout: 20 * time.Millisecond, OnResult: release}); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		if i+1 == n/10 {
			heapA, gorA = measure()
		}
	}
	for range inFlight { // every outcome is in
		window <- struct{}{}
	}
	heapB, gorB := measure()
	c := e.Counters()
	t.Logf("%d probes in %v; heap after GC %d KiB at %d, %d KiB at %d; goroutines %d, %d; counters %+v",
		n, time.Since(start).Round(time.Millisecond), heapA>>10, n/10, heapB>>10, n, gorA, gorB, c)
	if c.Sent != uint64(n) || c.Replies+c.Timeouts != uint64(n) || c.Timeouts > uint64(n/1000) {
		t.Errorf("counters %+v", c)
	}
	if heapB > heapA+1<<20 {
		t.Errorf("heap grew from %d to %d bytes between %d and %d probes", heapA, heapB, n/10, n)
	}
	// One more is the engine's timer callback, when it happens to be running at the moment of
	// counting; a leak over 10^6 probes would show as many more.
	if gorB > gorA+1 {
		t.Errorf("goroutines grew from %d to %d", gorA, gorB)
	}
}
