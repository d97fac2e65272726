package trace

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/l4"
	"github.com/gping/gping/rawsock"
)

// TestLabMultipath: on the ECMP diamond, UDP, both families and both privilege modes,
// Multipath finds both branches at TTL 2, one interface at TTL 1 and 3, and the destination at
// TTL 4 (netlab.Diamond's Hops: over IPv6, C shows as one interface per branch). The source
// port is the kernel's choice, so which flows take which branch changes from run to run: at the default 5% two branches are missed with
// probability 2·2^-6 (that is MDA's bargain), so the test asks for a confidence of 1e-6.
func TestLabMultipath(t *testing.T) {
	lab := netlab.New(t)
	d := lab.Diamond()
	// Every flow that reaches the target draws a port unreachable, and MDA sends at least
	// n_1 of them, more than Linux's per-destination burst of 6; the subtests together also
	// send more than the host-wide burst of 50 in a few milliseconds, which the empty
	// ratemasks lift (see netlab's routerSysctls).
	d.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	d.Target.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	d.Target.Sysctl(t, "net.ipv4.icmp_ratemask", "0")
	d.Target.Sysctl(t, "net.ipv6.icmp.ratemask", "")
	const confidence = 1e-6
	for _, f := range []struct {
		dst  netip.Addr
		hops [3][]netip.Addr
	}{{d.TargetAddr4, d.Hops4}, {d.TargetAddr6, d.Hops6}} {
		for _, mode := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
			t.Run(fmt.Sprintf("%s/%s", mode, icmp.FamilyOf(f.dst)), func(t *testing.T) {
				p := labProber(t, d.Host, icmp.FamilyOf(f.dst), l4.Config{Protocol: l4.UDP, Socket: rawsock.Config{Mode: mode}})
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				start := time.Now()
				res, err := Multipath(ctx, p, f.dst, &MultipathConfig{Confidence: confidence}, nil)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("Multipath: %v", err)
				}
				t.Logf("%d probes in %v", res.Sent, took)
				want := [][]netip.Addr{f.hops[0], sorted(f.hops[1]), sorted(f.hops[2]), {f.dst}}
				if len(res.Hops) != len(want) || !res.Reached {
					t.Fatalf("%d hops, reached %v, want %d:\n%s", len(res.Hops), res.Reached, len(want), dumpMulti(res.Hops))
				}
				for i, h := range res.Hops {
					var got []netip.Addr
					for _, in := range h.Interfaces {
						got = append(got, in.Addr)
						if in.RTT <= 0 || in.RTT > time.Second || in.Annotation != "" {
							t.Errorf("ttl %d: %+v", h.TTL, in)
						}
					}
					n := stopFlows(max(len(want[i]), 1), confidence)
					if h.TTL != i+1 || !slices.Equal(got, want[i]) || h.Flows != n {
						t.Errorf("ttl %d: %v after %d flows, want ttl %d: %v after %d:\n%s", h.TTL, got, h.Flows, i+1, want[i], n, dumpMulti(res.Hops))
					}
				}
				if last := res.Hops[3].Interfaces; len(last) != 1 || !last[0].Final {
					t.Errorf("destination hop %+v, want one final interface", last)
				}
			})
		}
	}
}

func sorted(as []netip.Addr) []netip.Addr {
	return slices.SortedFunc(slices.Values(as), netip.Addr.Compare)
}

// dumpMulti shows hops in failure messages.
func dumpMulti(hops []MultiHop) string {
	var s string
	for _, h := range hops {
		s += fmt.Sprintf("%2d (%d flows)", h.TTL, h.Flows)
		for _, in := range h.Interfaces {
			s += fmt.Sprintf("  %s %v %s", in.Addr, in.RTT, in.Annotation)
		}
		s += "\n"
	}
	return s
}
