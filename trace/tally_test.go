package trace

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

// TestTally: counts, loss, RTT figures and addresses per TTL, checked against figures worked
// out by hand from the samples.
func TestTally(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.2")
	b := netip.MustParseAddr("198.18.9.2")
	dst := netip.MustParseAddr("198.18.3.2")
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	ok := func(from netip.Addr, rtt time.Duration) ProbeResult { return ProbeResult{From: from, RTT: rtt} }
	star := ProbeResult{Timeout: true}

	var tl Tally
	// Round 1 reaches dst at TTL 3; round 2 loses TTL 3's probe, so dst answers at TTL 4 too.
	tl.Add(Hop{TTL: 1, Probes: []ProbeResult{ok(a, ms(1))}})
	tl.Add(Hop{TTL: 2, Probes: []ProbeResult{star}})
	tl.Add(Hop{TTL: 3, Probes: []ProbeResult{ok(dst, ms(2))}})
	tl.Add(Hop{TTL: 1, Probes: []ProbeResult{ok(b, ms(3))}})
	tl.Add(Hop{TTL: 2, Probes: []ProbeResult{star}})
	tl.Add(Hop{TTL: 3, Probes: []ProbeResult{star}})
	tl.Add(Hop{TTL: 4, Probes: []ProbeResult{ok(dst, ms(4))}})
	tl.Add(Hop{TTL: 1, Probes: []ProbeResult{ok(a, ms(5)), {From: a, RTT: ms(2), Annotation: "!H"}}})
	tl.Add(Hop{TTL: 0, Probes: []ProbeResult{ok(a, ms(5))}}) // ignored
	tl.Add(Hop{TTL: 256, Probes: []ProbeResult{ok(a, ms(5))}})

	rows := tl.Hops(dst)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3 (ending at dst's first TTL): %+v", len(rows), rows)
	}
	// TTL 1: samples 1, 3, 5, 2 ms: mean 2.75, sample variance ((1.75)²+(0.25)²+(2.25)²+(0.75)²)/3.
	sd := math.Sqrt((1.75*1.75 + 0.25*0.25 + 2.25*2.25 + 0.75*0.75) / 3)
	r := rows[0]
	if r.TTL != 1 || r.Sent != 4 || r.Received != 4 || r.LossPercent() != 0 || r.Latest != a ||
		len(r.Addrs) != 2 || r.Addrs[0] != a || r.Addrs[1] != b ||
		r.Last != ms(2) || r.Avg != ms(2.75) || r.Best != ms(1) || r.Worst != ms(5) ||
		math.Abs(float64(r.StDev)-sd*float64(time.Millisecond)) > 1 {
		t.Errorf("TTL 1: %+v (want stdev %.6f ms)", r, sd)
	}
	r = rows[1]
	if r.TTL != 2 || r.Sent != 2 || r.Received != 0 || r.LossPercent() != 100 || r.Latest.IsValid() ||
		len(r.Addrs) != 0 || r.Avg != 0 || r.StDev != 0 {
		t.Errorf("TTL 2: %+v", r)
	}
	r = rows[2]
	if r.TTL != 3 || r.Sent != 2 || r.Received != 1 || r.LossPercent() != 50 || r.Latest != dst ||
		r.Last != ms(2) || r.Best != ms(2) || r.Worst != ms(2) || r.StDev != 0 {
		t.Errorf("TTL 3: %+v", r)
	}
	// Without a destination to stop at, every TTL added is a row.
	if rows := tl.Hops(netip.Addr{}); len(rows) != 4 || rows[3].TTL != 4 || rows[3].Received != 1 {
		t.Errorf("all rows: %+v", rows)
	}
}

// TestTallyAddrsBounded: a hop answered from ever new addresses keeps MaxAddrs of them.
func TestTallyAddrsBounded(t *testing.T) {
	var tl Tally
	for i := range 1000 {
		from := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		tl.Add(Hop{TTL: 1, Probes: []ProbeResult{{From: from, RTT: time.Millisecond}}})
	}
	r := tl.Hops(netip.Addr{})[0]
	if r.Sent != 1000 || len(r.Addrs) != MaxAddrs || r.Latest != netip.AddrFrom4([4]byte{198, 18, 3, 231}) {
		t.Errorf("%d sent, %d addrs, latest %v", r.Sent, len(r.Addrs), r.Latest)
	}
}
