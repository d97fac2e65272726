package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/internal/responder"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

// labEngine opens an engine of the given mode whose socket lives in ns.
func labEngine(t *testing.T, ns *netlab.NS, mode rawsock.Mode, f icmp.Family) *probe.Engine {
	t.Helper()
	e := probe.New(&probe.Config{Socket: rawsock.Config{Mode: mode}})
	if err := ns.Do(func() error { return e.Open(f) }); err != nil {
		t.Fatalf("open %s %s socket in %s: %v", mode, f, ns.Name(), err)
	}
	if got := e.Mode(f); got != mode {
		t.Fatalf("opened %s, want %s", got, mode)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type labCase struct {
	name    string
	mode    rawsock.Mode
	dst     netip.Addr
	routers []netip.Addr
}

func labCases(c *netlab.Chain) []labCase {
	var cs []labCase
	for _, m := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
		cs = append(cs,
			labCase{m.String() + "/IPv4", m, c.TargetAddr4, c.RouterAddr4},
			labCase{m.String() + "/IPv6", m, c.TargetAddr6, c.RouterAddr6})
	}
	return cs
}

// recorder keeps what onHop was given, and when.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	hops  []Hop
	at    []time.Duration
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) onHop(h Hop) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hops = append(r.hops, h)
	r.at = append(r.at, time.Since(r.start))
}

// trace runs Run with a bound on its time and checks what every run must satisfy: onHop saw
// exactly the hops of the Result, in TTL order from First, each with Queries probes.
func trace(t *testing.T, e Prober, dst netip.Addr, cfg *Config) (Result, *recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	res, err := Run(ctx, e, dst, cfg, rec.onHop)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	c, _ := cfg.withDefaults()
	if len(rec.hops) != len(res.Hops) {
		t.Fatalf("onHop saw %d hops, Result has %d", len(rec.hops), len(res.Hops))
	}
	for i, h := range rec.hops {
		if h.TTL != c.First+i || res.Hops[i].TTL != h.TTL || len(h.Probes) != c.Queries {
			t.Fatalf("hop %d: TTL %d (result %d), %d probes", i, h.TTL, res.Hops[i].TTL, len(h.Probes))
		}
	}
	return res, rec
}

// dump shows hops in failure messages.
func dump(hops []Hop) string {
	var b strings.Builder
	for _, h := range hops {
		fmt.Fprintf(&b, "%2d", h.TTL)
		for _, p := range h.Probes {
			if p.Timeout {
				b.WriteString("  *")
				continue
			}
			fmt.Fprintf(&b, "  %s %v %s", p.From, p.RTT, p.Annotation)
			if p.MTU > 0 {
				fmt.Fprintf(&b, " F=%d", p.MTU)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// hopsTo is the path through routers to dst, in a slice of its own.
func hopsTo(routers []netip.Addr, dst netip.Addr) []netip.Addr {
	return append(append([]netip.Addr(nil), routers...), dst)
}

// rateLimitedChain is a chain of n routers that limit their ICMP errors as the kernel does by
// default.
func rateLimitedChain(t *testing.T, lab *netlab.Lab, n int) *netlab.Chain {
	t.Helper()
	c := lab.Chain(n)
	for _, r := range c.Routers {
		r.RateLimitICMPErrors(t)
	}
	return c
}

// wantPath checks that every probe of hop i+1 was answered by want[i] with no mark, and that
// the trace reached the destination at the last of them.
func wantPath(t *testing.T, res Result, want []netip.Addr) {
	t.Helper()
	if len(res.Hops) != len(want) || !res.Reached {
		t.Fatalf("%d hops (reached %v), want %d:\n%s", len(res.Hops), res.Reached, len(want), dump(res.Hops))
	}
	for i, h := range res.Hops {
		for _, p := range h.Probes {
			if p.Timeout || p.From != want[i] || p.Annotation != "" || p.RTT <= 0 || p.RTT > time.Second {
				t.Fatalf("hop %d: %+v, want an answer from %s (sent %d, retries %d):\n%s", h.TTL, p, want[i], res.Sent, res.Retries, dump(res.Hops))
			}
		}
	}
}

// TestLabChain: chains of 3 and 10 routers, both families, both socket kinds: exactly N+1
// hops in order, each router at its TTL, the target last.
func TestLabChain(t *testing.T) {
	lab := netlab.New(t)
	for _, n := range []int{3, 10} {
		c := lab.Chain(n)
		c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
		for _, tc := range labCases(c) {
			t.Run(fmt.Sprintf("%d/%s", n, tc.name), func(t *testing.T) {
				e := labEngine(t, c.Host, tc.mode, icmp.FamilyOf(tc.dst))
				res, _ := trace(t, e, tc.dst, nil)
				wantPath(t, res, hopsTo(tc.routers, tc.dst))
				// A first TTL past the path's start skips those hops and keeps TTL numbering.
				res, _ = trace(t, e, tc.dst, &Config{First: 3, Queries: 1})
				wantPath(t, res, hopsTo(tc.routers[2:], tc.dst))
				if res.Hops[0].TTL != 3 {
					t.Errorf("first hop reported has TTL %d, want 3", res.Hops[0].TTL)
				}
			})
		}
	}
}

// TestLabMaxTTL: a destination beyond Max is not reached; every hop up to Max is reported.
// Sends are spaced as SendWait and Gap say.
func TestLabMaxTTL(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(4)
	e := labEngine(t, c.Host, rawsock.Privileged, icmp.IPv4)
	res, _ := trace(t, e, c.TargetAddr4, &Config{Max: 3, Queries: 2})
	if res.Reached || len(res.Hops) != 3 {
		t.Fatalf("reached %v with %d hops:\n%s", res.Reached, len(res.Hops), dump(res.Hops))
	}
	for i, h := range res.Hops {
		for _, p := range h.Probes {
			if p.From != c.RouterAddr4[i] {
				t.Errorf("hop %d: %+v, want %s", h.TTL, p, c.RouterAddr4[i])
			}
		}
	}
	// SendWait spaces every probe; Gap spaces the queries of one hop.
	for _, cfg := range []*Config{
		{Max: 3, Queries: 2, SendWait: 20 * time.Millisecond},
		{Max: 1, Queries: 3, Gap: 50 * time.Millisecond},
	} {
		start := time.Now()
		res, _ := trace(t, e, c.TargetAddr4, cfg)
		least := time.Duration(res.Sent-1) * cfg.SendWait
		if cfg.Gap > 0 {
			least = time.Duration(cfg.Queries-1) * cfg.Gap
		}
		if d := time.Since(start); res.Sent != cfg.Max*cfg.Queries || d < least || d > least+time.Second {
			t.Errorf("%+v: %d probes in %v, want %d in at least %v", cfg, res.Sent, d, cfg.Max*cfg.Queries, least)
		}
	}
}

// TestLabSilentRouter: a router that sends no Time Exceeded gives "*" at its hop only and the
// trace goes on past it. With the default waits the silent hop is given up after its Near
// wait, without retries, so the trace ends well within a second of the destination's answer
// (the default Wait being 5 s); the hop before it is streamed at once.
func TestLabSilentRouter(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(4)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].NoTimeExceeded(t)
	for _, tc := range labCases(c) {
		t.Run(tc.name, func(t *testing.T) {
			e := labEngine(t, c.Host, tc.mode, icmp.FamilyOf(tc.dst))
			start := time.Now()
			res, rec := trace(t, e, tc.dst, nil)
			took := time.Since(start)
			wantSilentHop(t, res, hopsTo(tc.routers, tc.dst), 2)
			if took > time.Second {
				t.Errorf("took %v: the silent hop waited for more than its Near wait", took)
			}
			if rec.at[1] < minNearWait {
				t.Errorf("silent hop reported after %v, before its Near wait of %v", rec.at[1], minNearWait)
			}
			if rec.at[0] > minNearWait {
				t.Errorf("hop 1 reported after %v: not streamed ahead of the silent hop", rec.at[0])
			}
			if res.Retries != 0 {
				t.Errorf("%d retries to a silent router", res.Retries)
			}
		})
	}
}

// wantSilentHop checks that hop silent (1-based) is all "*" and every other hop is answered by
// want[i] on every probe, and that the destination was reached.
func wantSilentHop(t *testing.T, res Result, want []netip.Addr, silent int) {
	t.Helper()
	if len(res.Hops) != len(want) || !res.Reached {
		t.Fatalf("%d hops, reached %v:\n%s", len(res.Hops), res.Reached, dump(res.Hops))
	}
	for i, h := range res.Hops {
		for _, p := range h.Probes {
			if i == silent-1 && (!p.Timeout || p.From.IsValid()) || i != silent-1 && (p.Timeout || p.From != want[i]) {
				t.Fatalf("hop %d: %+v, want %s (silent hop %d):\n%s", h.TTL, p, want[i], silent, dump(res.Hops))
			}
		}
	}
}

// TestLabSilentRouterNoFactors: with Here and Near off, a silent hop waits its whole Wait,
// each query retried once, retries of the hop spaced by RetryAfter.
func TestLabSilentRouterNoFactors(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(4)
	c.Routers[1].NoTimeExceeded(t)
	const wait = 1500 * time.Millisecond
	for _, tc := range labCases(c)[:2] {
		t.Run(tc.name, func(t *testing.T) {
			e := labEngine(t, c.Host, tc.mode, icmp.FamilyOf(tc.dst))
			res, rec := trace(t, e, tc.dst, &Config{Wait: wait, RetryAfter: 500 * time.Millisecond,
				Here: NoFactor, Near: NoFactor})
			wantSilentHop(t, res, hopsTo(tc.routers, tc.dst), 2)
			if rec.at[1] < wait-50*time.Millisecond {
				t.Errorf("silent hop reported after %v, before its wait of %v", rec.at[1], wait)
			}
			// Two retries fit in the wait, the third would come as the wait ends.
			if res.Retries != 2 {
				t.Errorf("%d retries, want 2", res.Retries)
			}
		})
	}
}

// TestLabStop: a trace ends early, promptly and with the hops so far, when its context ends or
// its engine is closed while probes wait on a silent router.
func TestLabStop(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Routers[1].NoTimeExceeded(t)
	for _, stop := range []string{"context", "close"} {
		t.Run(stop, func(t *testing.T) {
			e := labEngine(t, c.Host, rawsock.Privileged, icmp.IPv4)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			res, err := Run(ctx, e, c.TargetAddr4, nil, func(h Hop) {
				if stop == "context" {
					cancel()
				} else {
					e.Close()
				}
			})
			want := context.Canceled
			if stop == "close" {
				want = probe.ErrClosed
			}
			if !errors.Is(err, want) || len(res.Hops) != 1 || res.Reached {
				t.Fatalf("%+v, %v; want hop 1 only and %v", res, err, want)
			}
			if d := time.Since(start); d > DefaultWait/2 {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestLabAdminProhibited: a router refusing to forward to the target ends the trace with "!X"
// at the first TTL that reaches its forwarding check; the target is not reached.
func TestLabAdminProhibited(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr4, 32))
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr6, 128))
	for _, tc := range labCases(c) {
		t.Run(tc.name, func(t *testing.T) {
			e := labEngine(t, c.Host, tc.mode, icmp.FamilyOf(tc.dst))
			res, _ := trace(t, e, tc.dst, nil)
			// TTL 2 expires at router 2 before its forward filter sees it; TTL 3 is rejected.
			if len(res.Hops) != 3 || res.Reached {
				t.Fatalf("%d hops, reached %v:\n%s", len(res.Hops), res.Reached, dump(res.Hops))
			}
			for i, h := range res.Hops {
				want, mark := tc.routers[i], ""
				if i == 2 {
					want, mark = tc.routers[1], "!X"
				}
				for _, p := range h.Probes {
					if p.Timeout || p.From != want || p.Annotation != mark {
						t.Errorf("hop %d: %+v, want %s %q", h.TTL, p, want, mark)
					}
				}
			}
		})
	}
}

// TestLabRateLimit: with the kernel's default ICMP error rate limits on every router, traces
// run back to back exhaust each router's burst of 6; retries still get every hop answered.
func TestLabRateLimit(t *testing.T) {
	lab := netlab.New(t)
	c := rateLimitedChain(t, lab, 10)
	for _, tc := range labCases(c)[:2] {
		t.Run(tc.name, func(t *testing.T) {
			e := labEngine(t, c.Host, tc.mode, icmp.FamilyOf(tc.dst))
			want := hopsTo(tc.routers, tc.dst)
			start := time.Now()
			retries := 0
			for range 3 {
				res, _ := trace(t, e, tc.dst, &Config{Queries: 3})
				wantPath(t, res, want)
				retries += res.Retries
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("three traces took %v", d)
			}
			// Nine Time Exceeded from each router within moments: past the burst of six, only
			// retries spaced by the kernel's refill interval can have got the last ones through.
			if retries == 0 {
				t.Errorf("no retries: the rate limit did not bite")
			}
		})
	}
}

// TestLabRateLimitQueries: -q 10 against the kernel's default rate limits: each router's burst
// of 6 answers six queries at once, the Here wait must not cut the other four short, and their
// retries, one per router token, get every one answered within the 5 s Wait.
func TestLabRateLimitQueries(t *testing.T) {
	lab := netlab.New(t)
	c := rateLimitedChain(t, lab, 10)
	e := labEngine(t, c.Host, rawsock.Privileged, icmp.IPv4)
	start := time.Now()
	res, _ := trace(t, e, c.TargetAddr4, &Config{Queries: 10})
	wantPath(t, res, hopsTo(c.RouterAddr4, c.TargetAddr4))
	if d := time.Since(start); d > DefaultWait {
		t.Errorf("took %v", d)
	}
	if res.Retries == 0 {
		t.Errorf("no retries: the rate limit did not bite")
	}
}

// TestLabRateLimitSilentRouter: a silent router among rate-limited ones whose token buckets
// earlier traces have emptied: the other routers still get every retry they need (no false
// "*"), and the silent hop is "*".
func TestLabRateLimitSilentRouter(t *testing.T) {
	lab := netlab.New(t)
	c := rateLimitedChain(t, lab, 6)
	c.Routers[2].NoTimeExceeded(t)
	e := labEngine(t, c.Host, rawsock.Privileged, icmp.IPv4)
	want := hopsTo(c.RouterAddr4, c.TargetAddr4)
	retries := 0
	for range 3 {
		res, _ := trace(t, e, c.TargetAddr4, &Config{Queries: 3})
		wantSilentHop(t, res, want, 3)
		retries += res.Retries
	}
	if retries == 0 {
		t.Errorf("no retries: the rate limit did not bite")
	}
}

// TestLabParisFlow: every probe of a trace, at every TTL and retry, carries the trace's ICMP
// checksum (counted on the wire by nftables at the first router, which sees them all), and
// Classic lets it vary.
func TestLabParisFlow(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[0].Nft(t, `table ip gpingparis {
	counter flowck { }
	chain pre {
		type filter hook prerouting priority 0; policy accept;
		icmp type echo-request icmp checksum 0x6b6b counter name flowck
	}
}
`)
	count := func() int {
		out := c.Routers[0].MustRun(t, "nft", "list", "counter", "ip", "gpingparis", "flowck")
		var n int
		fmt.Sscanf(out[strings.Index(out, "packets"):], "packets %d", &n)
		return n
	}
	before := 0
	for _, mode := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
		e := labEngine(t, c.Host, mode, icmp.IPv4)
		res, _ := trace(t, e, c.TargetAddr4, &Config{Flow: 0x6b6b})
		wantPath(t, res, hopsTo(c.RouterAddr4, c.TargetAddr4))
		if got := count() - before; got != res.Sent || got == 0 {
			t.Errorf("%s: %d probes on the wire with the flow's checksum, %d sent", mode, got, res.Sent)
		}
		before = count()
		res, _ = trace(t, e, c.TargetAddr4, &Config{Flow: 0x6b6b, Classic: true})
		if got := count() - before; got > 1 {
			t.Errorf("%s classic: %d of %d probes carried one checksum", mode, got, res.Sent)
		}
		before = count()
	}
}

// mplsExtension builds an RFC 4884 extension structure holding one RFC 4950 MPLS label stack.
func mplsExtension(labels ...icmp.MPLSLabel) []byte {
	obj := []byte{0, byte(4 + 4*len(labels)), 1, 1} // length, class 1 (MPLS stack), c-type 1
	for _, l := range labels {
		v := l.Label<<12 | uint32(l.TC&7)<<9 | uint32(l.TTL)
		if l.S {
			v |= 1 << 8
		}
		obj = binary.BigEndian.AppendUint32(obj, v)
	}
	ext := append([]byte{0x20, 0, 0, 0}, obj...) // version 2
	binary.BigEndian.PutUint16(ext[2:], icmp.Checksum(ext))
	return ext
}

// TestLabMPLSExtensions: a time exceeded carrying an RFC 4950 label stack and an RFC 5837
// interface object (sent by the responder, as an MPLS router would) reaches the hop's result, for both families on raw
// sockets, where the whole ICMP message is seen.
func TestLabMPLSExtensions(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	want := []icmp.MPLSLabel{{Label: 24006, TC: 0, S: false, TTL: 1}, {Label: 299776, TC: 5, S: true, TTL: 1}}
	ext := mplsExtension(want...)
	// An RFC 5837 object after the label stack: the incoming interface by index, IPv4
	// address, name and MTU (c-type role 0 | 0x0f).
	iio := []byte{0, 0, 2, 0x0f, 0, 0, 0, 7, 0, 1, 0, 0, 198, 18, 0, 2, 8, 'e', 't', 'h', '0', 0, 0, 0, 0, 0, 0x05, 0xdc}
	iio[1] = byte(len(iio))
	ext = append(ext, iio...)
	binary.BigEndian.PutUint16(ext[2:], 0)
	binary.BigEndian.PutUint16(ext[2:], icmp.Checksum(ext))
	wantIf := icmp.InterfaceInfo{IfIndex: 7, HasIfIndex: true, Addr: netip.MustParseAddr("198.18.0.2"), Name: "eth0", MTU: 1500, HasMTU: true}
	responder.MustStart(t, c.Target, &responder.Config{Script: func(_ int, req *responder.Request) []responder.Action {
		if req.TTL == 1 {
			return []responder.Action{{Kind: responder.KindTimeExceeded, Quote: responder.QuoteLong, Extensions: ext}}
		}
		return []responder.Action{responder.Normal()}
	}})
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		e := labEngine(t, c.Host, rawsock.Privileged, icmp.FamilyOf(dst))
		res, _ := trace(t, e, dst, &Config{Queries: 1})
		if len(res.Hops) != 2 || !res.Reached {
			t.Fatalf("%v: %+v", dst, res)
		}
		got := res.Hops[0].Probes[0].MPLS
		if !slices.Equal(got, want) {
			t.Errorf("%v: hop 1 MPLS %+v, want %+v", dst, got, want)
		}
		if got := res.Hops[0].Probes[0].Interfaces; len(got) != 1 || got[0] != wantIf {
			t.Errorf("%v: hop 1 interfaces %+v, want %+v", dst, got, wantIf)
		}
		if res.Hops[1].Probes[0].MPLS != nil {
			t.Errorf("%v: the echo reply has labels %+v", dst, res.Hops[1].Probes[0].MPLS)
		}
	}
}
