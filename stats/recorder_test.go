package stats

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// reference holds figures computed the straightforward way from every sample.
type reference struct {
	min, max, avg time.Duration
	mdev          float64 // ns, two-pass in big.Float
	sorted        []time.Duration
}

func newReference(samples []time.Duration) reference {
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	const prec = 256
	n := new(big.Float).SetPrec(prec).SetInt64(int64(len(samples)))
	sum := new(big.Int)
	for _, x := range samples {
		sum.Add(sum, big.NewInt(int64(x)))
	}
	// Mean rounded half up to whole nanoseconds: floor((2·sum + n) / 2n).
	avg := new(big.Int).Add(new(big.Int).Lsh(sum, 1), big.NewInt(int64(len(samples))))
	avg.Quo(avg, big.NewInt(2*int64(len(samples))))

	mean := new(big.Float).SetPrec(prec).SetInt(sum)
	mean.Quo(mean, n)
	ss := new(big.Float).SetPrec(prec)
	d := new(big.Float).SetPrec(prec)
	for _, x := range samples {
		d.SetInt64(int64(x))
		d.Sub(d, mean)
		d.Mul(d, d)
		ss.Add(ss, d)
	}
	ss.Quo(ss, n)
	ss.Sqrt(ss)
	mdev, _ := ss.Float64()
	return reference{min: sorted[0], max: sorted[len(sorted)-1], avg: time.Duration(avg.Int64()), mdev: mdev, sorted: sorted}
}

// quantile is the textbook nearest-rank quantile.
func (ref reference) quantile(q float64) time.Duration {
	n := len(ref.sorted)
	rank := int(math.Ceil(q * float64(n)))
	return ref.sorted[min(max(rank, 1), n)-1]
}

func clampNS(x float64) time.Duration {
	return time.Duration(min(max(x, minTrackedNS), maxTrackedNS))
}

var distributions = []struct {
	name string
	draw func(*rand.Rand) time.Duration
}{
	{"uniform", func(r *rand.Rand) time.Duration {
		return time.Microsecond + time.Duration(r.Int64N(int64(100*time.Millisecond)))
	}},
	{"lognormal", func(r *rand.Rand) time.Duration {
		return clampNS(math.Exp(math.Log(20e6) + 0.8*r.NormFloat64()))
	}},
	{"bimodal", func(r *rand.Rand) time.Duration {
		if r.Float64() < 0.7 {
			return clampNS(2e6 + 1e5*r.NormFloat64())
		}
		return clampNS(150e6 + 10e6*r.NormFloat64())
	}},
	{"constant", func(*rand.Rand) time.Duration { return 42_042_042 }},
	{"loguniform-full-range", func(r *rand.Rand) time.Duration {
		return clampNS(math.Exp(math.Log(minTrackedNS) + r.Float64()*math.Log(maxTrackedNS/minTrackedNS)))
	}},
}

var quantiles = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1}

func TestSummaryMatchesReference(t *testing.T) {
	for _, dist := range distributions {
		t.Run(dist.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(42, uint64(len(dist.name))))
			const n = 100_000
			samples := make([]time.Duration, n)
			var r Recorder
			for i := range samples {
				samples[i] = dist.draw(rng)
				r.Sent()
				r.Reply(uint64(i), samples[i])
			}
			ref := newReference(samples)
			s := r.Summary()

			if s.Sent != n || s.Received != n || s.Reordered != 0 {
				t.Errorf("Sent %d Received %d Reordered %d, want %d %d 0", s.Sent, s.Received, s.Reordered, n, n)
			}
			if s.Min != ref.min || s.Max != ref.max || s.Avg != ref.avg {
				t.Errorf("min/avg/max = %d/%d/%d, want %d/%d/%d", s.Min, s.Avg, s.Max, ref.min, ref.avg, ref.max)
			}
			if got := r.mdevNS(); math.Abs(got-ref.mdev) > 1e-9*ref.mdev {
				t.Errorf("mdev = %.12g ns, two-pass %.12g ns", got, ref.mdev)
			}
			if want := time.Duration(math.Round(ref.mdev)); s.MDev < want-1 || s.MDev > want+1 {
				t.Errorf("Summary.MDev = %d, want %d", s.MDev, want)
			}
			for _, q := range quantiles {
				got, want := r.Quantile(q), ref.quantile(q)
				if !withinBound(got, want) {
					t.Errorf("Quantile(%g) = %d, exact %d (%.3f%% off)", q, got, want, 100*math.Abs(float64(got-want))/float64(want))
				}
				if got < s.Min || got > s.Max {
					t.Errorf("Quantile(%g) = %d outside [%d, %d]", q, got, s.Min, s.Max)
				}
			}
			for _, p := range []struct {
				q   float64
				got time.Duration
			}{{0.5, s.P50}, {0.9, s.P90}, {0.99, s.P99}} {
				if p.got != r.Quantile(p.q) || !withinBound(p.got, ref.quantile(p.q)) {
					t.Errorf("P%g = %d, Quantile %d, exact %d", 100*p.q, p.got, r.Quantile(p.q), ref.quantile(p.q))
				}
			}
			// Jitter reference: mean |Δ| over consecutive samples.
			var jsum float64
			for i := 1; i < n; i++ {
				jsum += math.Abs(float64(samples[i] - samples[i-1]))
			}
			if want := time.Duration(math.Round(jsum / (n - 1))); s.Jitter < want-1 || s.Jitter > want+1 {
				t.Errorf("Jitter = %d, want %d", s.Jitter, want)
			}
		})
	}
}

// TestMDevCancellation: a million RTTs of 10 s ± 1 ns. Σx² is ~1e26, where a
// float64 ulp is ~1e10, so Σx² − n·mean² is noise; Welford must still give
// the 1 ns-scale spread.
func TestMDevCancellation(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 1_000_000
	samples := make([]time.Duration, n)
	var r Recorder
	var sum, sumSq float64
	for i := range samples {
		samples[i] = 10*time.Second + time.Duration(rng.IntN(3)-1)
		r.Reply(uint64(i), samples[i])
		x := float64(samples[i])
		sum += x
		sumSq += x * x
	}
	ref := newReference(samples)
	if ref.mdev < 0.7 || ref.mdev > 0.9 { // √(2/3) for uniform {-1, 0, 1}
		t.Fatalf("reference mdev %g: sample set not as intended", ref.mdev)
	}
	if got := r.mdevNS(); math.Abs(got-ref.mdev) > 1e-9*ref.mdev {
		t.Errorf("mdev = %.15g ns, two-pass %.15g ns", got, ref.mdev)
	}
	if s := r.Summary(); s.MDev != 1 || s.Avg != ref.avg || s.Min != ref.min || s.Max != ref.max {
		t.Errorf("Summary min/avg/max/mdev = %d/%d/%d/%d, want %d/%d/%d/1", s.Min, s.Avg, s.Max, s.MDev, ref.min, ref.avg, ref.max)
	}
	// Show the test has teeth: the textbook formula is far off here.
	naive := math.Sqrt(math.Abs(sumSq/n - (sum/n)*(sum/n)))
	if math.Abs(naive-ref.mdev) < 0.5*ref.mdev {
		t.Errorf("naive formula gave %g, close to %g: the case does not exercise cancellation", naive, ref.mdev)
	}
}

func TestReordered(t *testing.T) {
	tests := []struct {
		seqs []uint64
		want uint64
	}{
		{[]uint64{1, 2, 3, 4}, 0},
		{[]uint64{2, 1}, 1},
		{[]uint64{1, 3, 2, 4}, 1},
		{[]uint64{5, 1, 2, 3, 4}, 4},
		{[]uint64{1, 4, 2, 3, 5, 6}, 2},
		{[]uint64{0, 0}, 0}, // equal is not lower
		{[]uint64{10, 2, 11, 3}, 2},
	}
	for _, tt := range tests {
		var r Recorder
		for _, seq := range tt.seqs {
			r.Reply(seq, time.Millisecond)
		}
		if got := r.Summary().Reordered; got != tt.want {
			t.Errorf("seqs %v: Reordered = %d, want %d", tt.seqs, got, tt.want)
		}
	}
}

func TestDuplicates(t *testing.T) {
	var r Recorder
	for range 3 {
		r.Sent()
	}
	r.Reply(0, 10*time.Millisecond)
	r.Duplicate(0, 40*time.Millisecond)
	r.Reply(1, 20*time.Millisecond)
	r.Duplicate(0, 1*time.Millisecond)
	r.Reply(2, 30*time.Millisecond)
	s := r.Summary()

	// Figures over 10, 40, 20, 1, 30 ms, as iputils folds duplicates in.
	ref := newReference([]time.Duration{10e6, 40e6, 20e6, 1e6, 30e6})
	if s.Received != 3 || s.Duplicates != 2 || s.Reordered != 0 {
		t.Errorf("Received %d Duplicates %d Reordered %d, want 3 2 0", s.Received, s.Duplicates, s.Reordered)
	}
	if s.Min != ref.min || s.Avg != ref.avg || s.Max != ref.max || s.MDev != time.Duration(math.Round(ref.mdev)) {
		t.Errorf("min/avg/max/mdev = %v/%v/%v/%v, want %v/%v/%v/%v", s.Min, s.Avg, s.Max, s.MDev, ref.min, ref.avg, ref.max, ref.mdev)
	}
	// Jitter ignores duplicates: |20−10|, |30−20|.
	if s.Jitter != 10*time.Millisecond {
		t.Errorf("Jitter = %v, want 10ms", s.Jitter)
	}
	if s.LossPercent() != 0 || s.InFlight() != 0 {
		t.Errorf("LossPercent %g InFlight %d, want 0 0", s.LossPercent(), s.InFlight())
	}
	if got := r.Quantile(1); got != 40*time.Millisecond {
		t.Errorf("Quantile(1) = %v, want the duplicate's 40ms", got)
	}
}

func TestJitter(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		rtts []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5 * ms}, 0},
		{[]time.Duration{10 * ms, 20 * ms}, 10 * ms},
		{[]time.Duration{10 * ms, 20 * ms, 15 * ms, 15 * ms}, 5 * ms},
		{[]time.Duration{1, 2, 4}, 2}, // (1 + 2) / 2 rounds 1.5 up
		{[]time.Duration{7 * ms, 7 * ms, 7 * ms}, 0},
	}
	for _, tt := range tests {
		var r Recorder
		for i, rtt := range tt.rtts {
			r.Reply(uint64(i), rtt)
		}
		if got := r.Summary().Jitter; got != tt.want {
			t.Errorf("rtts %v: Jitter = %v, want %v", tt.rtts, got, tt.want)
		}
	}
}

func TestLossPercentAndInFlight(t *testing.T) {
	tests := []struct {
		s        Summary
		loss     float64
		inFlight uint64
	}{
		{Summary{}, 0, 0},
		{Summary{Sent: 10, Received: 10}, 0, 0},
		{Summary{Sent: 10, Received: 7, Lost: 3}, 30, 0},
		{Summary{Sent: 4, Received: 1, Lost: 1, Errors: 1}, 75, 1},
		{Summary{Sent: 3}, 100, 3},
		{Summary{Sent: 3, Received: 1}, 100 * 2.0 / 3, 2},
		{Summary{Sent: 2, Received: 2, Lost: 1}, 0, 0},    // inconsistent input: clamp
		{Summary{Sent: 2, Received: 3}, 0, 0},             // more replies than probes: clamp
		{Summary{Sent: 5, Received: 1, Errors: 9}, 80, 0}, // clamp
		{Summary{Sent: math.MaxUint64, Received: math.MaxUint64, Lost: math.MaxUint64}, 0, 0},
		{Summary{Sent: 10, Received: 2, Late: 3}, 80, 8}, // late replies do not count as received
	}
	for _, tt := range tests {
		if got := tt.s.LossPercent(); math.Abs(got-tt.loss) > 1e-12 {
			t.Errorf("%+v: LossPercent = %g, want %g", tt.s, got, tt.loss)
		}
		if got := tt.s.InFlight(); got != tt.inFlight {
			t.Errorf("%+v: InFlight = %d, want %d", tt.s, got, tt.inFlight)
		}
	}
}

func TestCounters(t *testing.T) {
	var r Recorder
	for range 9 {
		r.Sent()
	}
	r.Reply(0, time.Millisecond)
	r.Lost()
	r.Lost()
	r.Error()
	r.Corrupted()
	r.Late()
	r.Late()
	r.Late()
	got := r.Summary()
	want := Summary{
		Sent: 9, Received: 1, Lost: 2, Errors: 1, Corrupted: 1, Late: 3,
		Min: time.Millisecond, Avg: time.Millisecond, Max: time.Millisecond,
		P50: time.Millisecond, P90: time.Millisecond, P99: time.Millisecond,
	}
	if got != want {
		t.Errorf("Summary = %+v\nwant      %+v", got, want)
	}
	if got.InFlight() != 5 {
		t.Errorf("InFlight = %d, want 5", got.InFlight())
	}
}

func TestZeroValueAndNegativeRTT(t *testing.T) {
	var r Recorder
	if s := r.Summary(); s != (Summary{}) {
		t.Errorf("zero Recorder Summary = %+v", s)
	}
	if q := r.Quantile(0.5); q != 0 {
		t.Errorf("zero Recorder Quantile = %v", q)
	}
	r.Reply(0, -5*time.Millisecond)
	r.Reply(1, 2*time.Millisecond)
	s := r.Summary()
	if s.Min != 0 || s.Max != 2*time.Millisecond || s.Avg != time.Millisecond || s.Jitter != 2*time.Millisecond {
		t.Errorf("negative RTT not taken as 0: %+v", s)
	}
}

func TestQuantileArguments(t *testing.T) {
	var r Recorder
	for i, ms := range []time.Duration{5, 1, 3, 2, 4} {
		r.Reply(uint64(i), ms*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration // exact nearest-rank sample
	}{
		{math.Inf(-1), 1 * time.Millisecond},
		{-1, 1 * time.Millisecond},
		{math.NaN(), 1 * time.Millisecond},
		{0, 1 * time.Millisecond},
		{0.2, 1 * time.Millisecond},
		{0.21, 2 * time.Millisecond},
		{0.5, 3 * time.Millisecond},
		{0.8, 4 * time.Millisecond},
		{1, 5 * time.Millisecond},
		{2, 5 * time.Millisecond},
		{math.Inf(1), 5 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := r.Quantile(tt.q); !withinBound(got, tt.want) {
			t.Errorf("Quantile(%g) = %v, want within 1%% of %v", tt.q, got, tt.want)
		}
	}
	// The extremes are clamped onto the exact Min and Max.
	if r.Quantile(0) != time.Millisecond || r.Quantile(1) != 5*time.Millisecond {
		t.Errorf("Quantile(0), Quantile(1) = %v, %v, want 1ms, 5ms", r.Quantile(0), r.Quantile(1))
	}
}

func TestReset(t *testing.T) {
	feed := func(r *Recorder) {
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range 1000 {
			r.Sent()
			switch i % 10 {
			case 0:
				r.Lost()
			case 1:
				r.Error()
			default:
				r.Reply(uint64(i^3), time.Duration(rng.Int64N(int64(time.Second))))
			}
			if i%17 == 0 {
				r.Duplicate(uint64(i), time.Duration(rng.Int64N(int64(time.Second))))
			}
		}
	}
	var used, fresh Recorder
	feed(&used)
	feed(&fresh) // same seed: fresh holds exactly what used holds
	c := cap(used.hist.buckets)
	used.Reset()
	if s := used.Summary(); s != (Summary{}) {
		t.Fatalf("after Reset: %+v", s)
	}
	if used.Quantile(0.5) != 0 || cap(used.hist.buckets) != c {
		t.Fatalf("after Reset: Quantile %v, histogram cap %d (was %d)", used.Quantile(0.5), cap(used.hist.buckets), c)
	}
	feed(&used)
	if got, want := used.Summary(), fresh.Summary(); got != want {
		t.Errorf("reused Recorder = %+v\nfresh Recorder  = %+v", got, want)
	}
}

// TestHotPathAllocs: once the RTT's bucket exists, nothing on the per-probe
// path allocates, so 100,000 Recorders do not churn the garbage collector.
func TestHotPathAllocs(t *testing.T) {
	var r Recorder
	r.Reply(0, 20*time.Millisecond) // warm-up: creates the bucket
	var seq uint64
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		r.Sent()
		r.Reply(seq, 20*time.Millisecond)
		r.Duplicate(seq, 20*time.Millisecond)
		r.Lost()
		r.Error()
		r.Corrupted()
		r.Late()
		_ = r.Summary()
		_ = r.Quantile(0.75)
	})
	if allocs != 0 {
		t.Errorf("hot path allocates %g times per probe", allocs)
	}
}

func TestRecorderSize(t *testing.T) {
	size := unsafe.Sizeof(Recorder{})
	t.Logf("unsafe.Sizeof(Recorder{}) = %d bytes", size)
	// 100,000 Recorders must fit in ~120 MB with their histograms; keep the
	// fixed part small enough to leave most of that to buckets.
	if size > 256 {
		t.Errorf("Recorder is %d bytes", size)
	}
}

func TestFormatMS(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{999 * time.Nanosecond, "0.000"},
		{1999 * time.Nanosecond, "0.001"},
		{42 * time.Microsecond, "0.042"},
		{50*time.Microsecond + 999, "0.050"},
		{time.Millisecond, "1.000"},
		{1500 * time.Microsecond, "1.500"},
		{12*time.Second + 345_678_999, "12345.678"},
		{-999 * time.Nanosecond, "0.000"},
		{-1500 * time.Microsecond, "-1.500"},
		{-7 * time.Microsecond, "-0.007"},
		{math.MaxInt64, "9223372036854.775"},
		{math.MinInt64, "-9223372036854.775"},
	}
	for _, tt := range tests {
		if got := FormatMS(tt.d); got != tt.want {
			t.Errorf("FormatMS(%d) = %q, want %q", int64(tt.d), got, tt.want)
		}
	}
}

func BenchmarkReply(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	var rtts [1024]time.Duration
	for i := range rtts {
		rtts[i] = clampNS(math.Exp(math.Log(20e6) + 0.3*rng.NormFloat64()))
	}
	var r Recorder
	for i, rtt := range rtts { // warm-up: create every bucket the loop will hit
		r.Reply(uint64(i), rtt)
	}
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		r.Reply(seq, rtts[seq%uint64(len(rtts))])
	}
}
