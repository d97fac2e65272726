package netlab

import (
	"fmt"
	"net/netip"
)

// Diamond is an equal-cost multipath lab, built by Lab.Diamond:
//
//	Host -- A --+-- B1 --+-- C -- Target
//	            +-- B2 --+
//
// A balances the traffic towards Target over B1 and B2 by a hash of the five-tuple
// (net.ipv4.fib_multipath_hash_policy=1, the same for IPv6, with a fixed
// fib_multipath_hash_seed so that a given flow always takes the same branch), as routers with
// ECMP do. A Linux router hashes ICMP echo on addresses only, so only UDP and TCP probes
// with different ports can take different branches here. Everything returns from C through
// B1. It is plain data, safe for concurrent reads.
type Diamond struct {
	Host, A, B1, B2, C, Target *NS

	HostAddr4, TargetAddr4 netip.Addr
	HostAddr6, TargetAddr6 netip.Addr
	// Hops4 and Hops6 are the addresses that answer at TTL 1, 2 and 3: A, then B1 or B2 (their
	// A-facing addresses, Hops[1][0] and Hops[1][1]), then C. C's IPv4 Time Exceeded comes
	// from its address towards B1, the route back, whichever branch the probe took; Linux
	// sources an ICMPv6 error from the link the probe came in on, so Hops6[2] has C's address
	// on each branch's link.
	Hops4, Hops6 [3][]netip.Addr
}

// Diamond builds a Diamond (see its doc) with IPv4 and IPv6. Link k (0..5: Host-A, A-B1,
// A-B2, B1-C, B2-C, C-Target) is 198.18.k.0/30 and 2001:db8:0:k::/64, .1 / ::1 on the left
// (Host, A, A, B1, B2, C) and .2 / ::2 on the right. Routers forward without ICMP rate
// limits, as in Chain.
func (l *Lab) Diamond() *Diamond {
	l.t.Helper()
	names := []string{"dhost", "da", "db1", "db2", "dc", "dtarget"}
	ns := make([]*NS, len(names))
	for i, name := range names {
		var extra []sysctlKV
		if i > 0 && i < len(names)-1 {
			extra = routerSysctls[:]
		}
		n, err := l.createNS(name, extra)
		if err != nil {
			l.t.Fatalf("%v", err)
		}
		if _, err := n.ip("link set lo up\n"); err != nil {
			l.t.Fatalf("%v", err)
		}
		ns[i] = n
	}
	host, a, b1, b2, c, target := ns[0], ns[1], ns[2], ns[3], ns[4], ns[5]
	links := [][2]*NS{{host, a}, {a, b1}, {a, b2}, {b1, c}, {b2, c}, {c, target}}
	for k, p := range links {
		l4, r4 := linkAddrs4(k)
		l6, r6 := linkAddrs6(k)
		l.Link(p[0], []string{l4.String() + "/30", l6.String() + "/64"}, p[1], []string{r4.String() + "/30", r6.String() + "/64"})
	}
	via := func(k int, right bool) (string, string) {
		l4, r4 := linkAddrs4(k)
		l6, r6 := linkAddrs6(k)
		if right {
			return r4.String(), r6.String()
		}
		return l4.String(), l6.String()
	}
	route := func(n *NS, dst int, gwLink int, right bool) string {
		g4, g6 := via(gwLink, right)
		return fmt.Sprintf("route add %s via %s\nroute add %s via %s\n", linkPrefix4(dst), g4, linkPrefix6(dst), g6)
	}
	defaults := func(gwLink int, right bool) string {
		g4, g6 := via(gwLink, right)
		return fmt.Sprintf("route add 0.0.0.0/0 via %s\nroute add ::/0 via %s\n", g4, g6)
	}
	b14, b16 := via(1, true)
	b24, b26 := via(2, true)
	scripts := map[*NS]string{
		host:   defaults(0, true),
		target: defaults(5, false),
		// A: B1 and B2 as equal-cost next hops to everything past them.
		a: fmt.Sprintf("route add %s nexthop via %s nexthop via %s\nroute add %s nexthop via %s nexthop via %s\n",
			linkPrefix4(5), b14, b24, linkPrefix6(5), b16, b26) +
			route(a, 3, 1, true) + route(a, 4, 2, true),
		b1: route(b1, 0, 1, false) + route(b1, 2, 1, false) + route(b1, 5, 3, true),
		b2: route(b2, 0, 2, false) + route(b2, 1, 2, false) + route(b2, 5, 4, true),
		c:  route(c, 0, 3, false) + route(c, 1, 3, false) + route(c, 2, 4, false),
	}
	for n, s := range scripts {
		if _, err := n.ip(s); err != nil {
			l.t.Fatalf("%v", err)
		}
	}
	for _, kv := range []sysctlKV{
		{"net.ipv4.fib_multipath_hash_policy", "1"},
		{"net.ipv6.fib_multipath_hash_policy", "1"},
		{"net.ipv4.fib_multipath_hash_seed", "1"},
	} {
		a.Sysctl(l.t, kv.key, kv.value)
	}
	d := &Diamond{Host: host, A: a, B1: b1, B2: b2, C: c, Target: target}
	d.HostAddr4, _ = linkAddrs4(0)
	d.HostAddr6, _ = linkAddrs6(0)
	_, d.TargetAddr4 = linkAddrs4(5)
	_, d.TargetAddr6 = linkAddrs6(5)
	for i, k := range [][]int{{0}, {1, 2}, {3}} {
		for _, link := range k {
			_, r4 := linkAddrs4(link)
			_, r6 := linkAddrs6(link)
			d.Hops4[i] = append(d.Hops4[i], r4)
			d.Hops6[i] = append(d.Hops6[i], r6)
		}
	}
	_, c6 := linkAddrs6(4)
	d.Hops6[2] = append(d.Hops6[2], c6)
	return d
}
