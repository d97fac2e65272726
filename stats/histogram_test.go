package stats

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketConstants(t *testing.T) {
	// ln γ = ln(1+α) − ln(1−α); Log1p avoids the rounding of γ itself.
	if got, want := logGamma, math.Log1p(relativeAccuracy)-math.Log1p(-relativeAccuracy); math.Abs(got-want) > 1e-15*want {
		t.Errorf("logGamma = %.20g, ln(gamma) = %.20g", got, want)
	}
	if got, want := firstBucket, int(math.Ceil(math.Log(minTrackedNS)/math.Log(gamma))); got != want {
		t.Errorf("firstBucket = %d, want %d", got, want)
	}
	if got, want := lastBucket, int(math.Ceil(math.Log(maxTrackedNS)/math.Log(gamma))); got != want {
		t.Errorf("lastBucket = %d, want %d", got, want)
	}
	if numBuckets > math.MaxUint16+1 {
		t.Errorf("numBuckets = %d does not fit a uint16 index", numBuckets)
	}
	// A dense array of uint32 counters would be 4·numBuckets bytes; the
	// brief's budget rules that out, which is why the histogram is sparse.
	t.Logf("numBuckets = %d", numBuckets)
}

func TestBucketIndexClamps(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want uint16
	}{
		{-time.Second, 0},
		{0, 0},
		{999, 0},
		{time.Microsecond, 0},
		{100 * time.Second, numBuckets - 1},
		{101 * time.Second, numBuckets - 1},
		{time.Duration(math.MaxInt64), numBuckets - 1},
	}
	for _, tt := range tests {
		if got := bucketIndex(tt.d); got != tt.want {
			t.Errorf("bucketIndex(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

// withinBound reports whether est is within the documented error of x:
// relative accuracy α plus half a nanosecond of rounding (and a hair of
// float64 slack for Log/Exp).
func withinBound(est, x time.Duration) bool {
	return math.Abs(float64(est-x)) <= relativeAccuracy*float64(x)*(1+1e-12)+0.5
}

// TestBucketValueErrorBound checks the accuracy claim exhaustively where
// rounding matters most (1 µs to 2 ms, every nanosecond) and at both integer
// edges of every bucket over the whole range.
func TestBucketValueErrorBound(t *testing.T) {
	prev := bucketIndex(minTrackedNS)
	for x := time.Duration(minTrackedNS); x <= 2*time.Millisecond; x++ {
		i := bucketIndex(x)
		if i < prev {
			t.Fatalf("bucketIndex not monotonic: %d -> %d at %d ns", prev, i, x)
		}
		prev = i
		if v := bucketValue(i); !withinBound(v, x) {
			t.Fatalf("x = %d ns: bucket %d value %d ns off by %.4f%%", x, i, v, 100*math.Abs(float64(v-x))/float64(x))
		}
	}
	for i := range uint16(numBuckets) {
		// Smallest and largest whole nanosecond in bucket i, found by
		// stepping from the real edges so they agree with bucketIndex.
		k := float64(int(i) + firstBucket)
		lo := max(time.Duration(math.Exp((k-1)*logGamma))-2, minTrackedNS)
		for bucketIndex(lo) < i {
			lo++
		}
		hi := min(time.Duration(math.Exp(k*logGamma))+2, maxTrackedNS)
		for bucketIndex(hi) > i {
			hi--
		}
		if bucketIndex(lo) != i || bucketIndex(hi) != i || lo > hi {
			t.Fatalf("bucket %d: edges %d..%d map to %d..%d", i, lo, hi, bucketIndex(lo), bucketIndex(hi))
		}
		v := bucketValue(i)
		if !withinBound(v, lo) || !withinBound(v, hi) {
			t.Errorf("bucket %d [%d, %d]: value %d outside the error bound", i, lo, hi, v)
		}
	}
}

func checkInvariants(t *testing.T, h *histogram) {
	t.Helper()
	if len(h.buckets) > numBuckets || cap(h.buckets) > numBuckets {
		t.Fatalf("len %d cap %d exceed %d buckets", len(h.buckets), cap(h.buckets), numBuckets)
	}
	var sum uint64
	for j, b := range h.buckets {
		if b.count == 0 {
			t.Fatalf("bucket %d stored empty", b.index)
		}
		if j > 0 && h.buckets[j-1].index >= b.index {
			t.Fatalf("buckets not strictly sorted at %d: %d then %d", j, h.buckets[j-1].index, b.index)
		}
		sum += uint64(b.count)
	}
	if sum != h.total {
		t.Fatalf("counts sum to %d, total says %d", sum, h.total)
	}
}

// TestHistogramMemoryBound feeds a million samples spread log-uniformly over
// and beyond the tracked range: storage must stop at numBuckets entries.
func TestHistogramMemoryBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	const n = 1_000_000
	lo, hi := math.Log(100), math.Log(1e12) // 100 ns .. 1000 s: includes clamping
	for range n {
		x := time.Duration(math.Exp(lo + rng.Float64()*(hi-lo)))
		h.add(bucketIndex(x))
	}
	checkInvariants(t, &h)
	if h.total != n {
		t.Errorf("total = %d, want %d", h.total, n)
	}
	if len(h.buckets) != numBuckets {
		t.Errorf("%d buckets used; a million log-uniform samples should reach all %d", len(h.buckets), numBuckets)
	}
	t.Logf("len %d cap %d (%d bytes)", len(h.buckets), cap(h.buckets), 8*cap(h.buckets))
}

// TestHistogramHalve drives one bucket to the uint32 limit and checks that
// the next sample halves every count instead of wrapping.
func TestHistogramHalve(t *testing.T) {
	h := histogram{
		buckets: []bucket{{index: 3, count: 5}, {index: 7, count: math.MaxUint32}, {index: 9, count: 1}},
		total:   5 + math.MaxUint32 + 1,
	}
	h.add(7)
	checkInvariants(t, &h)
	want := []bucket{{3, 3}, {7, 1<<31 + 1}, {9, 1}}
	for j, b := range h.buckets {
		if b != want[j] {
			t.Errorf("bucket %d = %+v, want %+v", j, b, want[j])
		}
	}
	if got := h.indexAtRank(h.total / 2); got != 7 {
		t.Errorf("median bucket after halving = %d, want 7", got)
	}
}

func TestHistogramInsertOrder(t *testing.T) {
	var h histogram
	for _, i := range []uint16{50, 10, 90, 10, 30, 921, 0, 50, 50} {
		h.add(i)
		checkInvariants(t, &h)
	}
	want := []bucket{{0, 1}, {10, 2}, {30, 1}, {50, 3}, {90, 1}, {921, 1}}
	if len(h.buckets) != len(want) {
		t.Fatalf("buckets = %+v, want %+v", h.buckets, want)
	}
	for j := range want {
		if h.buckets[j] != want[j] {
			t.Fatalf("buckets = %+v, want %+v", h.buckets, want)
		}
	}
	for rank, want := range map[uint64]uint16{1: 0, 2: 10, 3: 10, 4: 30, 5: 50, 7: 50, 8: 90, 9: 921} {
		if got := h.indexAtRank(rank); got != want {
			t.Errorf("indexAtRank(%d) = %d, want %d", rank, got, want)
		}
	}
	c := cap(h.buckets)
	h.reset()
	if len(h.buckets) != 0 || h.total != 0 || cap(h.buckets) != c {
		t.Errorf("after reset: len %d total %d cap %d (was %d)", len(h.buckets), h.total, cap(h.buckets), c)
	}
}
