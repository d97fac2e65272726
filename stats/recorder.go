package stats

import (
	"math"
	"math/bits"
	"strconv"
	"time"
)

// Recorder accumulates one target's outcomes. Not safe for concurrent use:
// one goroutine owns it. The zero value is ready to use.
//
// Its memory is a fixed header plus 8 bytes per distinct histogram bucket
// hit (at most 922 buckets, in practice a few dozen), whatever the number of
// probes. Negative RTTs, which only a clock error can produce, count as 0.
type Recorder struct {
	sent, received, lost, errors     uint64
	duplicates, reordered, corrupted uint64
	late                             uint64
	maxSeq                           uint64        // highest seq replied to; valid once received > 0
	min, max                         time.Duration // over replies and duplicates
	sumHi, sumLo                     uint64        // exact 128-bit sum of RTTs in ns, for Avg
	shift                            time.Duration // first RTT; see observe
	mean, m2                         float64       // Welford state over RTT-shift in ns
	lastReply                        time.Duration // previous Reply RTT, for Jitter
	jitterSum                        float64       // Σ|Δ| of consecutive Reply RTTs in ns
	hist                             histogram
}

// Sent records that a probe went out.
func (r *Recorder) Sent() { r.sent++ }

// Reply records the first reply to probe seq.
func (r *Recorder) Reply(seq uint64, rtt time.Duration) {
	rtt = max(rtt, 0)
	if r.received == 0 {
		r.maxSeq = seq
	} else {
		if seq < r.maxSeq {
			r.reordered++
		} else {
			r.maxSeq = seq
		}
		// Both RTTs are non-negative, so the difference cannot overflow.
		r.jitterSum += math.Abs(float64(rtt - r.lastReply))
	}
	r.lastReply = rtt
	r.received++
	r.observe(rtt)
}

// Duplicate records another reply to an already-answered probe. Its RTT
// counts towards Min, Avg, Max, MDev and the percentiles, as in iputils, but
// not towards Jitter or reordering. seq does not affect the figures.
func (r *Recorder) Duplicate(seq uint64, rtt time.Duration) {
	r.duplicates++
	r.observe(max(rtt, 0))
}

// Lost records that a probe's wait ended with no reply.
func (r *Recorder) Lost() { r.lost++ }

// Error records that a probe was answered by an ICMP error.
func (r *Recorder) Error() { r.errors++ }

// Corrupted records a reply whose payload did not match the pattern. It only
// counts; the caller decides whether to report the reply with Reply as well.
func (r *Recorder) Corrupted() { r.corrupted++ }

// Late records a reply that arrived after its probe was given up as lost. It
// changes neither Received nor Lost.
func (r *Recorder) Late() { r.late++ }

// observe folds a non-negative RTT into the distribution figures. The caller
// has already counted it in received or duplicates.
func (r *Recorder) observe(rtt time.Duration) {
	n := r.received + r.duplicates
	if n == 1 {
		r.min, r.max, r.shift = rtt, rtt, rtt
	} else {
		r.min = min(r.min, rtt)
		r.max = max(r.max, rtt)
	}
	var carry uint64
	r.sumLo, carry = bits.Add64(r.sumLo, uint64(rtt), 0)
	r.sumHi += carry

	// Welford runs on RTT minus the first RTT: the samples then sit near
	// zero, where float64 resolves them exactly, instead of near 1e10 ns
	// where a 1 ns spread is lost in the last bits of the mean.
	y := float64(rtt - r.shift)
	d := y - r.mean
	r.mean += d / float64(n)
	r.m2 += d * (y - r.mean)

	r.hist.add(bucketIndex(rtt))
}

// Summary returns a snapshot of the figures so far.
func (r *Recorder) Summary() Summary {
	s := Summary{
		Sent:       r.sent,
		Received:   r.received,
		Lost:       r.lost,
		Errors:     r.errors,
		Duplicates: r.duplicates,
		Reordered:  r.reordered,
		Corrupted:  r.corrupted,
		Late:       r.late,
	}
	n := r.received + r.duplicates
	if n == 0 {
		return s
	}
	s.Min, s.Max = r.min, r.max
	s.Avg = r.avg(n)
	s.MDev = time.Duration(math.Round(r.mdevNS()))
	if r.received > 1 {
		s.Jitter = time.Duration(math.Round(r.jitterSum / float64(r.received-1)))
	}
	s.P50 = r.Quantile(0.50)
	s.P90 = r.Quantile(0.90)
	s.P99 = r.Quantile(0.99)
	return s
}

// avg returns the mean of the n samples rounded to the nearest nanosecond.
func (r *Recorder) avg(n uint64) time.Duration {
	// Every sample is below 2^63, so sumHi < n and Div64 cannot panic.
	q, rem := bits.Div64(r.sumHi, r.sumLo, n)
	if rem >= n-rem {
		q++
	}
	return time.Duration(q)
}

// mdevNS returns the population standard deviation in nanoseconds, unrounded.
func (r *Recorder) mdevNS() float64 {
	n := r.received + r.duplicates
	if n == 0 {
		return 0
	}
	return math.Sqrt(max(r.m2, 0) / float64(n))
}

// Quantile returns the q-quantile of the RTTs of replies and duplicates by
// the nearest-rank method: the smallest sample with at least ⌈q·n⌉ samples at
// or below it. The result is the histogram bucket's representative value,
// within 1% (plus 0.5 ns of rounding) of the exact sample for RTTs between
// 1 µs and 100 s, and clamped into [Min, Max]. q is clamped into [0, 1]; NaN
// counts as 0. It returns 0 when there are no samples.
func (r *Recorder) Quantile(q float64) time.Duration {
	total := r.hist.total
	if total == 0 {
		return 0
	}
	if !(q > 0) {
		q = 0
	}
	rank := uint64(math.Ceil(min(q, 1) * float64(total)))
	rank = min(max(rank, 1), total)
	v := bucketValue(r.hist.indexAtRank(rank))
	return min(max(v, r.min), r.max)
}

// Reset forgets everything recorded so far. It keeps the histogram's storage,
// so a reused Recorder does not allocate again.
func (r *Recorder) Reset() {
	h := r.hist
	h.reset()
	*r = Recorder{hist: h}
}

// Summary is a value snapshot of one target's figures; copies are independent
// and safe to share between goroutines.
//
// Min, Avg, Max and MDev cover the RTTs of replies and duplicates, as iputils
// does (it sums duplicates into tsum). Avg is the arithmetic mean rounded to
// the nearest nanosecond and MDev the population standard deviation. P50, P90
// and P99 come from the histogram (see Recorder.Quantile). Jitter is the mean
// absolute difference of consecutive Reply RTTs in arrival order, duplicates
// excluded. All durations are 0 when there is nothing to measure.
type Summary struct {
	Sent, Received, Lost, Errors, Duplicates, Reordered, Corrupted, Late uint64

	Min, Avg, Max, MDev time.Duration
	P50, P90, P99       time.Duration
	Jitter              time.Duration
}

// InFlight returns the probes still awaiting an outcome:
// Sent - Received - Lost - Errors, clamped at 0.
func (s Summary) InFlight() uint64 {
	// Subtract step by step so that no sum can overflow.
	left := s.Sent
	for _, done := range [...]uint64{s.Received, s.Lost, s.Errors} {
		if done >= left {
			return 0
		}
		left -= done
	}
	return left
}

// LossPercent returns iputils' loss figure, (Sent-Received)*100/Sent. Probes
// still in flight therefore count as lost, as in iputils' final line. It is 0
// when Sent is 0 or Received exceeds Sent.
func (s Summary) LossPercent() float64 {
	if s.Sent == 0 || s.Received >= s.Sent {
		return 0
	}
	return float64(s.Sent-s.Received) * 100 / float64(s.Sent)
}

// FormatMS formats d the way iputils prints RTTs in milliseconds, as in
// "rtt min/avg/max/mdev = 0.042/0.050/0.061/0.007 ms": d truncated to whole
// microseconds and written as "ms.µµµ". A negative d gets a leading minus.
func FormatMS(d time.Duration) string {
	us := d.Microseconds()
	var buf [32]byte
	b := buf[:0]
	if us < 0 {
		b = append(b, '-')
		us = -us // cannot overflow: |MinInt64| / 1000 fits
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return string(b)
}
