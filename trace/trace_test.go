package trace

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
)

// TestAnnotate: traceroute's marks for every ICMP error, and which answers end a trace.
func TestAnnotate(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.1.2")
	v6 := netip.MustParseAddr("2001:db8::2")
	err := func(dst netip.Addr, kind icmp.Kind, typ, code uint8) probe.Result {
		return probe.Result{Outcome: probe.ICMPError, Dst: dst, Kind: kind, Type: typ, Code: code}
	}
	unreach4 := func(code uint8) probe.Result { return err(v4, icmp.KindDestinationUnreachable, 3, code) }
	unreach6 := func(code uint8) probe.Result { return err(v6, icmp.KindDestinationUnreachable, 1, code) }
	frag := unreach4(4)
	frag.MTU = 1400
	ptb := err(v6, icmp.KindPacketTooBig, 2, 0)
	ptb.MTU = 1280
	local := probe.Result{Outcome: probe.ICMPError, Dst: v4, Errno: syscall.EMSGSIZE, MTU: 1500}
	localOther := probe.Result{Outcome: probe.ICMPError, Dst: v4, Errno: syscall.ENOBUFS}
	for _, c := range []struct {
		name  string
		r     probe.Result
		mark  string
		final bool
	}{
		{"echo reply", probe.Result{Outcome: probe.Reply, Dst: v4}, "", true},
		{"timeout", probe.Result{Outcome: probe.Timeout, Dst: v4}, "", false},
		{"time exceeded v4", err(v4, icmp.KindTimeExceeded, 11, 0), "", false},
		{"time exceeded v6", err(v6, icmp.KindTimeExceeded, 3, 0), "", false},
		{"reassembly time exceeded v4", err(v4, icmp.KindTimeExceeded, 11, 1), "!<11-1>", true},
		{"reassembly time exceeded v6", err(v6, icmp.KindTimeExceeded, 3, 1), "!<3-1>", true},
		{"net unreachable", unreach4(0), "!N", true},
		{"host unreachable", unreach4(1), "!H", true},
		{"protocol unreachable", unreach4(2), "!P", true},
		{"port unreachable: the destination", unreach4(3), "", true},
		{"fragmentation needed", frag, "!F-1400", true},
		{"source route failed", unreach4(5), "!S", true},
		{"net unknown", unreach4(6), "!N", true},
		{"host unknown", unreach4(7), "!H", true},
		{"host isolated", unreach4(8), "!N", true},
		{"net prohibited", unreach4(9), "!X", true},
		{"host prohibited", unreach4(10), "!X", true},
		{"net unreachable for TOS", unreach4(11), "!N", true},
		{"host unreachable for TOS", unreach4(12), "!H", true},
		{"communication prohibited", unreach4(13), "!X", true},
		{"host precedence violation", unreach4(14), "!V", true},
		{"precedence cutoff", unreach4(15), "!C", true},
		{"unknown code v4", unreach4(16), "!<16>", true},
		{"no route v6", unreach6(0), "!N", true},
		{"admin prohibited v6", unreach6(1), "!X", true},
		{"beyond scope v6", unreach6(2), "!H", true},
		{"address unreachable v6", unreach6(3), "!H", true},
		{"port unreachable v6", unreach6(4), "", true},
		{"policy failed v6", unreach6(5), "!<5>", true},
		{"packet too big", ptb, "!F-1280", true},
		{"parameter problem v4", err(v4, icmp.KindParameterProblem, 12, 0), "!<12-0>", true},
		{"parameter problem v6", err(v6, icmp.KindParameterProblem, 4, 1), "!<4-1>", true},
		{"local message too long", local, "!F-1500", true},
		{"local other error", localOther, "!<105>", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mark, final := annotate(&c.r)
			if mark != c.mark || final != c.final {
				t.Errorf("got %q final %v, want %q final %v", mark, final, c.mark, c.final)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, cfg := range []*Config{nil, {}} {
		c, err := cfg.withDefaults()
		want := Config{First: 1, Max: 32, Queries: 3, Parallel: 16, Wait: 5 * time.Second,
			Size: 32, RetryAfter: 1100 * time.Millisecond, Here: 3, Near: 10}
		if err != nil || c != want {
			t.Errorf("%v: got %+v, %v", cfg, c, err)
		}
	}
	// A first TTL beyond the default max raises the max; an empty payload is size 0.
	c, err := (&Config{First: 40, Size: EmptyPayload}).withDefaults()
	if err != nil || c.Max != 40 || c.Size != 0 {
		t.Errorf("got %+v, %v", c, err)
	}
}

// TestConfigErrors: every bad Config and destination is refused before anything is sent (the
// engine here has no socket and must not need one).
func TestConfigErrors(t *testing.T) {
	e := probe.New(nil)
	defer e.Close()
	dst := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct {
		cfg *Config
		dst netip.Addr
	}{
		{&Config{First: 256}, dst},
		{&Config{First: -1}, dst},
		{&Config{First: 5, Max: 4}, dst},
		{&Config{Max: 256}, dst},
		{&Config{Queries: 11}, dst},
		{&Config{Queries: -1}, dst},
		{&Config{Parallel: -1}, dst},
		{&Config{Wait: -time.Second}, dst},
		{&Config{RetryAfter: -time.Second}, dst},
		{&Config{Size: -2}, dst},
		{&Config{Here: -2}, dst},
		{&Config{Near: math.NaN()}, dst},
		{&Config{Near: math.Inf(1)}, dst},
		{nil, netip.Addr{}},
		{nil, netip.IPv6Unspecified()},
	} {
		res, err := Run(context.Background(), e, c.dst, c.cfg, func(Hop) { t.Error("hop reported") })
		if !errors.Is(err, ErrConfig) || len(res.Hops) != 0 || res.Sent != 0 {
			t.Errorf("%+v to %v: %+v, %v", c.cfg, c.dst, res, err)
		}
	}
	if got := e.Counters().Sent; got != 0 {
		t.Errorf("%d probes sent", got)
	}
}
