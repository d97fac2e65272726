package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/l4"
	"github.com/gping/gping/rawsock"
)

// labProber opens an l4.Prober of the given mode whose sockets live in ns.
func labProber(t *testing.T, ns *netlab.NS, f icmp.Family, cfg l4.Config) *l4.Prober {
	t.Helper()
	var p *l4.Prober
	if err := ns.Do(func() (err error) {
		p, err = l4.Open(f, &cfg)
		return err
	}); err != nil {
		t.Fatalf("open %s %s prober in %s: %v", cfg.Protocol, f, ns.Name(), err)
	}
	if got := p.Mode(); got != cfg.Socket.Mode {
		t.Fatalf("opened %s, want %s", got, cfg.Socket.Mode)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestLabChainL4: a chain of 10 routers, UDP (Paris and classic) and TCP, both families, both
// privilege modes: exactly 11 hops in order, the target last.
func TestLabChainL4(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(10)
	// Traces back to back would empty the target's port-unreachable bucket; that case is
	// TestLabRateLimitL4's.
	c.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	c.Target.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	for _, proto := range []l4.Protocol{l4.UDP, l4.TCP} {
		for _, classic := range []bool{false, true} {
			for _, tc := range labCases(c) {
				name := fmt.Sprintf("%s/classic=%v/%s", proto, classic, tc.name)
				t.Run(name, func(t *testing.T) {
					p := labProber(t, c.Host, icmp.FamilyOf(tc.dst), l4.Config{Protocol: proto, Classic: classic, Socket: rawsock.Config{Mode: tc.mode}})
					res, _ := trace(t, p, tc.dst, nil)
					wantPath(t, res, hopsTo(tc.routers, tc.dst))
				})
			}
		}
	}
}

// TestLabRateLimitL4: a UDP trace through 10 routers and to a target that all have the
// kernel's default ICMP rate limits: every hop answered with no retry, because the probes past
// the target (Lookahead) leave its burst of 6 port unreachables for the queries at its TTL.
// TCP for comparison: RSTs are not rate limited. Each mode has a chain of its own, so that
// each first trace meets full token buckets.
func TestLabRateLimitL4(t *testing.T) {
	lab := netlab.New(t)
	for _, mode := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
		c := rateLimitedChain(t, lab, 10)
		for _, tc := range labCases(c) {
			if tc.mode != mode {
				continue
			}
			for _, proto := range []l4.Protocol{l4.UDP, l4.TCP} {
				t.Run(fmt.Sprintf("%s/%s", proto, tc.name), func(t *testing.T) {
					p := labProber(t, c.Host, icmp.FamilyOf(tc.dst), l4.Config{Protocol: proto, Socket: rawsock.Config{Mode: mode}})
					res, _ := trace(t, p, tc.dst, &Config{Queries: 3})
					wantPath(t, res, hopsTo(tc.routers, tc.dst))
					if res.Retries != 0 {
						t.Errorf("%d retries: a rate limit bit\n%s", res.Retries, dump(res.Hops))
					}
				})
			}
		}
	}
}

// TestLabRateLimitQueriesMethods: -q 10 through 31 routers with the kernel's default rate
// limits (and a target with its own), ICMP, UDP and TCP: every query of every hop answered
// within the Wait. Each router answers 6 queries at once and the rest one per refill: the
// queries waiting for their retries must neither hold back other first attempts under Parallel
// nor let first attempts into an empty bucket take the tokens those retries need
// (tracer.park). Each method gets a chain of its own, so that it meets full buckets.
func TestLabRateLimitQueriesMethods(t *testing.T) {
	lab := netlab.New(t)
	for _, proto := range []l4.Protocol{0, l4.UDP, l4.TCP} {
		name := "icmp"
		if proto != 0 {
			name = proto.String()
		}
		c := rateLimitedChain(t, lab, 31)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var p Prober
			if proto == 0 {
				p = labEngine(t, c.Host, rawsock.Privileged, icmp.IPv4)
			} else {
				p = labProber(t, c.Host, icmp.IPv4, l4.Config{Protocol: proto, Socket: rawsock.Config{Mode: rawsock.Privileged}})
			}
			res, _ := trace(t, p, c.TargetAddr4, &Config{Queries: 10})
			wantPath(t, res, hopsTo(c.RouterAddr4, c.TargetAddr4))
			if res.Retries == 0 {
				t.Errorf("no retries: the rate limit did not bite")
			}
		})
	}
}

// TestLabFaultsL4: UDP and TCP, both modes and families, past a silent router (its hop "*",
// the rest of the path traced) and into a router that rejects the destination (its address
// with !X at the hop after it, the trace ending there, not reached), and towards an address no
// router has a route to (!N from the first router).
func TestLabFaultsL4(t *testing.T) {
	lab := netlab.New(t)
	silent := lab.Chain(4)
	silent.Routers[1].NoTimeExceeded(t)
	silent.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	silent.Target.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	reject := lab.Chain(3)
	reject.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(reject.TargetAddr4, 32))
	reject.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(reject.TargetAddr6, 128))
	// Linux answers a packet it has no route for from ip_error, whose token bucket
	// (net.ipv4.route.error_cost) is host-wide, not per namespace: eight traces in a row would
	// empty it. The first router says "no route" through nftables instead, before routing as
	// the kernel would, which only icmp_ratelimit (off in the lab's routers) limits.
	reject.Routers[0].Nft(t, `
table inet l4nowhere {
	chain pre {
		type filter hook prerouting priority 0;
		ip daddr 198.18.200.0/24 reject with icmp type net-unreachable
		ip6 daddr 2001:db8:ffff::/48 reject with icmpv6 type no-route
	}
}`)
	for _, proto := range []l4.Protocol{l4.UDP, l4.TCP} {
		for i, tc := range labCases(silent) {
			rc := labCases(reject)[i]
			t.Run(fmt.Sprintf("%s/%s", proto, tc.name), func(t *testing.T) {
				cfg := l4.Config{Protocol: proto, Socket: rawsock.Config{Mode: tc.mode}}
				p := labProber(t, silent.Host, icmp.FamilyOf(tc.dst), cfg)
				res, _ := trace(t, p, tc.dst, nil)
				wantSilentHop(t, res, hopsTo(tc.routers, tc.dst), 2)

				p = labProber(t, reject.Host, icmp.FamilyOf(rc.dst), cfg)
				res, _ = trace(t, p, rc.dst, nil)
				if len(res.Hops) != 3 || res.Reached {
					t.Fatalf("rejected: %d hops, reached %v:\n%s", len(res.Hops), res.Reached, dump(res.Hops))
				}
				for _, pr := range res.Hops[2].Probes {
					if pr.From != rc.routers[1] || pr.Annotation != "!X" {
						t.Errorf("rejected hop 3: %+v, want %s !X", pr, rc.routers[1])
					}
				}

				// An address the first router has no route to: it says so (!N).
				nowhere := netip.MustParseAddr("198.18.200.1")
				if icmp.FamilyOf(rc.dst) == icmp.IPv6 {
					nowhere = netip.MustParseAddr("2001:db8:ffff::1")
				}
				res, _ = trace(t, p, nowhere, nil)
				if len(res.Hops) != 1 || res.Reached {
					t.Fatalf("unrouted: %d hops, reached %v:\n%s", len(res.Hops), res.Reached, dump(res.Hops))
				}
				for _, pr := range res.Hops[0].Probes {
					if pr.From != rc.routers[0] || pr.Annotation != "!N" {
						t.Errorf("unrouted hop 1: %+v, want %s !N", pr, rc.routers[0])
					}
				}
			})
		}
	}
}

// TestLabECMP: on a diamond whose first router balances UDP flows over two branches, a Paris
// trace (one flow) sees one branch in all of its probes, different flows see both branches
// (so the lab does balance), and a classic trace, whose port changes with every probe, sees
// both branches at the second hop.
func TestLabECMP(t *testing.T) {
	lab := netlab.New(t)
	d := lab.Diamond()
	type fam struct {
		dst  netip.Addr
		hops [3][]netip.Addr
	}
	for _, f := range []fam{{d.TargetAddr4, d.Hops4}, {d.TargetAddr6, d.Hops6}} {
		for _, mode := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
			t.Run(fmt.Sprintf("%s/%s", mode, icmp.FamilyOf(f.dst)), func(t *testing.T) {
				seen := map[netip.Addr]bool{}
				// 16 flows: with 8, all took one branch in about 1 subtest in 130.
				for i := range 16 {
					p := labProber(t, d.Host, icmp.FamilyOf(f.dst), l4.Config{Port: uint16(33434 + 7*i), Socket: rawsock.Config{Mode: mode}})
					// Max 3 stops before the target, whose port unreachables are rate limited.
					res, _ := trace(t, p, f.dst, &Config{Queries: 10, Max: 3})
					if len(res.Hops) != 3 {
						t.Fatalf("port %d: %d hops, reached %v:\n%s", p.Port(), len(res.Hops), res.Reached, dump(res.Hops))
					}
					branch := res.Hops[1].Probes[0].From
					for _, pr := range res.Hops[1].Probes {
						if pr.From != branch {
							t.Fatalf("port %d: Paris probes took both branches:\n%s", p.Port(), dump(res.Hops))
						}
					}
					seen[branch] = true
				}
				if len(seen) != 2 || !seen[f.hops[1][0]] || !seen[f.hops[1][1]] {
					t.Fatalf("16 flows saw second hops %v, want both of %v: the lab does not balance", seen, f.hops[1])
				}
				// Classic probes change flow each: over 30 of them (3 traces of 10, the most
				// a hop takes), both branches. The hash is fixed but the source port is not:
				// 10 probes all took one branch in about 1 run in 100.
				classic := map[netip.Addr]bool{}
				var dumps strings.Builder
				for range 3 {
					p := labProber(t, d.Host, icmp.FamilyOf(f.dst), l4.Config{Classic: true, Socket: rawsock.Config{Mode: mode}})
					res, _ := trace(t, p, f.dst, &Config{Queries: MaxQueries, Max: 3})
					for _, pr := range res.Hops[1].Probes {
						classic[pr.From] = true
					}
					dumps.WriteString(dump(res.Hops))
				}
				if len(classic) != 2 {
					t.Fatalf("30 classic probes saw second hops %v, want both branches:\n%s", classic, dumps.String())
				}
			})
		}
	}
}
