package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/rawsock"
)

// labEngine opens an engine of the given mode whose sockets live in ns.
func labEngine(t *testing.T, ns *netlab.NS, mode rawsock.Mode, f icmp.Family) *Engine {
	t.Helper()
	return labEngineSenders(t, ns, mode, f, 1)
}

// labEngineSenders is labEngine with Config.Senders.
func labEngineSenders(t *testing.T, ns *netlab.NS, mode rawsock.Mode, f icmp.Family, senders int) *Engine {
	t.Helper()
	e := New(&Config{Senders: senders, Socket: rawsock.Config{Mode: mode}})
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
	name   string
	mode   rawsock.Mode
	dst    netip.Addr
	router netip.Addr
}

func labCases(c *netlab.Chain) []labCase {
	var cs []labCase
	for _, m := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
		cs = append(cs,
			labCase{m.String() + "/IPv4", m, c.TargetAddr4, c.RouterAddr4[0]},
			labCase{m.String() + "/IPv6", m, c.TargetAddr6, c.RouterAddr6[0]})
	}
	return cs
}

// TestLabEngine: through a router, in both socket kinds and families, replies carry the
// decremented TTL and a TTL of 1 brings the router's time exceeded, matched to its probe.
func TestLabEngine(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(1)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	for _, tc := range labCases(c) {
		t.Run(tc.name, func(t *testing.T) {
			e := labEngine(t, c.Host, tc.mode, icmp.FamilyOf(tc.dst))
			ctx := context.Background()
			res, err := e.Send(ctx, Request{Dst: tc.dst, Size: 56, Timeout: 5 * time.Second})
			if err != nil || res.Outcome != Reply || res.From != tc.dst || res.TTL != 63 {
				t.Fatalf("reply: %+v, %v", res, err)
			}
			res, err = e.Send(ctx, Request{Dst: tc.dst, Size: 56, TTL: 1, Timeout: 5 * time.Second})
			var ie *ICMPErr
			if !errors.Is(err, ErrICMP) || !errors.As(err, &ie) || res.Outcome != ICMPError ||
				res.Kind != icmp.KindTimeExceeded || res.Code != 0 || res.From != tc.router || ie.From != tc.router {
				t.Fatalf("ttl 1: %+v, %v", res, err)
			}
			if res.RTT <= 0 || res.RTT > 5*time.Second {
				t.Errorf("error RTT %v", res.RTT)
			}
			s, err := e.Ping(ctx, tc.dst, &PingConfig{Count: 20, Interval: time.Millisecond, Timeout: 5 * time.Second})
			if err != nil || s.Sent != 20 || s.Received != 20 || s.Errors != 0 || s.Lost != 0 {
				t.Fatalf("ping: %+v, %v", s, err)
			}
			if c := e.Counters(); c.Foreign != 0 || c.Malformed != 0 || c.Late != 0 || c.BadChecksum != 0 {
				t.Errorf("counters %+v", c)
			}
		})
	}
}

// TestLabTimeoutAndClose: a silent target yields exactly one Timeout per probe and leaves
// nothing pending; Close reports every unanswered probe as Canceled exactly once.
func TestLabTimeoutAndClose(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Target.NoEchoReply(t)
	for _, m := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
		for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
			t.Run(m.String()+"/"+icmp.FamilyOf(dst).String(), func(t *testing.T) {
				e := labEngine(t, c.Host, m, icmp.FamilyOf(dst))
				var mu sync.Mutex
				got := map[uint64][]Result{}
				timedOut := make(chan Result, 1)
				collect := func(r Result) {
					mu.Lock()
					got[r.Seq] = append(got[r.Seq], r)
					mu.Unlock()
				}
				start := time.Now()
				first, err := e.Start(Request{Dst: dst, Timeout: 100 * time.Millisecond, OnResult: func(r Result) {
					collect(r)
					if r.Outcome == Timeout {
						timedOut <- r
					}
				}})
				if err != nil {
					t.Fatal(err)
				}
				select {
				case <-timedOut:
				case <-time.After(10 * time.Second):
					t.Fatal("no timeout from the silent target")
				}
				if d := time.Since(start); d < 100*time.Millisecond {
					t.Errorf("timed out after %v, before the 100ms timeout", d)
				}
				// The entry stays for its grace window, expired, to catch a late answer.
				e.mu.Lock()
				for _, h := range e.pending.handles() {
					ent := e.ent(h)
					if !ent.is(entryExpired) {
						t.Errorf("probe %d still pending after its timeout", ent.seq)
					}
				}
				e.mu.Unlock()

				const n = 10
				for range n {
					if _, err := e.Start(Request{Dst: dst, Timeout: time.Hour, OnResult: collect}); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(got) != n+1 {
					t.Fatalf("%d probes reported, want %d", len(got), n+1)
				}
				// The timed-out probe, still remembered for late answers, is not reported
				// again as Canceled by Close: one outcome per probe.
				for seq, rs := range got {
					want := Canceled
					if seq == first {
						want = Timeout
					}
					if len(rs) != 1 || rs[0].Outcome != want || want == Canceled && !errors.Is(rs[0].Error(), ErrClosed) {
						t.Errorf("probe %d: %+v, want one %v", seq, rs, want)
					}
				}
				if c := e.Counters(); c.Timeouts != 1 || c.Sent != n+1 {
					t.Errorf("counters %+v", c)
				}
			})
		}
	}
}

// TestLabCancel: a canceled probe is removed at once and is never reported.
func TestLabCancel(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Target.NoEchoReply(t)
	e := labEngine(t, c.Host, rawsock.Privileged, icmp.IPv4)
	called := make(chan Result, 1)
	seq, err := e.Start(Request{Dst: c.TargetAddr4, Timeout: 20 * time.Millisecond, OnResult: func(r Result) { called <- r }})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Cancel(c.TargetAddr4, seq) {
		t.Fatal("Cancel of a pending probe reported false")
	}
	if e.Cancel(c.TargetAddr4, seq) {
		t.Fatal("second Cancel reported true")
	}
	if n := e.pendingLen(); n != 0 {
		t.Fatalf("%d entries pending after Cancel", n)
	}
	// A later probe's timeout fires the shared timer; the canceled one must stay silent.
	if _, err := e.Send(context.Background(), Request{Dst: c.TargetAddr4, Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second probe: %v", err)
	}
	select {
	case r := <-called:
		t.Fatalf("canceled probe reported %+v", r)
	default:
	}
}

// TestLabFlowChecksum: on the wire, every IPv4 probe of a Flow carries that checksum, whether
// gping computed it (raw) or the kernel did after rewriting the identifier (datagram); an
// nftables counter in the target sees them all.
func TestLabFlowChecksum(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Target.Nft(t, `table ip gpingflow {
	counter flowck { }
	chain in {
		type filter hook input priority 0; policy accept;
		icmp type echo-request icmp checksum 0x5a5a counter name flowck
	}
}
`)
	count := func() string {
		out := c.Target.MustRun(t, "nft", "list", "counter", "ip", "gpingflow", "flowck")
		return regexp.MustCompile(`packets \d+`).FindString(out)
	}
	const n = 10
	sent := 0
	for _, mode := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
		e := labEngine(t, c.Host, mode, icmp.IPv4)
		for i := range n {
			res, err := e.Send(context.Background(), Request{Dst: c.TargetAddr4, Size: 40 + i, Flow: 0x5a5a, Timeout: 5 * time.Second})
			if err != nil || res.Outcome != Reply || res.Corrupted {
				t.Fatalf("%s probe %d: %+v %v", mode, i, res, err)
			}
		}
		sent += n
		if got, want := count(), fmt.Sprintf("packets %d", sent); got != want {
			t.Errorf("%s: nftables saw %q with the flow checksum, want %q", mode, got, want)
		}
	}
}

// TestLabStartBatch: one batch of both families with every kind of request (good, invalid,
// unroutable in the host, TTL 1) gives each the outcome Start would have, exactly once, with
// its Tag; the failures leave nothing pending.
func TestLabStartBatch(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(1)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	// Sends to these fail in the host, before any packet leaves.
	c.Host.MustRun(t, "ip", "route", "add", "unreachable", "198.19.255.0/24")
	c.Host.MustRun(t, "ip", "-6", "route", "add", "unreachable", "2001:db8:ffff::/48")
	unroutable := map[icmp.Family]netip.Addr{
		icmp.IPv4: netip.MustParseAddr("198.19.255.1"),
		icmp.IPv6: netip.MustParseAddr("2001:db8:ffff::1"),
	}
	for _, tc := range labCases(c) {
		t.Run(tc.name, func(t *testing.T) {
			f := icmp.FamilyOf(tc.dst)
			// Two senders: raw sockets get a send-only one beside them (each batch takes
			// either), datagram sockets none.
			e := labEngineSenders(t, c.Host, tc.mode, f, 2)
			if want := map[rawsock.Mode]int{rawsock.Privileged: 2, rawsock.Unprivileged: 1}[tc.mode]; e.senders(f) != want {
				t.Fatalf("%d senders, want %d", e.senders(f), want)
			}
			other := c.TargetAddr6
			if f == icmp.IPv6 {
				other = c.TargetAddr4
			}
			// Both sockets must live in the lab before the batch: a socket opened by the
			// batch itself would be opened in the host's namespace.
			if err := c.Host.Do(func() error { return e.Open(icmp.FamilyOf(other)) }); err != nil {
				t.Fatal(err)
			}
			results := make(chan Result, 32)
			onResult := func(r Result) { results <- r }
			type want struct {
				err     error
				outcome Outcome
				from    netip.Addr
			}
			reqs := []Request{
				{Dst: tc.dst, Size: 56},
				{Dst: tc.dst, Size: -1},
				{Dst: unroutable[f], Size: 56},
				{Dst: tc.dst, Size: 56, TTL: 1},
				{Dst: other, Size: 0},
				{},
				{Dst: tc.dst, Size: 1400},
				{Dst: other, Size: 56, TTL: 1},
			}
			wants := []want{
				{outcome: Reply, from: tc.dst},
				{err: ErrSize},
				{err: syscall.EHOSTUNREACH},
				{outcome: ICMPError, from: tc.router},
				{outcome: Reply, from: other},
				{err: ErrInvalidAddr},
				{outcome: Reply, from: tc.dst},
				{outcome: ICMPError, from: c.RouterAddr4[0]},
			}
			if f == icmp.IPv4 {
				wants[7].from = c.RouterAddr6[0]
			}
			for i := range reqs {
				reqs[i].Tag = uint64(1000 + i)
				reqs[i].Timeout = 5 * time.Second
				reqs[i].OnResult = onResult
			}
			// Twice: the senders take turns, so the second batch leaves by the other socket.
			for round := 1; round <= 2; round++ {
				seqs := make([]uint64, len(reqs))
				errs := make([]error, len(reqs))
				e.StartBatch(reqs, seqs, errs)
				expected := map[uint64]int{} // tag -> request
				for i, w := range wants {
					if w.err != nil {
						if !errors.Is(errs[i], w.err) || seqs[i] != 0 {
							t.Errorf("request %d: seq %d, error %v; want 0 and %v", i, seqs[i], errs[i], w.err)
						}
						continue
					}
					if errs[i] != nil || seqs[i] == 0 {
						t.Fatalf("request %d: seq %d, error %v; want a probe", i, seqs[i], errs[i])
					}
					expected[reqs[i].Tag] = i
				}
				for range len(expected) {
					var r Result
					select {
					case r = <-results:
					case <-time.After(10 * time.Second):
						t.Fatalf("outcomes missing; still expecting tags %v", expected)
					}
					i, ok := expected[r.Tag]
					if !ok {
						t.Fatalf("unexpected or repeated outcome %+v", r)
					}
					delete(expected, r.Tag)
					if w := wants[i]; r.Outcome != w.outcome || r.From != w.from || r.Seq != seqs[i] || r.Dst != reqs[i].Dst.Unmap() {
						t.Errorf("request %d: %v from %v seq %d to %v; want %v from %v seq %d", i, r.Outcome, r.From, r.Seq, r.Dst, w.outcome, w.from, seqs[i])
					}
					if r.Outcome == Reply && r.Size != 8+reqs[i].Size {
						t.Errorf("request %d: reply of %d bytes, want %d", i, r.Size, 8+reqs[i].Size)
					}
				}
				if n := e.pendingUnanswered(); n != 0 {
					t.Errorf("%d probes still unanswered", n)
				}
				if ct := e.Counters(); ct.Sent != 5*uint64(round) || ct.SendErrors != uint64(round) {
					t.Errorf("round %d: counters %+v, want %d sent and %d send errors", round, ct, 5*round, round)
				}
			}
		})
	}
}

// TestLabSendersPreferRaw: where ping sockets are allowed, Auto mode opens one, unless the
// engine has several senders, which only raw sockets can have.
func TestLabSendersPreferRaw(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NewNS("auto")
	ns.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	for _, tc := range []struct {
		senders int
		mode    rawsock.Mode
		want    int
	}{{1, rawsock.Unprivileged, 1}, {2, rawsock.Privileged, 2}} {
		e := New(&Config{Senders: tc.senders})
		if err := ns.Do(func() error { return e.Open(icmp.IPv4) }); err != nil {
			t.Fatal(err)
		}
		if got := e.Mode(icmp.IPv4); got != tc.mode || e.senders(icmp.IPv4) != tc.want {
			t.Errorf("Senders %d: %s socket with %d senders, want %s with %d", tc.senders, got, e.senders(icmp.IPv4), tc.mode, tc.want)
		}
		e.Close()
	}
}
