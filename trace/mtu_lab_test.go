package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/l4"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

// setLinkMTU sets the MTU of the interface through which ns reaches peer.
func setLinkMTU(t *testing.T, ns *netlab.NS, peer netip.Addr, mtu int) {
	t.Helper()
	out := ns.MustRun(t, "ip", "-o", "route", "get", peer.String())
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			ns.MustRun(t, "ip", "link", "set", "dev", f[i+1], "mtu", fmt.Sprint(mtu))
			return
		}
	}
	t.Fatalf("no device in %q", out)
}

// TestLabMTU: a 1400-byte link between the second and third routers. Traced with MTU 1500,
// the probes past the second router draw Fragmentation Needed / Packet Too Big, are sent
// again at 1400 and get through: every hop answered, the first probe of hop 3 marked 1400,
// the path MTU 1400. ICMP and UDP, both privilege modes, both families.
func TestLabMTU(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(4)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	c.Target.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	setLinkMTU(t, c.Routers[1], c.RouterAddr4[2], 1400)
	setLinkMTU(t, c.Routers[2], c.RouterAddr4[1], 1400)
	sock := func(m rawsock.Mode) rawsock.Config { return rawsock.Config{Mode: m, PMTU: rawsock.PMTUProbe} }
	for _, tc := range labCases(c) {
		for _, method := range []string{"icmp", "udp"} {
			t.Run(method+"/"+tc.name, func(t *testing.T) {
				f := icmp.FamilyOf(tc.dst)
				var p Prober
				if method == "icmp" {
					e := probe.New(&probe.Config{Socket: sock(tc.mode)})
					if err := c.Host.Do(func() error { return e.Open(f) }); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { e.Close() })
					p = e
				} else {
					p = labProber(t, c.Host, f, l4.Config{Socket: sock(tc.mode)})
				}
				res, _ := trace(t, p, tc.dst, &Config{MTU: 1500})
				wantPath(t, res, hopsTo(tc.routers, tc.dst))
				if res.PathMTU != 1400 {
					t.Errorf("path MTU %d, want 1400", res.PathMTU)
				}
				for _, h := range res.Hops {
					for i, pr := range h.Probes {
						want := 0
						if h.TTL == 3 && i == 0 {
							want = 1400
						}
						if pr.MTU != want {
							t.Errorf("hop %d probe %d: MTU %d, want %d", h.TTL, i, pr.MTU, want)
						}
					}
				}
			})
		}
	}
}
