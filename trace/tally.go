package trace

import (
	"math"
	"net/netip"
	"time"

	"github.com/gping/gping/stats"
)

// MaxAddrs is how many distinct answering addresses Tally keeps per hop (mtr's MAXPATH).
const MaxAddrs = 8

// Tally sums up the hops of repeated traces of one path, per TTL: the queries sent and
// answered, the RTT figures of the answers, and the addresses that answered. Its memory is
// bounded by MaxTTL hops of MaxAddrs addresses and a stats.Recorder each, however many traces
// are added. The zero value is ready to use. Not safe for concurrent use: one goroutine owns
// it.
type Tally struct {
	hops []hopTally // index TTL-1, grown to the highest TTL added
}

type hopTally struct {
	rec    stats.Recorder
	seq    uint64
	last   time.Duration
	latest netip.Addr
	addrs  []netip.Addr
}

// HopSummary is one row of a Tally: mtr's Snt, Loss%, Last, Avg, Best, Wrst and StDev for
// one TTL. It is a plain value.
type HopSummary struct {
	TTL            int
	Sent, Received uint64
	// Latest is the address that answered last; Addrs are every address that answered,
	// first seen first, at most MaxAddrs. Both are empty when nothing answered.
	Latest netip.Addr
	Addrs  []netip.Addr
	// Last is the RTT of the last answer; Avg, Best and Worst are the mean, least and
	// greatest RTT; StDev is their sample standard deviation, as mtr computes it (0 for
	// fewer than two answers).
	Last, Avg, Best, Worst, StDev time.Duration
}

// LossPercent is mtr's Loss%: the share of queries sent that got no answer, in percent.
func (s HopSummary) LossPercent() float64 {
	if s.Sent == 0 || s.Received >= s.Sent {
		return 0
	}
	return float64(s.Sent-s.Received) * 100 / float64(s.Sent)
}

// Add counts the queries of one hop of a trace: every probe is a query sent, every probe that
// is not a timeout an answer, whatever its annotation. A hop with a TTL out of 1..MaxTTL is
// ignored.
func (t *Tally) Add(h Hop) {
	if h.TTL < 1 || h.TTL > MaxTTL {
		return
	}
	for len(t.hops) < h.TTL {
		t.hops = append(t.hops, hopTally{})
	}
	ht := &t.hops[h.TTL-1]
	for _, p := range h.Probes {
		ht.rec.Sent()
		ht.seq++
		if p.Timeout {
			ht.rec.Lost()
			continue
		}
		ht.rec.Reply(ht.seq, p.RTT)
		ht.last = max(p.RTT, 0)
		ht.latest = p.From
		known := false
		for _, a := range ht.addrs {
			known = known || a == p.From
		}
		if !known && len(ht.addrs) < MaxAddrs {
			ht.addrs = append(ht.addrs, p.From)
		}
	}
}

// Hops returns one row per TTL from the lowest to the highest added, ending, as mtr's report
// does, at the first TTL where dst answered: a round whose probe to the destination's TTL
// was lost has the destination answer at the next TTL too, which is not a hop of the path.
func (t *Tally) Hops(dst netip.Addr) []HopSummary {
	var out []HopSummary
	for i := range t.hops {
		ht := &t.hops[i]
		s := ht.rec.Summary()
		if s.Sent == 0 {
			if len(out) > 0 {
				out = append(out, HopSummary{TTL: i + 1})
			}
			continue
		}
		row := HopSummary{
			TTL: i + 1, Sent: s.Sent, Received: s.Received,
			Latest: ht.latest, Addrs: append([]netip.Addr(nil), ht.addrs...),
			Last: ht.last, Avg: s.Avg, Best: s.Min, Worst: s.Max,
		}
		if n := s.Received; n > 1 {
			// stats gives the population deviation; mtr divides by n-1.
			row.StDev = time.Duration(math.Round(float64(s.MDev) * math.Sqrt(float64(n)/float64(n-1))))
		}
		out = append(out, row)
		for _, a := range ht.addrs {
			if dst.IsValid() && a == dst.Unmap() {
				return out
			}
		}
	}
	return out
}
