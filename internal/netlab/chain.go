package netlab

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxRouters is the longest chain the addressing plan of Chain can number:
// 512 links, 256 in 198.18.0.0/16 and 256 in 198.19.0.0/16.
const MaxRouters = 511

// Chain is a line of namespaces, Host -- Routers[0] -- ... -- Routers[N-1] --
// Target, built by Lab.Chain. It is plain data, safe for concurrent reads.
type Chain struct {
	Host, Target *NS
	Routers      []*NS

	HostAddr4, TargetAddr4 netip.Addr
	HostAddr6, TargetAddr6 netip.Addr

	// RouterAddr4[i] and RouterAddr6[i] are the addresses of Routers[i] on
	// its host-facing link: the source of the Time Exceeded it sends to Host
	// for a probe with TTL or hop limit i+1.
	RouterAddr4, RouterAddr6 []netip.Addr
}

// icmpLimitKeys are the sysctls behind the kernel's ICMP error rate limits
// (Documentation/networking/ip-sysctl.rst): a per-destination token bucket
// (icmp_ratelimit, ipv6 icmp.ratelimit, in ms per message, burst of 6) and a
// host-wide one (icmp_msgs_per_sec, icmp_msgs_burst), both applied only to
// the ICMP types in the ratemask. Per namespace since Linux 6.x.
var icmpLimitKeys = [...]string{
	"net.ipv4.icmp_ratelimit",
	"net.ipv4.icmp_msgs_per_sec",
	"net.ipv4.icmp_msgs_burst",
	"net.ipv4.icmp_ratemask",
	"net.ipv6.icmp.ratelimit",
	"net.ipv6.icmp.ratemask",
}

// routerSysctls make a namespace forward and answer every probe. Setting the
// two rate limits to 0 is not enough: icmp_msgs_per_sec=0 means "refill the
// host-wide bucket never", which would allow icmp_msgs_burst errors and then
// none. Emptying both ratemasks exempts every ICMP type from both buckets.
var routerSysctls = [...]sysctlKV{
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv6.conf.all.forwarding", "1"},
	{"net.ipv4.icmp_ratelimit", "0"},
	{"net.ipv6.icmp.ratelimit", "0"},
	{"net.ipv4.icmp_ratemask", "0"},
	{"net.ipv6.icmp.ratemask", ""},
}

// Chain builds Host -- r1 -- ... -- rN -- Target with N = routers (0 links
// Host directly to Target), IPv4 and IPv6 on every link, and routes both ways.
//
// Addressing: link i (0-based, between node i and node i+1, Host being node
// 0) is 198.18.i.0/30 for i < 256 and 198.19.(i-256).0/30 after that, and
// 2001:db8:0:i::/64 (i as the value of the fourth group, so link 10 is
// 2001:db8:0:a::/64). The left node has .1 / ::1, the right node .2 / ::2.
// So HostAddr4 is 198.18.0.1, Routers[k] faces the host with 198.18.k.2, and
// TargetAddr4 is 198.18.N.2.
//
// Routing: Host and Target have default routes to their neighbour; every
// router has a route to each non-adjacent link through the neighbour on that
// side and no default, so it answers probes to unknown addresses with
// Destination Unreachable.
//
// Routers forward both families and have ICMP error rate limiting disabled
// (icmp_ratelimit=0, ipv6 icmp.ratelimit=0, empty ratemasks), so every
// expiring probe gets its Time Exceeded; NS.RateLimitICMPErrors restores the
// kernel's limits. A Lab may hold several chains; the first uses the short
// names "host", "r1".., "target", the k-th (k > 1) prefixes them with "cK".
func (l *Lab) Chain(routers int) *Chain {
	l.t.Helper()
	if routers < 0 || routers > MaxRouters {
		l.t.Fatalf("netlab: Chain(%d): want 0..%d routers", routers, MaxRouters)
	}
	l.mu.Lock()
	l.chains++
	prefix := ""
	if l.chains > 1 {
		prefix = fmt.Sprintf("c%d", l.chains)
	}
	l.mu.Unlock()

	nodes := make([]*NS, routers+2)
	for i := range nodes {
		name, extra := prefix+"r"+fmt.Sprint(i), routerSysctls[:]
		switch i {
		case 0:
			name, extra = prefix+"host", nil
		case routers + 1:
			name, extra = prefix+"target", nil
		}
		n, err := l.createNS(name, extra)
		if err != nil {
			l.t.Fatalf("%v", err)
		}
		nodes[i] = n
	}

	watches := make([]*localWatch, len(nodes))
	for i, n := range nodes {
		w, err := n.watchLocal6()
		if err != nil {
			l.t.Fatalf("%v", err)
		}
		defer w.close()
		watches[i] = w
	}

	// One "ip -batch" per node, left to right: it creates the veth pair of its
	// right link (the peer lands in the next node), configures and raises both
	// of its ends and adds its routes. Raising the left end turns the carrier
	// on for the pair, so the same batch syncs that end's link-watch state
	// (see Link); the right ends are synced in a second pass.
	ifs := make([][2]string, routers+1) // per link: left and right interface
	for i := range ifs {
		ifs[i][0], ifs[i][1] = l.vethNames()
	}
	last := routers + 1
	for i, n := range nodes {
		var b strings.Builder
		b.WriteString("link set lo up\n")
		if i < last {
			fmt.Fprintf(&b, "link add %s type veth peer name %s netns %s\n", ifs[i][0], ifs[i][1], nodes[i+1].name)
		}
		if i > 0 {
			l4, r4 := linkAddrs4(i - 1)
			l6, r6 := linkAddrs6(i - 1)
			configure(&b, ifs[i-1][1], []netip.Prefix{netip.PrefixFrom(r4, 30), netip.PrefixFrom(r6, 64)})
			fmt.Fprintf(&b, "link show dev %s\n", ifs[i-1][1])
			if i == last {
				fmt.Fprintf(&b, "route add 0.0.0.0/0 via %s\nroute add ::/0 via %s\n", l4, l6)
			} else {
				for j := 0; j < i-1; j++ { // links on the host side, via the left neighbour
					fmt.Fprintf(&b, "route add %s via %s\nroute add %s via %s\n", linkPrefix4(j), l4, linkPrefix6(j), l6)
				}
			}
		}
		if i < last {
			l4, r4 := linkAddrs4(i)
			l6, r6 := linkAddrs6(i)
			configure(&b, ifs[i][0], []netip.Prefix{netip.PrefixFrom(l4, 30), netip.PrefixFrom(l6, 64)})
			if i == 0 {
				fmt.Fprintf(&b, "route add 0.0.0.0/0 via %s\nroute add ::/0 via %s\n", r4, r6)
			} else {
				for j := i + 1; j <= routers; j++ { // links on the target side, via the right neighbour
					fmt.Fprintf(&b, "route add %s via %s\nroute add %s via %s\n", linkPrefix4(j), r4, linkPrefix6(j), r6)
				}
			}
		}
		if _, err := n.ip(b.String()); err != nil {
			l.t.Fatalf("%v", err)
		}
	}
	for i, n := range nodes[:last] {
		if _, err := n.ip("link show dev " + ifs[i][0] + "\n"); err != nil {
			l.t.Fatalf("%v", err)
		}
	}

	// Wait until every IPv6 address is local, as Link does.
	for i, w := range watches {
		var want []netip.Addr
		if i > 0 {
			_, r6 := linkAddrs6(i - 1)
			want = append(want, r6)
		}
		if i < last {
			l6, _ := linkAddrs6(i)
			want = append(want, l6)
		}
		if err := w.wait(want); err != nil {
			l.t.Fatalf("%v", err)
		}
	}

	c := &Chain{Host: nodes[0], Target: nodes[last], Routers: nodes[1:last]}
	c.HostAddr4, _ = linkAddrs4(0)
	c.HostAddr6, _ = linkAddrs6(0)
	_, c.TargetAddr4 = linkAddrs4(routers)
	_, c.TargetAddr6 = linkAddrs6(routers)
	for k := range routers {
		_, a4 := linkAddrs4(k)
		_, a6 := linkAddrs6(k)
		c.RouterAddr4 = append(c.RouterAddr4, a4)
		c.RouterAddr6 = append(c.RouterAddr6, a6)
	}
	return c
}

// linkAddrs4 returns the left (.1) and right (.2) IPv4 addresses of link i.
func linkAddrs4(i int) (left, right netip.Addr) {
	p := linkPrefix4(i).Addr().As4()
	p[3] = 1
	left = netip.AddrFrom4(p)
	p[3] = 2
	return left, netip.AddrFrom4(p)
}

// linkPrefix4 returns 198.18.i.0/30, or 198.19.(i-256).0/30 for i >= 256.
func linkPrefix4(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i/256), byte(i % 256), 0}), 30)
}

// linkAddrs6 returns the left (::1) and right (::2) IPv6 addresses of link i.
func linkAddrs6(i int) (left, right netip.Addr) {
	p := linkPrefix6(i).Addr().As16()
	p[15] = 1
	left = netip.AddrFrom16(p)
	p[15] = 2
	return left, netip.AddrFrom16(p)
}

// linkPrefix6 returns 2001:db8:0:i::/64.
func linkPrefix6(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i)}), 64)
}
