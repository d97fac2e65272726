package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/cmdtest"
	"github.com/gping/gping/internal/netlab"
)

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
	tr := cmdtest.NeedTool(t, "traceroute")
	lab := netlab.New(t)
	for _, n := range []int{3, 10} {
		c := lab.Chain(n)
		c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
		for _, f := range families(c) {
			for _, mode := range cmdtest.Modes {
				t.Run(fmt.Sprintf("%d/%s/%s", n, f.name, mode), func(t *testing.T) {
					out, errOut, code := cmdtest.InMode(t, c.Host, mode, gtraceBin, "-n", f.dst.String())
					if code != 0 || errOut != "" {
						t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
					}
					wantHops(t, out, 3, f.path())
					if mode == "raw" {
						theirs, _, _ := cmdtest.InNS(t, c.Host, tr, "-I", "-n", f.dst.String())
						sameShapeAsPeer(t, out, theirs)
					}
				})
			}
		}
	}
}

// sameShapeAsPeer compares the shape of gtrace's output with traceroute's, unless traceroute
// printed a "*" where gtrace had answers: its HERE wait, 3 times sub-millisecond lab RTTs, can
// run out under CI load (seen with -T), and then the peer, not gtrace, is wrong.
func sameShapeAsPeer(t *testing.T, ours, theirs string) {
	t.Helper()
	if strings.Contains(theirs, "*") && !strings.Contains(ours, "*") {
		t.Logf("traceroute printed '*' where gtrace had answers; shapes not compared:\n%s", theirs)
		return
	}
	cmdtest.SameShape(t, ours, theirs)
}

// TestLabSilentRouter: a router that sends no Time Exceeded is "*" at its hop only, the trace
// goes on to the target, and the line looks like traceroute's. With the default -w 5,3,10 the
// silent hop takes its NEAR wait, not 5 s: the whole run is over within a second.
func TestLabSilentRouter(t *testing.T) {
	tr := cmdtest.NeedTool(t, "traceroute")
	lab := netlab.New(t)
	c := lab.Chain(4)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].NoTimeExceeded(t)
	for _, f := range families(c) {
		for _, mode := range cmdtest.Modes[:2] {
			t.Run(f.name+"/"+mode, func(t *testing.T) {
				start := time.Now()
				out, errOut, code := cmdtest.InMode(t, c.Host, mode, gtraceBin, "-n", f.dst.String())
				if code != 0 || errOut != "" {
					t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
				}
				wantHops(t, out, 3, f.path(), 2)
				if d := time.Since(start); d > time.Second {
					t.Errorf("took %v", d)
				}
				theirs, _, _ := cmdtest.InNS(t, c.Host, tr, "-I", "-n", f.dst.String())
				cmdtest.SameShape(t, out, theirs)
			})
		}
	}
}

// TestLabAdminProhibited: a router refusing to forward to the target gives "!X" on every
// probe of the hop where its filter acts, the trace ends there, and the exit is 1.
func TestLabAdminProhibited(t *testing.T) {
	tr := cmdtest.NeedTool(t, "traceroute")
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr4, 32))
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr6, 128))
	for _, f := range families(c) {
		for _, mode := range cmdtest.Modes {
			t.Run(f.name+"/"+mode, func(t *testing.T) {
				out, errOut, code := cmdtest.InMode(t, c.Host, mode, gtraceBin, "-n", f.dst.String())
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
					theirs, _, _ := cmdtest.InNS(t, c.Host, tr, "-I", "-n", f.dst.String())
					sameShapeAsPeer(t, out, theirs)
				}
			})
		}
	}
}

// TestLabRateLimit: with the kernel's default ICMP error rate limits on a 10-router chain,
// gtrace -q 3 prints every hop with no "*", also right after traceroute and an earlier gtrace
// have used up each router's burst of 6.
func TestLabRateLimit(t *testing.T) {
	tr := cmdtest.NeedTool(t, "traceroute")
	lab := netlab.New(t)
	c := lab.Chain(10)
	for _, r := range c.Routers {
		r.RateLimitICMPErrors(t)
	}
	for _, f := range families(c) {
		t.Run(f.name, func(t *testing.T) {
			out, errOut, code := cmdtest.InMode(t, c.Host, "raw", gtraceBin, "-n", "-q", "3", f.dst.String())
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
			}
			wantHops(t, out, 3, f.path())
			cmdtest.InNS(t, c.Host, tr, "-I", "-n", "-q", "3", f.dst.String())
			start := time.Now()
			out, errOut, code = cmdtest.InMode(t, c.Host, "raw", gtraceBin, "-n", "-q", "3", f.dst.String())
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

// reportRow is one hop line of a --report table.
type reportRow struct {
	ttl      int
	host     string
	loss     float64
	sent     int
	last     float64
	avg      float64
	best     float64
	worst    float64
	stdev    float64
	extraIPs []string
}

var reportRowRE = regexp.MustCompile(`^ {0,2}(\d+)\.\|-- (\S+) +(\d+\.\d)%? +(\d+) +(\d+\.\d) +(\d+\.\d) +(\d+\.\d) +(\d+\.\d) +(\d+\.\d)$`)

// parseReport parses a --report table strictly: the Start and HOST lines, then hop lines
// numbered from 1, each maybe followed by lines of further addresses.
func parseReport(t *testing.T, out string) []reportRow {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "Start: ") || !strings.HasPrefix(lines[1], "HOST: ") ||
		!strings.HasSuffix(lines[1], "Loss%   Snt   Last   Avg  Best  Wrst StDev") {
		t.Fatalf("no report header:\n%s", out)
	}
	var rows []reportRow
	for _, l := range lines[2:] {
		if strings.HasPrefix(l, "    |  `|-- ") || strings.HasPrefix(l, "    |   |-- ") {
			if len(rows) == 0 {
				t.Fatalf("address line before any hop:\n%s", out)
			}
			rows[len(rows)-1].extraIPs = append(rows[len(rows)-1].extraIPs, l[12:])
			continue
		}
		m := reportRowRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("cannot parse report line %q:\n%s", l, out)
		}
		f := make([]float64, len(m))
		for i := 3; i < len(m); i++ {
			f[i], _ = strconv.ParseFloat(m[i], 64)
		}
		ttl, _ := strconv.Atoi(m[1])
		if ttl != len(rows)+1 {
			t.Fatalf("line %q is not hop %d:\n%s", l, len(rows)+1, out)
		}
		rows = append(rows, reportRow{ttl: ttl, host: m[2], loss: f[3], sent: int(f[4]), last: f[5], avg: f[6],
			best: f[7], worst: f[8], stdev: f[9]})
	}
	return rows
}

// TestLabReport: --report on a 3-router chain. Clean, every hop has 0% loss and the count of
// rounds sent, and the table has the shape of mtr -r's in the same namespace. With the second
// router dropping 30% of what it receives, forwards and sends, the first hop keeps 0% loss and
// every hop from the second on shows loss, each probe counted once (no retries hide it).
func TestLabReport(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(3)
	f := families(c)[0]
	t.Run("clean", func(t *testing.T) {
		for _, fam := range families(c) {
			out, rows := runReport(t, c, fam.dst, 5, 4)
			for i, r := range rows {
				if r.host != fam.path()[i].String() || r.loss != 0 || r.sent != 5 || r.best > r.avg || r.avg > r.worst || r.worst <= 0 && r.avg < 0 {
					t.Errorf("row %+v, want %s with 5 sent, no loss:\n%s", r, fam.path()[i], out)
				}
			}
			if _, err := exec.LookPath("mtr"); err != nil || fam.dst.Is6() {
				continue // mtr takes seconds: one family is enough to compare the layout
			}
			theirs, _, _ := cmdtest.InNS(t, c.Host, "mtr", "-r", "-c", "2", "-n", fam.dst.String())
			ours := strings.Split(out, "\n")
			mine := strings.Split(theirs, "\n")
			if len(ours) != len(mine) {
				t.Fatalf("%d lines, mtr %d:\n%s\n%s", len(ours), len(mine), out, theirs)
			}
			for i := range ours {
				// Same columns: every field ends where mtr's does.
				if len(ours[i]) != len(mine[i]) || i > 0 && shapeLine(ours[i]) != shapeLine(mine[i]) {
					t.Errorf("line %d differs from mtr's:\n%q\n%q", i, ours[i], mine[i])
				}
			}
		}
	})
	t.Run("loss", func(t *testing.T) {
		c.Routers[1].DropPercent(t, 30)
		const rounds = 40
		out, rows := runReport(t, c, f.dst, rounds, 4)
		for i, r := range rows {
			// Beyond router 2 a probe and its answer cross it twice: about 51% loss. 10..95%
			// leaves the binomial a margin of over five standard deviations.
			lo, hi := 10.0, 95.0
			if i == 0 {
				lo, hi = 0, 0
			}
			if r.sent != rounds || r.loss < lo || r.loss > hi || r.host != f.path()[i].String() {
				t.Errorf("row %+v: want %s, %d sent, loss in %v..%v%%:\n%s", r, f.path()[i], rounds, lo, hi, out)
			}
		}
	})
}

// runReport runs gtrace --report for rounds rounds at full speed to dst on c's host, on a raw
// socket, and returns its output and rows; it fails t unless gtrace succeeds quietly with hops
// rows.
func runReport(t *testing.T, c *netlab.Chain, dst netip.Addr, rounds, hops int) (string, []reportRow) {
	t.Helper()
	out, errOut, code := cmdtest.InMode(t, c.Host, "raw", gtraceBin, "--report", "-c", strconv.Itoa(rounds), "--interval", "0", "-n", dst.String())
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	rows := parseReport(t, out)
	if len(rows) != hops {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), hops, out)
	}
	return out, rows
}

// shapeLine replaces the numbers and addresses of a line so that two reports compare.
func shapeLine(l string) string {
	l = regexp.MustCompile(`[0-9a-f:.]*[0-9][0-9a-f:.]*`).ReplaceAllString(l, "N")
	return l
}

// TestLabReportUntilInterrupted: -c 0 runs rounds until SIGINT, then prints the table of the
// rounds so far and exits 0.
func TestLabReportUntilInterrupted(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(2)
	f := families(c)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	cmd := c.Host.Exec(ctx, gtraceBin, "--socket=raw", "--report", "-c", "0", "--interval", "0.1", "-n", f.dst.String())
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	// Wait reports the context's end even when the process, interrupted, exits 0.
	if err := cmd.Run(); cmd.ProcessState == nil {
		t.Fatalf("%v", err)
	}
	out, errOut, code := o.String(), e.String(), cmd.ProcessState.ExitCode()
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	rows := parseReport(t, out)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3:\n%s", len(rows), out)
	}
	for i, r := range rows {
		// About seven rounds fit before the signal; the one it cut short may lack hops.
		if r.host != f.path()[i].String() || r.sent < 2 || r.sent > 8 || r.sent < rows[0].sent-1 {
			t.Errorf("row %+v:\n%s", r, out)
		}
	}
}

// TestLabMethods: -U (Paris and --classic) and -T through 3 routers, both families, every
// socket kind (as nobody: a UDP socket's error queue and connect()): the 4 hops in order, exit
// 0, and the shape of traceroute's own -U / -T output in the same namespace.
func TestLabMethods(t *testing.T) {
	tr := cmdtest.NeedTool(t, "traceroute")
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	// Back-to-back runs would empty the target's port-unreachable bucket (burst 6); the
	// trace package tests that case.
	c.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	c.Target.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	for _, m := range [][]string{{"-U"}, {"-U", "--classic"}, {"-T"}, {"-U", "-p", "53"}, {"-T", "-p", "22"}} {
		for _, f := range families(c) {
			for _, mode := range cmdtest.Modes {
				t.Run(fmt.Sprintf("%s/%s/%s", strings.Join(m, ""), f.name, mode), func(t *testing.T) {
					out, errOut, code := cmdtest.InMode(t, c.Host, mode, gtraceBin, append(append([]string{"-n"}, m...), f.dst.String())...)
					if code != 0 || errOut != "" {
						t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
					}
					wantHops(t, out, 3, f.path())
					if mode == "raw" {
						peerArgs := []string{"-n"}
						for _, a := range m {
							if a != "--classic" { // traceroute's own UDP default is classic
								peerArgs = append(peerArgs, a)
							}
						}
						theirs, _, _ := cmdtest.InNS(t, c.Host, tr, append(peerArgs, f.dst.String())...)
						sameShapeAsPeer(t, out, theirs)
					}
				})
			}
		}
	}
}

// TestLabMTU: a 1400-byte link behind the second router: --mtu prints the route's MTU as the
// packet size, F=1400 once, on the first probe of hop 3, and every hop answered.
func TestLabMTU(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(3)
	c.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	c.Target.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	for _, link := range []struct {
		ns   *netlab.NS
		peer netip.Addr
	}{{c.Routers[1], c.RouterAddr4[2]}, {c.Routers[2], c.RouterAddr4[1]}} {
		dev := ""
		fields := strings.Fields(link.ns.MustRun(t, "ip", "-o", "route", "get", link.peer.String()))
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] == "dev" {
				dev = fields[i+1]
			}
		}
		link.ns.MustRun(t, "ip", "link", "set", "dev", dev, "mtu", "1400")
	}
	for _, m := range []string{"-I", "-U"} {
		for _, f := range families(c) {
			t.Run(m+"/"+f.name, func(t *testing.T) {
				out, errOut, code := cmdtest.InNS(t, c.Host, gtraceBin, "-n", "--mtu", m, f.dst.String())
				if code != 0 || errOut != "" {
					t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if !strings.HasSuffix(lines[0], ", 1500 byte packets") {
					t.Errorf("header %q, want the route's 1500 byte packets", lines[0])
				}
				if n := strings.Count(out, "F="); n != 1 || !strings.Contains(lines[3], " ms F=1400 ") {
					t.Errorf("want one F=1400, after hop 3's first RTT:\n%s", out)
				}
				// wantHops reads the RTTs; the mark is not one.
				wantHops(t, strings.ReplaceAll(out, " F=1400", ""), 3, f.path())
			})
		}
	}
}

// TestLabMultipath: on the ECMP diamond, --multipath -U prints both branches on the second
// hop's line, each with an RTT, one address on the first, the target last; a Paris trace of
// the same path names one branch only. Which flows take which branch depends on the source
// port, the kernel's choice: at the default 95% MDA misses a branch 3% of the time, by design,
// so the test asks for 99.9999%.
func TestLabMultipath(t *testing.T) {
	lab := netlab.New(t)
	d := lab.Diamond()
	for _, kv := range [][2]string{{"net.ipv4.icmp_ratelimit", "0"}, {"net.ipv6.icmp.ratelimit", "0"},
		{"net.ipv4.icmp_ratemask", "0"}, {"net.ipv6.icmp.ratemask", ""}} {
		d.Target.Sysctl(t, kv[0], kv[1])
	}
	for _, f := range []struct {
		dst  netip.Addr
		hops [3][]netip.Addr
	}{{d.TargetAddr4, d.Hops4}, {d.TargetAddr6, d.Hops6}} {
		t.Run(icmp.FamilyOf(f.dst).String(), func(t *testing.T) {
			out, errOut, code := cmdtest.InNS(t, d.Host, gtraceBin, "-n", "-U", "--multipath", "--confidence", "99.9999", f.dst.String())
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")[1:]
			if len(lines) != 4 {
				t.Fatalf("%d hops, want 4:\n%s", len(lines), out)
			}
			for i, want := range [][]netip.Addr{f.hops[0], f.hops[1], nil, {f.dst}} {
				for _, a := range want {
					if !strings.Contains(lines[i], " "+a.String()+"  ") {
						t.Errorf("hop %d %q lacks %s", i+1, lines[i], a)
					}
				}
			}
			out, _, _ = cmdtest.InNS(t, d.Host, gtraceBin, "-n", "-U", "-q", "10", "-m", "2", f.dst.String())
			hop2 := strings.Split(strings.TrimSpace(out), "\n")[2]
			if strings.Contains(hop2, f.hops[1][0].String()) == strings.Contains(hop2, f.hops[1][1].String()) {
				t.Errorf("Paris hop 2 %q, want exactly one branch", hop2)
			}
		})
	}
}
