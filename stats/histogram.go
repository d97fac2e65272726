package stats

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// The histogram maps an RTT x (in nanoseconds) to bucket k = ceil(log_γ x),
// which covers (γ^(k-1), γ^k]. Reporting γ^k·(1-α) for every value in the
// bucket is then off by at most α relative (DDSketch, section 2). Rounding that
// value to a whole nanosecond for time.Duration adds at most 0.5 ns, which is
// 0.05% at the 1 µs floor and negligible above it.
const (
	relativeAccuracy = 0.01 // α
	gamma            = (1 + relativeAccuracy) / (1 - relativeAccuracy)
	// logGamma is ln γ = 2·atanh(α), written out because constants cannot
	// call math.Log; TestBucketConstants checks it.
	logGamma = 0.020000666706669523

	minTrackedNS = 1e3  // 1 µs: finer resolution than any ICMP timestamp path offers
	maxTrackedNS = 1e11 // 100 s: longer than any sensible probe timeout

	firstBucket = 346  // ceil(ln(minTrackedNS) / logGamma)
	lastBucket  = 1267 // ceil(ln(maxTrackedNS) / logGamma)
	numBuckets  = lastBucket - firstBucket + 1
)

// bucket is one non-empty histogram bucket. The index is relative to
// firstBucket so that it fits in 16 bits and the pair packs into 8 bytes.
type bucket struct {
	index uint16
	count uint32
}

// histogram is a sparse log-bucketed histogram. Its memory grows with the
// number of distinct buckets hit, never beyond numBuckets entries, which keeps
// a typical target (a few dozen buckets) far below a dense array's 8 KB.
// Not safe for concurrent use.
type histogram struct {
	buckets []bucket // non-empty buckets, sorted by index
	total   uint64   // sum of counts
}

// bucketIndex returns the bucket of d, clamping d into the tracked range.
func bucketIndex(d time.Duration) uint16 {
	x := min(max(float64(d), minTrackedNS), maxTrackedNS)
	k := int(math.Ceil(math.Log(x)/logGamma)) - firstBucket
	// Rounding in Log at the two clamped ends must not step off the table.
	return uint16(min(max(k, 0), numBuckets-1))
}

// bucketValue returns the representative value of bucket i: the point whose
// relative distance to both bucket edges is α.
func bucketValue(i uint16) time.Duration {
	k := float64(int(i) + firstBucket)
	return time.Duration(math.Round(math.Exp(k*logGamma) * (1 - relativeAccuracy)))
}

func compareBucket(b bucket, i uint16) int { return cmp.Compare(b.index, i) }

// add counts one sample in bucket i. It allocates only when i is a bucket not
// seen before and the slice is full.
func (h *histogram) add(i uint16) {
	j, found := slices.BinarySearchFunc(h.buckets, i, compareBucket)
	if found {
		if h.buckets[j].count == math.MaxUint32 {
			h.halve()
		}
		h.buckets[j].count++
		h.total++
		return
	}
	n := len(h.buckets)
	if n == cap(h.buckets) {
		// Grow by doubling but never past numBuckets, so capacity, not just
		// length, stays within the bound.
		grown := make([]bucket, n, min(max(2*n, 4), numBuckets))
		copy(grown, h.buckets)
		h.buckets = grown
	}
	h.buckets = h.buckets[:n+1]
	copy(h.buckets[j+1:], h.buckets[j:n])
	h.buckets[j] = bucket{index: i, count: 1}
	h.total++
}

// halve scales every count down by two, rounding up so that no bucket empties.
// It runs only after 2^32 samples in one bucket and keeps the shape of the
// distribution, which is all the quantiles need, instead of saturating one
// bucket and skewing them.
func (h *histogram) halve() {
	h.total = 0
	for j := range h.buckets {
		c := h.buckets[j].count
		c = c/2 + c%2
		h.buckets[j].count = c
		h.total += uint64(c)
	}
}

// indexAtRank returns the bucket holding the rank-th smallest sample
// (1-based). rank must be in [1, h.total].
func (h *histogram) indexAtRank(rank uint64) uint16 {
	var seen uint64
	for _, b := range h.buckets {
		seen += uint64(b.count)
		if seen >= rank {
			return b.index
		}
	}
	return h.buckets[len(h.buckets)-1].index
}

// reset empties the histogram but keeps its storage, so a reused Recorder
// does not allocate again for buckets it has seen before.
func (h *histogram) reset() {
	h.buckets = h.buckets[:0]
	h.total = 0
}
