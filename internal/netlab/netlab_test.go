package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pingPath returns the iputils ping binary or skips the (sub)test.
func pingPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ping")
	if err != nil {
		t.Skipf("ping (iputils-ping) not installed: %v", err)
	}
	return p
}

// ping sends count echo requests from ns to dst with the given TTL / hop
// limit (0: default) and returns ping's output and whether any reply came.
// Replies arrive within milliseconds in a lab; -W 1 only bounds the wait
// for the ones a fault suppresses.
func ping(t *testing.T, ns *NS, dst netip.Addr, ttl, count int, interval string) (string, bool) {
	t.Helper()
	args := []string{pingPath(t), "-n", "-c", fmt.Sprint(count), "-W", "1"}
	if dst.Is6() {
		args = append(args, "-6")
	} else {
		args = append(args, "-4")
	}
	if ttl > 0 {
		args = append(args, "-t", fmt.Sprint(ttl))
	}
	if interval != "" {
		args = append(args, "-i", interval)
	}
	out, err := ns.Run(append(args, dst.String())...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("ping: %v", err)
	}
	return out, err == nil
}

func TestLinkAddressPlan(t *testing.T) {
	tests := []struct {
		link       int
		left4, rt4 string
		left6, rt6 string
		pfx4, pfx6 string
	}{
		{0, "198.18.0.1", "198.18.0.2", "2001:db8::1", "2001:db8::2", "198.18.0.0/30", "2001:db8::/64"},
		{1, "198.18.1.1", "198.18.1.2", "2001:db8:0:1::1", "2001:db8:0:1::2", "198.18.1.0/30", "2001:db8:0:1::/64"},
		{10, "198.18.10.1", "198.18.10.2", "2001:db8:0:a::1", "2001:db8:0:a::2", "198.18.10.0/30", "2001:db8:0:a::/64"},
		{255, "198.18.255.1", "198.18.255.2", "2001:db8:0:ff::1", "2001:db8:0:ff::2", "198.18.255.0/30", "2001:db8:0:ff::/64"},
		{256, "198.19.0.1", "198.19.0.2", "2001:db8:0:100::1", "2001:db8:0:100::2", "198.19.0.0/30", "2001:db8:0:100::/64"},
		{MaxRouters, "198.19.255.1", "198.19.255.2", "2001:db8:0:1ff::1", "2001:db8:0:1ff::2", "198.19.255.0/30", "2001:db8:0:1ff::/64"},
	}
	benchmark := netip.MustParsePrefix("198.18.0.0/15")
	doc := netip.MustParsePrefix("2001:db8::/32")
	for _, tt := range tests {
		l4, r4 := linkAddrs4(tt.link)
		l6, r6 := linkAddrs6(tt.link)
		got := []string{l4.String(), r4.String(), l6.String(), r6.String(), linkPrefix4(tt.link).String(), linkPrefix6(tt.link).String()}
		want := []string{tt.left4, tt.rt4, tt.left6, tt.rt6, tt.pfx4, tt.pfx6}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("link %d: got %s, want %s", tt.link, got[i], want[i])
			}
		}
		for _, a := range []netip.Addr{l4, r4} {
			if !benchmark.Contains(a) || !linkPrefix4(tt.link).Contains(a) {
				t.Errorf("link %d: %v outside %v or its link prefix", tt.link, a, benchmark)
			}
		}
		for _, a := range []netip.Addr{l6, r6} {
			if !doc.Contains(a) || !linkPrefix6(tt.link).Contains(a) {
				t.Errorf("link %d: %v outside %v or its link prefix", tt.link, a, doc)
			}
		}
	}
	// Distinct links never share a prefix.
	seen := make(map[netip.Prefix]int)
	for i := 0; i <= MaxRouters; i++ {
		for _, p := range []netip.Prefix{linkPrefix4(i), linkPrefix6(i)} {
			if j, ok := seen[p]; ok {
				t.Fatalf("links %d and %d share %v", j, i, p)
			}
			seen[p] = i
		}
	}
}

func TestChain(t *testing.T) {
	l := New(t)
	c := l.Chain(3)
	if len(c.Routers) != 3 || len(c.RouterAddr4) != 3 || len(c.RouterAddr6) != 3 {
		t.Fatalf("chain has %d routers, %d/%d router addresses; want 3", len(c.Routers), len(c.RouterAddr4), len(c.RouterAddr6))
	}
	// Each node really owns the address the Chain reports for it.
	owns := map[*NS][]netip.Addr{
		c.Host:   {c.HostAddr4, c.HostAddr6},
		c.Target: {c.TargetAddr4, c.TargetAddr6},
	}
	for i, r := range c.Routers {
		owns[r] = []netip.Addr{c.RouterAddr4[i], c.RouterAddr6[i]}
	}
	for ns, addrs := range owns {
		out := ns.MustRun(t, "ip", "-br", "address", "show")
		for _, a := range addrs {
			if !strings.Contains(out, a.String()+"/") {
				t.Errorf("%s does not own %v:\n%s", ns.Name(), a, out)
			}
		}
	}

	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		t.Run("echo/"+dst.String(), func(t *testing.T) {
			if out, ok := ping(t, c.Host, dst, 0, 1, ""); !ok || !strings.Contains(out, "1 received") {
				t.Errorf("ping %v from host failed:\n%s", dst, out)
			}
		})
	}
	t.Run("ttl2", func(t *testing.T) {
		out, ok := ping(t, c.Host, c.TargetAddr4, 2, 1, "")
		want := "From " + c.RouterAddr4[1].String() + " icmp_seq=1 Time to live exceeded"
		if ok || !strings.Contains(out, want) {
			t.Errorf("ping -t 2: want %q in:\n%s", want, out)
		}
	})
	t.Run("hoplimit2", func(t *testing.T) {
		out, ok := ping(t, c.Host, c.TargetAddr6, 2, 1, "")
		want := "From " + c.RouterAddr6[1].String() + " icmp_seq=1 Time exceeded: Hop limit"
		if ok || !strings.Contains(out, want) {
			t.Errorf("ping -6 -t 2: want %q in:\n%s", want, out)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		for _, dst := range []netip.Addr{c.HostAddr4, c.HostAddr6} {
			if out, ok := ping(t, c.Target, dst, 0, 1, ""); !ok {
				t.Errorf("ping %v from target failed:\n%s", dst, out)
			}
		}
	})
	t.Run("unknown destination", func(t *testing.T) {
		// Routers have no default route, so the first one reports the
		// destination unreachable instead of the probe looping.
		out, ok := ping(t, c.Host, netip.MustParseAddr("198.18.200.1"), 0, 1, "")
		want := "From " + c.RouterAddr4[0].String() + " icmp_seq=1 Destination Net Unreachable"
		if ok || !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	})
}

// TestLongChain checks the build time the brief asks for and every hop of a
// 10-router chain in both families, as a traceroute would see it.
func TestLongChain(t *testing.T) {
	l := New(t)
	start := time.Now()
	c := l.Chain(10)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Chain(10) took %v, want well under 5s", d)
	} else {
		t.Logf("Chain(10) built in %v", d)
	}
	for i := range c.Routers {
		for _, hop := range []struct {
			dst, from netip.Addr
			msg       string
		}{
			{c.TargetAddr4, c.RouterAddr4[i], "Time to live exceeded"},
			{c.TargetAddr6, c.RouterAddr6[i], "Time exceeded: Hop limit"},
		} {
			out, _ := ping(t, c.Host, hop.dst, i+1, 1, "")
			if want := "From " + hop.from.String() + " icmp_seq=1 " + hop.msg; !strings.Contains(out, want) {
				t.Errorf("hop %d: want %q in:\n%s", i+1, want, out)
			}
		}
	}
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		if out, ok := ping(t, c.Host, dst, 11, 1, ""); !ok {
			t.Errorf("ping -t 11 %v failed:\n%s", dst, out)
		}
	}
}

func TestChainWithoutRouters(t *testing.T) {
	l := New(t)
	c := l.Chain(0)
	if c.HostAddr4 != netip.MustParseAddr("198.18.0.1") || c.TargetAddr4 != netip.MustParseAddr("198.18.0.2") {
		t.Errorf("addresses %v, %v; want link 0's .1 and .2", c.HostAddr4, c.TargetAddr4)
	}
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		if out, ok := ping(t, c.Host, dst, 1, 1, ""); !ok {
			t.Errorf("ping -t 1 %v over a direct link failed:\n%s", dst, out)
		}
	}
	// A second chain in the same lab gets its own names.
	c2 := l.Chain(1)
	if c2.Host.Name() == c.Host.Name() || !strings.HasSuffix(c2.Host.Name(), "-c2host") {
		t.Errorf("second chain host %q, first %q", c2.Host.Name(), c.Host.Name())
	}
}

func TestDo(t *testing.T) {
	l := New(t)
	a, b := l.NewNS("a"), l.NewNS("b")
	if got := a.Path(); got != "/run/netns/"+a.Name() {
		t.Errorf("Path() = %q", got)
	}
	l.Link(a, []string{"198.18.0.1/30", "2001:db8::1/64"}, b, []string{"198.18.0.2/30", "2001:db8::2/64"})

	hostHas := func(addr string) bool {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range addrs {
			if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().String() == addr {
				return true
			}
		}
		return false
	}
	for _, addr := range []string{"198.18.0.1", "2001:db8::1"} {
		if hostHas(addr) {
			t.Logf("host owns %s itself; skipping the outside-the-namespace check", addr)
			continue
		}
		if c, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0")); err == nil {
			c.Close()
			t.Errorf("listening on %s worked outside the namespace", addr)
		}
	}

	listen := func(ns *NS, addr string) net.PacketConn {
		var c net.PacketConn
		err := ns.Do(func() error {
			var err error
			c, err = net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
			return err
		})
		if err != nil {
			t.Fatalf("listen on %s in %s: %v", addr, ns.Name(), err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Sockets made in Do stay in their namespace after Do returns: a
	// datagram crosses the veth from a to b.
	for _, fam := range [][2]string{{"198.18.0.1", "198.18.0.2"}, {"2001:db8::1", "2001:db8::2"}} {
		ca, cb := listen(a, fam[0]), listen(b, fam[1])
		if _, err := ca.WriteTo([]byte("hello "+fam[0]), cb.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		// The deadline only bounds a failure; the datagram is already queued.
		cb.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := cb.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: %v", fam[1], err)
		}
		if string(buf[:n]) != "hello "+fam[0] || from.(*net.UDPAddr).IP.String() != fam[0] {
			t.Errorf("got %q from %v", buf[:n], from)
		}
	}

	errFn := errors.New("from fn")
	if err := a.Do(func() error { return fmt.Errorf("wrapped: %w", errFn) }); !errors.Is(err, errFn) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want fn's panic", p)
			}
		}()
		a.Do(func() error { panic("boom") })
	}()
	// Do leaves the caller in the host namespace (many calls, to meet reused threads).
	for range 20 {
		if err := a.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !hostHas("198.18.0.1") {
		if c, err := net.ListenPacket("udp4", "198.18.0.1:0"); err == nil {
			c.Close()
			t.Error("after Do, 198.18.0.1 is usable outside the namespace")
		}
	}
}

func TestRunErrors(t *testing.T) {
	l := New(t)
	n := l.NewNS("x")
	if _, err := n.Run(); !errors.Is(err, ErrNoCommand) {
		t.Errorf("Run() = %v, want ErrNoCommand", err)
	}
	out, err := n.Run("sh", "-c", "echo out; echo err >&2; exit 3")
	var exit *exec.ExitError
	if !errors.Is(err, ErrCommand) || !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("Run(exit 3) = %v", err)
	}
	if out != "out\nerr\n" {
		t.Errorf("combined output %q", out)
	}
	// Run executes inside the namespace: only lo exists there.
	if got := n.MustRun(t, "ls", "/sys/class/net"); strings.TrimSpace(got) != "lo" {
		t.Errorf("interfaces in a new namespace: %q, want lo", got)
	}
	// Sysctl writes the namespace's value and leaves the host's alone.
	hostTTL, err := os.ReadFile("/proc/sys/net/ipv4/ip_default_ttl")
	if err != nil {
		t.Fatal(err)
	}
	ttl := "33"
	if string(hostTTL) == "33\n" {
		ttl = "34"
	}
	n.Sysctl(t, "net.ipv4.ip_default_ttl", ttl)
	if got := n.MustRun(t, "cat", "/proc/sys/net/ipv4/ip_default_ttl"); got != ttl+"\n" {
		t.Errorf("ip_default_ttl in namespace = %q, want %s", got, ttl)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_default_ttl"); err != nil || string(b) != string(hostTTL) {
		t.Errorf("host ip_default_ttl changed from %q to %q (%v)", hostTTL, b, err)
	}
	if got := n.MustRun(t, "sysctl", "-n", "net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"); got != "0\n0\n" {
		t.Errorf("accept_dad all/default = %q, want 0 0", got)
	}
}

func TestConcurrentNewNS(t *testing.T) {
	l := New(t)
	const count = 8
	nss := make([]*NS, count)
	var wg sync.WaitGroup
	for i := range nss {
		wg.Go(func() {
			// createNS, not NewNS: t.Fatalf belongs on the test goroutine.
			n, err := l.createNS(fmt.Sprintf("n%d", i), nil)
			if err != nil {
				t.Error(err)
			}
			nss[i] = n
		})
	}
	wg.Wait()
	seen := make(map[string]bool)
	for _, n := range nss {
		if n == nil {
			t.FailNow()
		}
		if seen[n.Name()] || !labNSPattern.MatchString(n.Name()) {
			t.Errorf("bad or duplicate name %q", n.Name())
		}
		seen[n.Name()] = true
		if _, err := os.Stat(n.Path()); err != nil {
			t.Error(err)
		}
	}
	for _, name := range []string{"n3", "", "-x", "a b", "a/b"} {
		if _, err := l.createNS(name, nil); err == nil {
			t.Errorf("createNS(%q) succeeded; want duplicate or bad-name error", name)
		}
	}
}

func TestFaults(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil && os.Getenv(requireEnv) != "1" {
		t.Skipf("nft not installed: %v", err)
	}
	t.Run("DropPercent", func(t *testing.T) {
		t.Parallel()
		c := New(t).Chain(1)
		for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
			if out, ok := ping(t, c.Host, dst, 0, 1, ""); !ok {
				t.Fatalf("ping %v before the fault failed:\n%s", dst, out)
			}
		}
		c.Routers[0].DropPercent(t, 100)
		for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
			if out, ok := ping(t, c.Host, dst, 0, 1, ""); ok || !strings.Contains(out, "0 received") {
				t.Errorf("ping %v through 100%% loss:\n%s", dst, out)
			}
		}
	})
	t.Run("RejectAdminProhibited", func(t *testing.T) {
		t.Parallel()
		c := New(t).Chain(2)
		c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr4, 32))
		c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr6, 64))
		for _, tt := range []struct {
			dst  netip.Addr
			want string
		}{
			{c.TargetAddr4, "From " + c.RouterAddr4[1].String() + " icmp_seq=1 Packet filtered"},
			{c.TargetAddr6, "From " + c.RouterAddr6[1].String() + " icmp_seq=1 Destination unreachable: Administratively prohibited"},
		} {
			if out, ok := ping(t, c.Host, tt.dst, 0, 1, ""); ok || !strings.Contains(out, tt.want) {
				t.Errorf("want %q in:\n%s", tt.want, out)
			}
		}
		// Traffic to the router itself is not filtered.
		if out, ok := ping(t, c.Host, c.RouterAddr4[1], 0, 1, ""); !ok {
			t.Errorf("ping router:\n%s", out)
		}
	})
	t.Run("NoTimeExceeded", func(t *testing.T) {
		t.Parallel()
		c := New(t).Chain(2)
		hops := []struct {
			dst  netip.Addr
			want string
		}{
			{c.TargetAddr4, "Time to live exceeded"},
			{c.TargetAddr6, "Time exceeded: Hop limit"},
		}
		for _, h := range hops {
			if out, _ := ping(t, c.Host, h.dst, 1, 1, ""); !strings.Contains(out, h.want) {
				t.Fatalf("before the fault, want %q in:\n%s", h.want, out)
			}
		}
		c.Routers[0].NoTimeExceeded(t)
		for _, h := range hops {
			if out, _ := ping(t, c.Host, h.dst, 1, 1, ""); strings.Contains(out, h.want) || strings.Contains(out, "From ") {
				t.Errorf("silent router still answered:\n%s", out)
			}
			// The next router still speaks.
			if out, _ := ping(t, c.Host, h.dst, 2, 1, ""); !strings.Contains(out, h.want) {
				t.Errorf("hop 2: want %q in:\n%s", h.want, out)
			}
		}
	})
	t.Run("NoEchoReply", func(t *testing.T) {
		t.Parallel()
		c := New(t).Chain(0)
		c.Target.NoEchoReply(t)
		for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
			if out, ok := ping(t, c.Host, dst, 0, 1, ""); ok || !strings.Contains(out, "0 received") {
				t.Errorf("ping %v answered:\n%s", dst, out)
			}
		}
	})
	t.Run("RateLimitICMPErrors", func(t *testing.T) {
		t.Parallel()
		l := New(t)
		c := l.Chain(1)
		const probes = 50
		count := func(dst netip.Addr, msg string) int {
			out, _ := ping(t, c.Host, dst, 1, probes, "0.002")
			return strings.Count(out, msg)
		}
		v4, v6 := "Time to live exceeded", "Time exceeded: Hop limit"
		// Chain's routers answer every expiring probe ...
		if n := count(c.TargetAddr4, v4); n != probes {
			t.Errorf("unlimited router: %d/%d IPv4 time exceeded", n, probes)
		}
		if n := count(c.TargetAddr6, v6); n != probes {
			t.Errorf("unlimited router: %d/%d IPv6 time exceeded", n, probes)
		}
		// ... until the kernel's limits are back: a burst of 6 per
		// destination, then one per ratelimit ms.
		c.Routers[0].RateLimitICMPErrors(t)
		fresh := l.NewNS("fresh")
		want := fresh.MustRun(t, append([]string{"sysctl"}, icmpLimitKeys[:]...)...)
		if got := c.Routers[0].MustRun(t, append([]string{"sysctl"}, icmpLimitKeys[:]...)...); got != want {
			t.Errorf("restored limits:\n%s\nfresh namespace:\n%s", got, want)
		}
		if n := count(c.TargetAddr4, v4); n == 0 || n > probes/2 {
			t.Errorf("rate-limited router: %d/%d IPv4 time exceeded", n, probes)
		}
		if n := count(c.TargetAddr6, v6); n == 0 || n > probes/2 {
			t.Errorf("rate-limited router: %d/%d IPv6 time exceeded", n, probes)
		}
	})
	t.Run("Nft", func(t *testing.T) {
		t.Parallel()
		c := New(t).Chain(0)
		c.Target.Nft(t, `table ip custom {
	chain in {
		type filter hook input priority 0; policy accept;
		icmp type echo-request drop
	}
}`)
		if out, ok := ping(t, c.Host, c.TargetAddr4, 0, 1, ""); ok {
			t.Errorf("IPv4 ping passed a custom drop rule:\n%s", out)
		}
		if out, ok := ping(t, c.Host, c.TargetAddr6, 0, 1, ""); !ok {
			t.Errorf("IPv6 ping hit an IPv4-only rule:\n%s", out)
		}
	})
}

// listLabNS returns the names in /run/netns that start with prefix.
func listLabNS(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestCleanup(t *testing.T) {
	var prefix, pidFile string
	ok := t.Run("lab", func(t *testing.T) {
		l := New(t)
		prefix, pidFile = nsPrefix+l.id+"-", l.pidFile
		a, b := l.NewNS("a"), l.NewNS("b")
		l.Link(a, []string{"198.18.0.1/30"}, b, []string{"198.18.0.2/30"})
		l.Chain(2)
		if got := listLabNS(t, prefix); len(got) != 7 { // probe, a, b, host, r1, r2, target
			t.Errorf("lab namespaces: %v", got)
		}
	})
	if !ok || prefix == "" {
		t.Skip("sub-lab did not run")
	}
	if left := listLabNS(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after cleanup: %v", left)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file %s left after cleanup: %v", pidFile, err)
	}
}

func TestStaleLabsRemoved(t *testing.T) {
	New(t) // skips unless labs can run here
	// A lab whose process has exited, and one owned by this live process.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	self, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	fake := func(id string, pid int, start uint64) (string, string) {
		ns := nsPrefix + id + "-stale"
		pidFile := filepath.Join(os.TempDir(), "gpinglab-"+id+".pid")
		if err := os.WriteFile(pidFile, fmt.Appendf(nil, "%d %d\n", pid, start), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := runInput("", "ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			runInput("", "ip", "netns", "del", ns)
			os.Remove(pidFile)
		})
		return ns, pidFile
	}
	ids := make([]string, 2)
	for i := range ids {
		l := &Lab{}
		if err := l.reserveID(); err != nil {
			t.Fatal(err)
		}
		ids[i] = l.id
	}
	deadNS, deadPid := fake(ids[0], exited.Process.Pid, 1)
	liveNS, livePid := fake(ids[1], os.Getpid(), self)

	New(t)
	if got := listLabNS(t, deadNS); len(got) != 0 {
		t.Errorf("stale namespace %s survived", deadNS)
	}
	if _, err := os.Stat(deadPid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale pid file %s survived: %v", deadPid, err)
	}
	if got := listLabNS(t, liveNS); len(got) != 1 {
		t.Errorf("live lab's namespace %s was deleted", liveNS)
	}
	if _, err := os.Stat(livePid); err != nil {
		t.Errorf("live lab's pid file: %v", err)
	}
}

func TestNewRequireLab(t *testing.T) {
	// Without root New must skip, or fail under GPING_REQUIRE_LAB=1, giving
	// the reason. The test binary runs itself as a child to observe that.
	if os.Getenv("NETLAB_CHILD") == "1" {
		New(t)
		t.Fatal("New returned without root")
	}
	bin := os.Args[0]
	if os.Geteuid() == 0 {
		// Drop to nobody, who cannot read the go build cache: run a copy.
		dir, err := os.MkdirTemp("", "netlab-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(dir, "netlab.test")
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		require string
		want    string
	}{
		{"", "--- SKIP"},
		{"1", "--- FAIL"},
	} {
		cmd := exec.Command(bin, "-test.run=^TestNewRequireLab$", "-test.v")
		cmd.Env = append(os.Environ(), "NETLAB_CHILD=1", requireEnv+"="+tt.require)
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Skipf("cannot run the test binary as nobody: %v", err)
		}
		if !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "need root") {
			t.Errorf("%s=%q: want %q and the reason in:\n%s", requireEnv, tt.require, tt.want, out)
		}
	}
}
