package main

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/internal/netlab"
)

// inNS runs a program inside a lab namespace with a bound on its time.
func inNS(t *testing.T, ns *netlab.NS, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return runCmd(t, ns.Exec(ctx, name, args...))
}

// modes are the socket kinds gtrace is tested with. "dgram-user" runs gtrace as nobody in auto
// mode, which must pick the ping socket that the test's namespace allows.
var modes = []string{"raw", "dgram", "dgram-user"}

func gtraceIn(t *testing.T, ns *netlab.NS, mode string, args ...string) (string, string, int) {
	t.Helper()
	switch mode {
	case "raw", "dgram":
		return inNS(t, ns, gtraceBin, append([]string{"--socket=" + mode}, args...)...)
	case "dgram-user":
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("setpriv (util-linux) not installed: cannot run gtrace unprivileged")
		}
		return inNS(t, ns, setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", gtraceBin}, args...)...)
	}
	t.Fatalf("unknown mode %q", mode)
	return "", "", 0
}

type family struct {
	name    string
	dst     netip.Addr
	routers []netip.Addr
}

func families(c *netlab.Chain) []family {
	return []family{{"IPv4", c.TargetAddr4, c.RouterAddr4}, {"IPv6", c.TargetAddr6, c.RouterAddr6}}
}

// path is the hop addresses of a chain: every router, then the target.
func (f family) path() []netip.Addr {
	return append(append([]netip.Addr(nil), f.routers...), f.dst)
}

var hopRE = regexp.MustCompile(`^([ \d]\d) (.*)$`)

// probeRE matches one probe in -n output: "*", or an optional address, the time and a mark.
var probeRE = regexp.MustCompile(`^(?: \*| (?:([0-9a-f.:]+) )? ([0-9]+\.[0-9]{3}) ms(?: (![^ ]+))?)`)

type probeOut struct {
	from    string // as printed, or the address in force from an earlier probe of the line
	timeout bool
	mark    string
}

// parseHops parses -n output strictly: the header, then one line per hop in TTL order from 1,
// each with queries probes. Anything else fails the test.
func parseHops(t *testing.T, out string, queries int) [][]probeOut {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "traceroute to ") {
		t.Fatalf("no header:\n%s", out)
	}
	var hops [][]probeOut
	for i, l := range lines[1:] {
		m := hopRE.FindStringSubmatch(l)
		if m == nil || strings.TrimSpace(m[1]) != fmt.Sprint(i+1) {
			t.Fatalf("line %q is not hop %d:\n%s", l, i+1, out)
		}
		var probes []probeOut
		rest, from := m[2], ""
		for rest != "" {
			pm := probeRE.FindStringSubmatch(rest)
			if pm == nil {
				t.Fatalf("cannot parse %q in line %q", rest, l)
			}
			rest = rest[len(pm[0]):]
			if pm[0] == " *" {
				probes = append(probes, probeOut{timeout: true})
				continue
			}
			if pm[1] != "" {
				from = pm[1]
			}
			if from == "" {
				t.Fatalf("time without address in %q", l)
			}
			probes = append(probes, probeOut{from: from, mark: pm[3]})
		}
		if len(probes) != queries {
			t.Fatalf("%d probes in %q, want %d", len(probes), l, queries)
		}
		hops = append(hops, probes)
	}
	return hops
}

// wantHops checks that hop i was answered by want[i] on every probe, with no mark, except the
// hops listed in silent, which must be all "*".
func wantHops(t *testing.T, out string, queries int, want []netip.Addr, silent ...int) {
	t.Helper()
	hops := parseHops(t, out, queries)
	if len(hops) != len(want) {
		t.Fatalf("%d hops, want %d:\n%s", len(hops), len(want), out)
	}
	for i, probes := range hops {
		isSilent := false
		for _, s := range silent {
			isSilent = isSilent || s == i+1
		}
		for _, p := range probes {
			if isSilent && !p.timeout || !isSilent && (p.timeout || p.from != want[i].String() || p.mark != "") {
				t.Fatalf("hop %d: %+v, want %s (silent %v):\n%s", i+1, p, want[i], isSilent, out)
			}
		}
	}
}

// TestLabChain: chains of 3 and 10 routers, both families, every socket kind: exactly the
// N+1 hops in order, the target last, exit 0, and the shape of traceroute -I -n's output.
func TestLabChain(t *testing.T) {
	tr := needTraceroute(t)
	lab := netlab.New(t)
	for _, n := range []int{3, 10} {
		c := lab.Chain(n)
		c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
		for _, f := range families(c) {
			for _, mode := range modes {
				t.Run(fmt.Sprintf("%d/%s/%s", n, f.name, mode), func(t *testing.T) {
					out, errOut, code := gtraceIn(t, c.Host, mode, "-n", f.dst.String())
					if code != 0 || errOut != "" {
						t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
					}
					wantHops(t, out, 3, f.path())
					if mode == "raw" {
						theirs, _, _ := inNS(t, c.Host, tr, "-I", "-n", f.dst.String())
						sameShape(t, out, theirs)
					}
				})
			}
		}
	}
}

// TestLabSilentRouter: a router that sends no Time Exceeded is "*" at its hop only, the trace
// goes on to the target, and the line looks like traceroute's.
func TestLabSilentRouter(t *testing.T) {
	tr := needTraceroute(t)
	lab := netlab.New(t)
	c := lab.Chain(4)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].NoTimeExceeded(t)
	for _, f := range families(c) {
		for _, mode := range modes[:2] {
			t.Run(f.name+"/"+mode, func(t *testing.T) {
				start := time.Now()
				out, errOut, code := gtraceIn(t, c.Host, mode, "-n", "-w", "1", f.dst.String())
				if code != 0 || errOut != "" {
					t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
				}
				wantHops(t, out, 3, f.path(), 2)
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("took %v with -w 1", d)
				}
				theirs, _, _ := inNS(t, c.Host, tr, "-I", "-n", "-w", "1", f.dst.String())
				sameShape(t, out, theirs)
			})
		}
	}
}

// TestLabAdminProhibited: a router refusing to forward to the target gives "!X" on every
// probe of the hop where its filter acts, the trace ends there, and the exit is 1.
func TestLabAdminProhibited(t *testing.T) {
	tr := needTraceroute(t)
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr4, 32))
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr6, 128))
	for _, f := range families(c) {
		for _, mode := range modes {
			t.Run(f.name+"/"+mode, func(t *testing.T) {
				out, errOut, code := gtraceIn(t, c.Host, mode, "-n", f.dst.String())
				if code != 1 || errOut != "" {
					t.Fatalf("exit %d, want 1; stderr %q\n%s", code, errOut, out)
				}
				hops := parseHops(t, out, 3)
				// TTL 2 expires at router 2 before its forward filter sees it; TTL 3 is refused.
				if len(hops) != 3 {
					t.Fatalf("%d hops, want 3:\n%s", len(hops), out)
				}
				for i, want := range []netip.Addr{f.routers[0], f.routers[1], f.routers[1]} {
					for _, p := range hops[i] {
						mark := map[bool]string{true: "!X"}[i == 2]
						if p.timeout || p.from != want.String() || p.mark != mark {
							t.Fatalf("hop %d: %+v, want %s %q:\n%s", i+1, p, want, mark, out)
						}
					}
				}
				if mode == "raw" {
					theirs, _, _ := inNS(t, c.Host, tr, "-I", "-n", f.dst.String())
					sameShape(t, out, theirs)
				}
			})
		}
	}
}

// TestLabRateLimit: with the kernel's default ICMP error rate limits on a 10-router chain,
// gtrace -q 3 prints every hop with no "*", also right after traceroute and an earlier gtrace
// have used up each router's burst of 6.
func TestLabRateLimit(t *testing.T) {
	tr := needTraceroute(t)
	lab := netlab.New(t)
	c := lab.Chain(10)
	for _, r := range c.Routers {
		r.RateLimitICMPErrors(t)
	}
	for _, f := range families(c) {
		t.Run(f.name, func(t *testing.T) {
			out, errOut, code := gtraceIn(t, c.Host, "raw", "-n", "-q", "3", f.dst.String())
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
			}
			wantHops(t, out, 3, f.path())
			inNS(t, c.Host, tr, "-I", "-n", "-q", "3", f.dst.String())
			start := time.Now()
			out, errOut, code = gtraceIn(t, c.Host, "raw", "-n", "-q", "3", f.dst.String())
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
			}
			wantHops(t, out, 3, f.path())
			// Within the default wait of 5 s: the retries need about one second each.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
