package probe_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/internal/responder"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

// The accounting suite: the engine in the lab's Host namespace probes a scripted, misbehaving
// responder in the Target namespace (internal/responder), whose log is the ground truth of what
// was sent. Every probe must end in exactly one class, and every stray packet must land in the
// counter the engine documents for it.

const (
	probeSize   = 56 // payload of the probes a script misbehaves on
	barrierSize = 40 // payload of barrier probes, which the scripts always answer normally
)

// Alternative addresses of the target, the sources of WrongSource answers.
var (
	alt4 = netip.MustParseAddr("198.18.200.2")
	alt6 = netip.MustParseAddr("2001:db8:200::2")
)

// respLab is a Host -- Target chain whose Host admits datagram sockets and whose Target owns the
// alternative addresses.
func respLab(t *testing.T) *netlab.Chain {
	t.Helper()
	c := netlab.New(t).Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Target.MustRun(t, "ip", "addr", "add", alt4.String()+"/32", "dev", "lo")
	c.Target.MustRun(t, "ip", "addr", "add", alt6.String()+"/128", "dev", "lo", "nodad")
	return c
}

// startResponder runs script on probes of probeSize bytes and answers every other request
// (barriers) normally.
func startResponder(t *testing.T, c *netlab.Chain, script responder.Script) *responder.Responder {
	t.Helper()
	return responder.MustStart(t, c.Target, &responder.Config{
		AltSource4: alt4, AltSource6: alt6,
		Script: func(n int, req *responder.Request) []responder.Action {
			if req.Len != probeSize || script == nil {
				return []responder.Action{responder.Normal()}
			}
			return script(n, req)
		},
	})
}

// hostEngine opens an engine of the given mode whose socket for f lives in the Host namespace.
func hostEngine(t *testing.T, c *netlab.Chain, mode rawsock.Mode, f icmp.Family) *probe.Engine {
	t.Helper()
	e := probe.New(&probe.Config{Socket: rawsock.Config{Mode: mode}})
	if err := c.Host.Do(func() error { return e.Open(f) }); err != nil {
		t.Fatalf("open %s %s socket: %v", mode, f, err)
	}
	if got := e.Mode(f); got != mode {
		t.Fatalf("opened %s, want %s", got, mode)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// collector records every outcome of every probe, and signals each probe's first outcome.
type collector struct {
	mu      sync.Mutex
	results map[uint64][]probe.Result
	late    map[uint64][]probe.Result
	order   []uint64 // probes in the order of their first outcome
	final   chan uint64
	any     chan struct{} // a token after every outcome, for waitOutcomes
}

func newCollector(n int) *collector {
	// Room for more than n first outcomes: should the engine wrongly report a probe twice, the
	// test sees it instead of blocking the engine's reader.
	return &collector{results: map[uint64][]probe.Result{}, late: map[uint64][]probe.Result{}, final: make(chan uint64, 4*n+4), any: make(chan struct{}, 1)}
}

func (c *collector) onResult(r probe.Result) {
	c.mu.Lock()
	if r.Outcome == probe.Late {
		// Late answers come after the probe ended; checkResults looks at them apart.
		c.late[r.Seq] = append(c.late[r.Seq], r)
		c.mu.Unlock()
		return
	}
	c.results[r.Seq] = append(c.results[r.Seq], r)
	select {
	case c.any <- struct{}{}:
	default:
	}
	first := r.Outcome != probe.Duplicate
	if first {
		c.order = append(c.order, r.Seq)
	}
	c.mu.Unlock()
	if first {
		select {
		case c.final <- r.Seq:
		default:
		}
	}
}

// exchange sends n probes of probeSize bytes to dst back to back and waits until each has had its
// first outcome and every delayed answer of the responder is on the wire. A barrier probe then
// flushes the path: the engine's one reader handles packets in arrival order, so once the
// barrier's reply is in, every earlier answer has been counted.
func exchange(t *testing.T, e *probe.Engine, r *responder.Responder, dst netip.Addr, n int, timeout time.Duration) (seqs []uint64, col *collector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	col = newCollector(n)
	for range n {
		seq, err := e.Start(probe.Request{Dst: dst, Size: probeSize, Timeout: timeout, OnResult: col.onResult})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	for range n {
		select {
		case <-col.final:
		case <-ctx.Done():
			t.Fatalf("only some of %d probes ended: %v", n, ctx.Err())
		}
	}
	if err := r.WaitDelayed(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Send(ctx, probe.Request{Dst: dst, Size: barrierSize, Timeout: 5 * time.Second}); err != nil || res.Outcome != probe.Reply {
		t.Fatalf("barrier probe: %+v, %v", res, err)
	}
	return seqs, col
}

// waitOutcomes waits, boundedly and without polling, until every probe has at least want
// outcomes (its answer and duplicates). The barrier probe orders the normal receive queue, but
// a datagram socket's errors wait on another queue that the engine may read after it.
func (c *collector) waitOutcomes(t *testing.T, seqs []uint64, want int) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		done := true
		for _, seq := range seqs {
			if len(c.results[seq]) < want {
				done = false
			}
		}
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-c.any:
		case <-timeout.C:
			return // checkResults reports what is missing
		}
	}
}

// modes are the socket kinds and families of the matrix.
type modeCase struct {
	mode rawsock.Mode
	fam  icmp.Family
}

func (m modeCase) String() string { return m.mode.String() + "/" + m.fam.String() }

var modeCases = []modeCase{
	{rawsock.Privileged, icmp.IPv4}, {rawsock.Unprivileged, icmp.IPv4},
	{rawsock.Privileged, icmp.IPv6}, {rawsock.Unprivileged, icmp.IPv6},
}

func target(c *netlab.Chain, f icmp.Family) netip.Addr {
	if f == icmp.IPv6 {
		return c.TargetAddr6
	}
	return c.TargetAddr4
}

// expect is what each probe of a behaviour ends in, and the engine counters that follow.
type expect struct {
	outcome    probe.Outcome
	dups       int  // Duplicate results per probe
	corrupted  bool // on the Reply
	kind       icmp.Kind
	typ, code  uint8
	late       int // per probe
	foreign    int
	badChecksm int
	skip       string
}

// shiftSeq64 makes an echoed payload claim the probe 65536 before it, which had the same 16-bit
// ICMP sequence: the reply of an old probe after the sequence wrapped.
func shiftSeq64(p []byte) {
	if len(p) >= icmp.PayloadHeaderLen {
		binary.BigEndian.PutUint64(p[8:], binary.BigEndian.Uint64(p[8:])-1<<16)
	}
}

func errType(f icmp.Family, v4, v6 uint8) uint8 {
	if f == icmp.IPv6 {
		return v6
	}
	return v4
}

// TestResponderAccounting runs each misbehaviour against both socket kinds and families.
func TestResponderAccounting(t *testing.T) {
	c := respLab(t)
	const n = 6
	loss := 150 * time.Millisecond
	cases := []struct {
		name    string
		script  responder.Script
		timeout time.Duration
		want    func(m modeCase) expect
	}{
		{"normal", responder.Always(responder.Normal()), time.Second,
			func(modeCase) expect { return expect{outcome: probe.Reply} }},
		{"duplicate", responder.Always(responder.Duplicate(2)), time.Second,
			func(modeCase) expect { return expect{outcome: probe.Reply, dups: 2} }},
		{"drop", responder.Always(responder.Drop()), loss,
			func(modeCase) expect { return expect{outcome: probe.Timeout} }},
		{"late", responder.Always(responder.Delay(400 * time.Millisecond)), loss,
			func(modeCase) expect { return expect{outcome: probe.Timeout, late: 1} }},
		{"late duplicate", responder.Always(responder.Normal(), responder.Delay(400*time.Millisecond)), loss,
			func(modeCase) expect { return expect{outcome: probe.Reply, late: 1} }},
		{"reorder", func(n int, _ *responder.Request) []responder.Action {
			if n%2 == 0 {
				return []responder.Action{responder.Reorder()}
			}
			return []responder.Action{responder.Normal()}
		}, time.Second, func(modeCase) expect { return expect{outcome: probe.Reply} }},
		{"corrupt payload", responder.Always(responder.CorruptPayload()), time.Second,
			func(modeCase) expect { return expect{outcome: probe.Reply, corrupted: true} }},
		{"truncate", responder.Always(responder.Truncate(10)), time.Second,
			func(modeCase) expect { return expect{outcome: probe.Reply, corrupted: true} }},
		{"truncate into header", responder.Always(responder.Truncate(probeSize - 4)), time.Second,
			func(modeCase) expect { return expect{outcome: probe.Reply, corrupted: true} }},
		// A wrong-source reply carries our token but matches no probe to its source: Late.
		{"wrong source", responder.Always(responder.WrongSource()), loss,
			func(modeCase) expect { return expect{outcome: probe.Timeout, late: 1} }},
		{"bad checksum", responder.Always(responder.BadChecksum()), loss, func(m modeCase) expect {
			switch {
			case m.fam == icmp.IPv6:
				return expect{skip: "the kernel computes ICMPv6 checksums of raw sockets"}
			case m.mode == rawsock.Unprivileged:
				return expect{outcome: probe.Timeout} // the kernel drops it before the socket
			}
			return expect{outcome: probe.Timeout, badChecksm: 1}
		}},
		{"foreign id", responder.Always(responder.ForeignID()), loss, func(m modeCase) expect {
			if m.mode == rawsock.Unprivileged {
				return expect{outcome: probe.Timeout} // no socket has that ident: dropped
			}
			return expect{outcome: probe.Timeout, foreign: 1}
		}},
		{"wrapped sequence", responder.Always(responder.Action{Rewrite: shiftSeq64}, responder.Normal()), time.Second,
			func(modeCase) expect { return expect{outcome: probe.Reply, late: 1} }},
		{"time exceeded short quote", responder.Always(responder.TimeExceeded(responder.QuoteShort)), time.Second,
			func(m modeCase) expect {
				return expect{outcome: probe.ICMPError, kind: icmp.KindTimeExceeded, typ: errType(m.fam, 11, 3)}
			}},
		{"time exceeded long quote", responder.Always(responder.TimeExceeded(responder.QuoteLong)), time.Second,
			func(m modeCase) expect {
				return expect{outcome: probe.ICMPError, kind: icmp.KindTimeExceeded, typ: errType(m.fam, 11, 3)}
			}},
		{"unreachable options quote", func(_ int, req *responder.Request) []responder.Action {
			return []responder.Action{responder.Unreachable(errType(req.Family, 13, 1), responder.QuoteOptions)}
		}, time.Second, func(m modeCase) expect {
			return expect{outcome: probe.ICMPError, kind: icmp.KindDestinationUnreachable, typ: errType(m.fam, 3, 1), code: errType(m.fam, 13, 1)}
		}},
		{"duplicated error", responder.Always(responder.Action{Kind: responder.KindTimeExceeded, Copies: 1}), time.Second,
			func(m modeCase) expect {
				return expect{outcome: probe.ICMPError, dups: 1, kind: icmp.KindTimeExceeded, typ: errType(m.fam, 11, 3)}
			}},
	}
	for _, tc := range cases {
		for _, m := range modeCases {
			t.Run(tc.name+"/"+m.String(), func(t *testing.T) {
				w := tc.want(m)
				if w.skip != "" {
					t.Skip(w.skip)
				}
				r := startResponder(t, c, tc.script)
				e := hostEngine(t, c, m.mode, m.fam)
				dst := target(c, m.fam)
				seqs, col := exchange(t, e, r, dst, n, tc.timeout)
				col.waitOutcomes(t, seqs, 1+w.dups)
				checkResults(t, seqs, col, w, dst)
				if tc.name == "reorder" {
					// Each even request's reply was held until the next one's had gone.
					want := []uint64{seqs[1], seqs[0], seqs[3], seqs[2], seqs[5], seqs[4]}
					col.mu.Lock()
					if !slices.Equal(col.order, want) {
						t.Errorf("replies in order %v, want %v", col.order, want)
					}
					col.mu.Unlock()
				}
				want := probe.Counters{Sent: n + 1, Replies: 1, Duplicates: uint64(n * w.dups),
					Late: uint64(n * w.late), Foreign: uint64(n * w.foreign), BadChecksum: uint64(n * w.badChecksm)}
				switch w.outcome {
				case probe.Reply:
					want.Replies += n
				case probe.ICMPError:
					want.Errors = n
				case probe.Timeout:
					want.Timeouts = n
				}
				if w.corrupted {
					want.Corrupted = n
				}
				if got := e.Counters(); got != want {
					t.Errorf("counters\n got %+v\nwant %+v", got, want)
				}
				checkLog(t, r, e, dst)
			})
		}
	}
}

// checkResults asserts that every probe ended in exactly the expected class, once, with only
// the expected duplicates after it.
func checkResults(t *testing.T, seqs []uint64, col *collector, w expect, dst netip.Addr) {
	t.Helper()
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.results) != len(seqs) {
		t.Errorf("outcomes for %d probes, want %d", len(col.results), len(seqs))
	}
	for _, seq := range seqs {
		rs := col.results[seq]
		if len(rs) != 1+w.dups {
			t.Errorf("probe %d: %d outcomes, want %d: %+v", seq, len(rs), 1+w.dups, rs)
			continue
		}
		first := rs[0]
		if first.Outcome != w.outcome || first.Corrupted != w.corrupted {
			t.Errorf("probe %d: %+v, want %s corrupted=%v", seq, first, w.outcome, w.corrupted)
		}
		switch first.Outcome {
		case probe.Reply, probe.ICMPError:
			if first.From != dst || first.RTT <= 0 || first.RTT > 5*time.Second {
				t.Errorf("probe %d: from %s rtt %v", seq, first.From, first.RTT)
			}
		}
		if w.outcome == probe.ICMPError && (first.Kind != w.kind || first.Type != w.typ || first.Code != w.code) {
			t.Errorf("probe %d: error %s type %d code %d, want %s type %d code %d",
				seq, first.Kind, first.Type, first.Code, w.kind, w.typ, w.code)
		}
		for _, d := range rs[1:] {
			if d.Outcome != probe.Duplicate || d.From != dst {
				t.Errorf("probe %d: after %s came %+v", seq, first.Outcome, d)
			}
		}
		// Late answers reach the probe's owner while the engine remembers the probe; those
		// it cannot tie to a probe (another source, a wrapped sequence) are only counted.
		if lates := col.late[seq]; len(lates) > w.late {
			t.Errorf("probe %d: %d late answers delivered, want at most %d", seq, len(lates), w.late)
		} else {
			for _, l := range lates {
				if l.From != dst || l.RTT <= 0 {
					t.Errorf("probe %d: late answer %+v", seq, l)
				}
			}
		}
	}
}

// checkLog asserts that the responder received exactly what the engine says it sent, from the
// host to dst.
func checkLog(t *testing.T, r *responder.Responder, e *probe.Engine, dst netip.Addr) {
	t.Helper()
	log := r.Log()
	if sent := e.Counters().Sent; uint64(len(log)) != sent {
		t.Errorf("engine sent %d requests, responder received %d", sent, len(log))
	}
	for _, req := range log {
		if req.Dst != dst || req.Family != icmp.FamilyOf(dst) {
			t.Errorf("responder logged %+v", req)
		}
	}
}

// TestResponderDelayRTT: a reply the responder holds for 50 ms has an RTT of at least 50 ms,
// since the RTT is measured from the engine's own send time, and not much more.
func TestResponderDelayRTT(t *testing.T) {
	c := respLab(t)
	const delay = 50 * time.Millisecond
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			startResponder(t, c, responder.Always(responder.Delay(delay)))
			e := hostEngine(t, c, m.mode, m.fam)
			for range 3 {
				res, err := e.Send(context.Background(), probe.Request{Dst: target(c, m.fam), Size: probeSize, Timeout: 5 * time.Second})
				if err != nil || res.Outcome != probe.Reply {
					t.Fatalf("%+v, %v", res, err)
				}
				if res.RTT < delay || res.RTT > delay+time.Second {
					t.Errorf("RTT %v of a reply delayed %v", res.RTT, delay)
				}
			}
		})
	}
}

// TestResponderPingTransmitted: Ping's summary matches the responder's log: transmitted equals
// what it received, and the drops and duplicates it scripted are the losses and duplicates
// Ping reports.
func TestResponderPingTransmitted(t *testing.T) {
	c := respLab(t)
	const count = 30
	script := func(n int, _ *responder.Request) []responder.Action {
		switch {
		case n%5 == 1:
			return []responder.Action{responder.Drop()}
		case n%5 == 3:
			return []responder.Action{responder.Duplicate(1)}
		}
		return []responder.Action{responder.Normal()}
	}
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			r := startResponder(t, c, script)
			e := hostEngine(t, c, m.mode, m.fam)
			s, err := e.Ping(context.Background(), target(c, m.fam),
				// 10 ms between probes keeps the last drop's Timeout well clear of Ping's linger.
				&probe.PingConfig{Count: count, Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond, Size: probeSize})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(r.Log()); s.Sent != uint64(got) || got != count {
				t.Errorf("transmitted %d, responder received %d, want %d", s.Sent, got, count)
			}
			// The duplicate of the last probe may land after Ping returns; that of every other
			// duplicated probe precedes the next probe's reply.
			const drops, dups = count / 5, count / 5
			if s.Received != count-drops || s.Lost != drops || s.Errors != 0 || s.Late != 0 || s.Duplicates < dups-1 || s.Duplicates > dups {
				t.Errorf("summary %+v, want %d received, %d lost, %d duplicates", s, count-drops, drops, dups)
			}
		})
	}
}

// TestResponderIsolation: eight engines in one process, four raw and four datagram, ping the
// responder at once, which answers every probe twice. Each engine counts exactly its own
// replies and duplicates, none crossed; the raw ones see the others' replies as foreign. The
// responder's log holds every request of all eight.
func TestResponderIsolation(t *testing.T) {
	c := respLab(t)
	r := startResponder(t, c, responder.Always(responder.Duplicate(1)))
	const count = 40
	type run struct {
		e   *probe.Engine
		m   modeCase
		sum probeSummary
	}
	var runs []*run
	for i := range 8 {
		m := modeCases[i%4]
		runs = append(runs, &run{e: hostEngine(t, c, m.mode, m.fam), m: m})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, rn := range runs {
		wg.Go(func() {
			s, err := rn.e.Ping(ctx, target(c, rn.m.fam), &probe.PingConfig{Count: count, Interval: time.Millisecond, Timeout: 2 * time.Second, Size: probeSize})
			rn.sum = probeSummary{s.Sent, s.Received, s.Lost, err}
		})
	}
	wg.Wait()
	for _, rn := range runs {
		// Flush each engine's path so that the last duplicate is counted.
		if res, err := rn.e.Send(ctx, probe.Request{Dst: target(c, rn.m.fam), Size: barrierSize, Timeout: 5 * time.Second}); err != nil || res.Outcome != probe.Reply {
			t.Fatalf("barrier: %+v, %v", res, err)
		}
	}
	for i, rn := range runs {
		if rn.sum != (probeSummary{count, count, 0, nil}) {
			t.Errorf("engine %d (%s): %+v", i, rn.m, rn.sum)
		}
		got := rn.e.Counters()
		if got.Sent != count+1 || got.Replies != count+1 || got.Duplicates != count || got.Late != 0 ||
			got.Corrupted != 0 || got.Errors != 0 || got.Timeouts != 0 || got.Malformed != 0 {
			t.Errorf("engine %d (%s): counters %+v", i, rn.m, got)
		}
		if rn.m.mode == rawsock.Unprivileged && got.Foreign != 0 {
			t.Errorf("engine %d (%s): datagram socket saw %d foreign packets", i, rn.m, got.Foreign)
		}
	}
	if got := len(r.Log()); got != 8*(count+1) {
		t.Errorf("responder received %d requests, want %d", got, 8*(count+1))
	}
}

type probeSummary struct {
	sent, received, lost uint64
	err                  error
}

// TestResponderSequenceWrap: an answer of an old probe arriving while a probe 65536 later, with
// the same 16-bit sequence, waits for its own, is counted as late and does not answer the new
// one: both when the old probe had timed out and when it had been answered (the engine then
// gives its key to the new probe, and the old answer is a duplicate that comes too late). The
// engine's sequence counter is global, so 65535 fillers sent towards an address the target
// drops (it does not forward) advance it cheaply.
func TestResponderSequenceWrap(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 65537 probes per case")
	}
	c := respLab(t)
	sink := map[icmp.Family]netip.Addr{icmp.IPv4: netip.MustParseAddr("198.18.201.1"), icmp.IPv6: netip.MustParseAddr("2001:db8:201::1")}
	for _, answered := range []bool{false, true} {
		// The old probe's (second) reply is held until the new probe's request arrives; the new
		// probe's own reply follows 20 ms later, so the old one reaches the engine first.
		oldActs := []responder.Action{responder.Reorder()}
		oldTimeout, oldOutcome := time.Millisecond, probe.Timeout
		name := "timed-out"
		if answered {
			oldActs = []responder.Action{responder.Normal(), responder.Reorder()}
			oldTimeout, oldOutcome = time.Minute, probe.Reply
			name = "answered"
		}
		script := func(n int, _ *responder.Request) []responder.Action {
			if n == 0 {
				return oldActs
			}
			return []responder.Action{responder.Delay(20 * time.Millisecond)}
		}
		for _, m := range modeCases {
			t.Run(name+"/"+m.String(), func(t *testing.T) {
				r := startResponder(t, c, script)
				e := hostEngine(t, c, m.mode, m.fam)
				dst := target(c, m.fam)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				col := newCollector(1)
				oldSeq, err := e.Start(probe.Request{Dst: dst, Size: probeSize, Timeout: oldTimeout, OnResult: col.onResult})
				if err != nil {
					t.Fatal(err)
				}
				select {
				case <-col.final:
				case <-ctx.Done():
					t.Fatal("old probe never ended")
				}
				for range 1<<16 - 1 {
					if _, err := e.Start(probe.Request{Dst: sink[m.fam], Size: 0, Timeout: time.Millisecond}); err != nil {
						t.Fatal(err)
					}
				}
				res, err := e.Send(ctx, probe.Request{Dst: dst, Size: probeSize, Timeout: 5 * time.Second})
				if err != nil || res.Outcome != probe.Reply || res.Seq != oldSeq+1<<16 || res.Corrupted || res.RTT < 20*time.Millisecond {
					t.Fatalf("new probe (old was %d): %+v, %v", oldSeq, res, err)
				}
				wantReplies := uint64(1)
				if answered {
					wantReplies = 2
				}
				if got := e.Counters(); got.Late != 1 || got.Replies != wantReplies || got.Duplicates != 0 || got.Foreign != 0 {
					t.Errorf("counters %+v, want the old answer late and the new one a reply", got)
				}
				col.mu.Lock()
				if rs := col.results[oldSeq]; len(rs) != 1 || rs[0].Outcome != oldOutcome {
					t.Errorf("old probe: %+v, want one %s", rs, oldOutcome)
				}
				col.mu.Unlock()
				if log := r.Log(); len(log) != 2 || log[0].Seq != log[1].Seq {
					t.Errorf("responder log %+v, want two requests with one 16-bit sequence", log)
				}
			})
		}
	}
}

// TestResponderPingSummary: Ping's summary reports the reordered and corrupted replies the
// responder scripted.
func TestResponderPingSummary(t *testing.T) {
	c := respLab(t)
	const count = 20
	script := func(n int, _ *responder.Request) []responder.Action {
		switch n % 4 {
		case 0:
			return []responder.Action{responder.Reorder()}
		case 2:
			return []responder.Action{responder.CorruptPayload()}
		}
		return []responder.Action{responder.Normal()}
	}
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			startResponder(t, c, script)
			e := hostEngine(t, c, m.mode, m.fam)
			s, err := e.Ping(context.Background(), target(c, m.fam),
				&probe.PingConfig{Count: count, Interval: time.Millisecond, Timeout: 2 * time.Second, Size: probeSize})
			if err != nil {
				t.Fatal(err)
			}
			if s.Sent != count || s.Received != count || s.Lost != 0 || s.Reordered != count/4 || s.Corrupted != count/4 {
				t.Errorf("summary %+v, want %d received, %d reordered, %d corrupted", s, count, count/4, count/4)
			}
		})
	}
}

// TestResponderPingLate: late replies to a Ping's probes should appear in its summary's Late,
// as they do in the engine's counters.
func TestResponderPingLate(t *testing.T) {
	c := respLab(t)
	const count = 4
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			// Each reply comes 30 ms after its probe timed out (inside the one more Timeout the
			// engine remembers it) and well before the next probe, so every late reply but the
			// last arrives while Ping is running.
			startResponder(t, c, responder.Always(responder.Delay(80*time.Millisecond)))
			e := hostEngine(t, c, m.mode, m.fam)
			s, err := e.Ping(context.Background(), target(c, m.fam),
				&probe.PingConfig{Count: count, Interval: 200 * time.Millisecond, Timeout: 50 * time.Millisecond, Size: probeSize})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Counters().Late; got < count-1 {
				t.Fatalf("engine counted %d late replies, want at least %d", got, count-1)
			}
			if s.Sent != count || s.Received != 0 || s.Late < count-1 {
				t.Errorf("summary %+v, want at least %d late", s, count-1)
			}
		})
	}
}

// TestResponderPingAllLost: when nothing answers, every probe of a Ping is lost: none is left
// in flight when Ping returns.
func TestResponderPingAllLost(t *testing.T) {
	c := respLab(t)
	const count, runs = 5, 10
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			r := startResponder(t, c, responder.Always(responder.Drop()))
			e := hostEngine(t, c, m.mode, m.fam)
			bad := 0
			for range runs {
				s, err := e.Ping(context.Background(), target(c, m.fam),
					&probe.PingConfig{Count: count, Interval: time.Millisecond, Timeout: 50 * time.Millisecond, Size: probeSize})
				if err != nil {
					t.Fatal(err)
				}
				if s.Sent != count || s.Lost != count || s.InFlight() != 0 {
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d pings returned with a probe neither lost nor received", bad, runs)
			}
			if got := len(r.Log()); got != count*runs {
				t.Errorf("responder received %d requests, want %d", got, count*runs)
			}
		})
	}
}

// TestResponderSweepDuplicates: a Sweep routes every duplicate to the target and probe number it
// answers, even when two targets share one address.
func TestResponderSweepDuplicates(t *testing.T) {
	c := respLab(t)
	const count = 3
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			dst, alt := target(c, m.fam), alt4
			if m.fam == icmp.IPv6 {
				alt = alt6
			}
			// The last target, at alt, answers once: the sweep ends with its last reply, which the
			// responder sends after every duplicate to the others.
			startResponder(t, c, func(_ int, req *responder.Request) []responder.Action {
				if req.Dst == alt {
					return []responder.Action{responder.Normal()}
				}
				return []responder.Action{responder.Duplicate(1)}
			})
			e := hostEngine(t, c, m.mode, m.fam)
			dsts := []netip.Addr{dst, dst, alt}
			type key struct {
				target, probe int
				outcome       probe.Outcome
			}
			seen := map[key]int{}
			res, err := e.Sweep(context.Background(), dsts, &probe.SweepConfig{
				Count: count, Period: time.Millisecond, Timeout: 2 * time.Second, Size: probeSize,
				OnResult: func(k, n int, r probe.Result) { seen[key{k, n, r.Outcome}]++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			for k, r := range res {
				dups := count
				if k == 2 {
					dups = 0
				}
				if s := r.Summary; s.Sent != count || s.Received != count || int(s.Duplicates) != dups {
					t.Errorf("target %d: %+v, want %d sent and received, %d duplicated", k, s, count, dups)
				}
				for n := range count {
					if seen[key{k, n, probe.Reply}] != 1 || seen[key{k, n, probe.Duplicate}] != min(dups, 1) {
						t.Errorf("target %d probe %d: %d replies, %d duplicates; want one each", k, n,
							seen[key{k, n, probe.Reply}], seen[key{k, n, probe.Duplicate}])
					}
				}
			}
			if len(seen) != (2*2+1)*count {
				t.Errorf("outcomes %v, want only a reply and a duplicate per probe", seen)
			}
		})
	}
}

// TestResponderSweepWindow: in throughput mode a target's next probe leaves only when one of its
// Window probes in flight has settled. With every reply held for a delay, probe n cannot leave
// before probe n-Window's reply came back, a delay after that probe left; without the window,
// all would leave at once. An hour's Period shows that only the window paces the target.
func TestResponderSweepWindow(t *testing.T) {
	c := respLab(t)
	const (
		count  = 12
		window = 3
		delay  = 20 * time.Millisecond
	)
	for _, m := range modeCases {
		t.Run(m.String(), func(t *testing.T) {
			startResponder(t, c, responder.Always(responder.Delay(delay)))
			e := hostEngine(t, c, m.mode, m.fam)
			var sent [count]time.Time
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := e.Sweep(ctx, []netip.Addr{target(c, m.fam)}, &probe.SweepConfig{
				Count: count, Window: window, Period: time.Hour, Interval: -1, Timeout: 5 * time.Second, Size: probeSize,
				OnResult: func(_, n int, r probe.Result) {
					if r.Outcome != probe.Reply || n < 0 || n >= count || !sent[n].IsZero() {
						t.Errorf("probe %d: %+v", n, r)
						return
					}
					sent[n] = r.Sent
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if s := res[0].Summary; s.Sent != count || s.Received != count {
				t.Fatalf("%+v", s)
			}
			for n := window; n < count; n++ {
				if gap := sent[n].Sub(sent[n-window]); gap < delay {
					t.Errorf("probe %d left %v after probe %d, before its delayed reply could return (%v): more than %d in flight",
						n, gap, n-window, delay, window)
				}
			}
		})
	}
}
