package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/internal/cmdtest"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

func TestFpingMode(t *testing.T) {
	file := t.TempDir() + "/hosts"
	if err := os.WriteFile(file, []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"127.0.0.1"}, false},
		{[]string{"-c", "3", "-i", "0.2", "127.0.0.1"}, false},
		{[]string{"-f", "127.0.0.1"}, false}, // iputils flood
		{[]string{"-s", "100", "host"}, false},
		{[]string{"-I", "eth0", "host"}, false},
		{[]string{"-c3", "host", "-t", "9"}, false},
		{[]string{"-Q", "0x20", "host"}, false},
		{[]string{"-m", "0x10", "-Q", "010", "host"}, false},
		{[]string{"a", "b"}, true},
		{[]string{"-c", "3", "a", "b"}, true},
		{[]string{"198.18.0.0/24"}, true},
		{[]string{"198.18.0.1-198.18.0.9"}, true},
		{[]string{"-"}, true},
		{[]string{"-g", "198.18.0.1", "198.18.0.9"}, true},
		{[]string{"-f", file}, true}, // fping reads a file that exists
		{[]string{"-s", "-c", "1", "198.18.0.0/30"}, true},
		{[]string{"-q", "-s", "host1", "host2"}, true},
		{[]string{"--", "a", "b"}, true},
	} {
		if got := fpingMode(c.args); got != c.want {
			t.Errorf("fpingMode(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestExpandTarget(t *testing.T) {
	for _, c := range []struct {
		in    string
		first string
		last  string
		n     int
		err   bool
	}{
		{"198.18.0.0/30", "198.18.0.1", "198.18.0.2", 2, false}, // network and broadcast skipped, as fping -g
		{"198.18.0.0/31", "198.18.0.0", "198.18.0.1", 2, false},
		{"198.18.0.7/32", "198.18.0.7", "198.18.0.7", 1, false},
		{"198.18.0.0/24", "198.18.0.1", "198.18.0.254", 254, false},
		{"2001:db8::/126", "2001:db8::", "2001:db8::3", 4, false},
		{"198.18.0.250-198.18.1.2", "198.18.0.250", "198.18.1.2", 9, false},
		{"2001:db8::1-2001:db8::3", "2001:db8::1", "2001:db8::3", 3, false},
		{"2001:db8::/64", "", "", 0, true},
		{"198.18.0.9-198.18.0.1", "", "", 0, true},
		{"198.18.0.1-2001:db8::1", "", "", 0, true},
	} {
		got, isSet, err := expandTarget(c.in)
		if c.err {
			if err == nil {
				t.Errorf("%s: no error", c.in)
			}
			continue
		}
		if err != nil || !isSet || len(got) != c.n || got[0].String() != c.first || got[len(got)-1].String() != c.last {
			t.Errorf("%s: %d addresses %v..., %v", c.in, len(got), got[:min(3, len(got))], err)
		}
	}
	if _, isSet, _ := expandTarget("host.example"); isSet {
		t.Error("a name expanded as a set")
	}
}

func TestFpRTT(t *testing.T) {
	for d, want := range map[time.Duration]string{
		37 * time.Microsecond:     "0.037",
		1234 * time.Microsecond:   "1.23",
		12345 * time.Microsecond:  "12.3",
		123456 * time.Microsecond: "123",
	} {
		if got := fpRTT(d); got != want {
			t.Errorf("fpRTT(%v) = %q, want %q", d, got, want)
		}
	}
}

// fpingLab is a chain with one router, and resolv.conf/hosts of the namespace's own, so that a
// name lookup never leaves it.
func fpingLab(t *testing.T) *netlab.Chain {
	lab := netlab.New(t)
	c := lab.Chain(1)
	c.Target.MustRun(t, "ip", "addr", "add", "198.18.100.0/24", "dev", "lo")
	c.Target.MustRun(t, "ip", "-6", "route", "add", "local", "2001:db8:100::/64", "dev", "lo")
	c.Routers[0].MustRun(t, "ip", "route", "add", "198.18.100.0/24", "via", c.TargetAddr4.String())
	c.Routers[0].MustRun(t, "ip", "-6", "route", "add", "2001:db8:100::/64", "via", c.TargetAddr6.String())
	// The silent prefix: the router answers every probe with a network unreachable, whatever
	// ran just before, so that the output compared with fping's does not depend on rate
	// limits. Its own "no route" errors are limited host-wide (net.ipv4.route.error_cost, not
	// ours to change), so it forwards the prefix into a reject rule instead, and sends ICMP
	// errors without its per-destination limit.
	c.Routers[0].MustRun(t, "ip", "route", "add", "198.18.200.0/24", "via", c.TargetAddr4.String())
	c.Routers[0].Nft(t, `table ip silent {
	chain rej {
		type filter hook forward priority 0; policy accept;
		ip daddr 198.18.200.0/24 reject with icmp type net-unreachable
	}
}
`)
	c.Routers[0].Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	c.Routers[0].Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	dir := "/etc/netns/" + c.Host.Name()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.WriteFile(dir+"/resolv.conf", []byte("nameserver 127.0.0.1\n"), 0o644)
	os.WriteFile(dir+"/hosts", []byte(fmt.Sprintf("127.0.0.1 localhost\n%s target.lab\n", c.TargetAddr4)), 0o644)
	return c
}

// TestLabFping: with several targets gping speaks fping: the same lines (shape and padding),
// summaries, lists and exit codes as fping 5 run with the same arguments in the same place.
func TestLabFping(t *testing.T) {
	fping := cmdtest.NeedTool(t, "fping")
	c := fpingLab(t)
	// A silent address: routed to the router, which has no route for it (fping and gping both
	// see "unreachable"; the router's net-unreachable error counts as no reply).
	silent := "198.18.200.1"
	alive := []string{c.TargetAddr4.String(), "target.lab", c.RouterAddr4[0].String()}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"default", append([]string{"-t", "100", "-r", "2"}, append(alive, silent)...), 1},
		{"alive only", append([]string{"-a", "-t", "100", "-r", "1"}, append(alive, silent)...), 1},
		{"unreachable only", append([]string{"-u", "-t", "100", "-r", "1"}, append(alive, silent)...), 1},
		{"all alive", alive, 0},
		{"count", append([]string{"-c", "3", "-p", "20"}, alive...), 0},
		{"count quiet", append([]string{"-q", "-c", "3", "-p", "20", "-t", "100"}, append(alive, silent)...), 1},
		{"vcount", append([]string{"-C", "2", "-p", "20", "-t", "100"}, append(alive, silent)...), 1},
		{"cidr", []string{"-a", "-g", "198.18.100.0/29"}, 0},
		{"range", []string{"-c", "1", "-q", "-g", "198.18.100.1", "198.18.100.4"}, 0},
		{"stats", append([]string{"-s", "-c", "2", "-p", "20"}, alive...), 0},
		{"unknown name", []string{"target.lab", "nosuch.lab"}, 2},
		// Count and loop modes print a line per timeout, and ignore -a and -u.
		{"count silent", append([]string{"-c", "2", "-p", "20"}, append(alive, silent)...), 1},
		{"count alive list", append([]string{"-a", "-c", "2", "-p", "20"}, append(alive, silent)...), 1},
		{"count unreachable list", append([]string{"-u", "-c", "2", "-p", "20"}, append(alive, silent)...), 1},
		{"reachable", append([]string{"-x", "3", "-t", "100", "-r", "1"}, append(alive, silent)...), 0},
		{"not reachable", append([]string{"-x", "4", "-t", "100", "-r", "1"}, append(alive, silent)...), 1},
		{"reachable count", append([]string{"-x", "1", "-c", "2", "-p", "20"}, append(alive, silent)...), 0},
		{"reachable unknown name", []string{"-x", "1", "target.lab", "nosuch.lab"}, 0},
		{"outage", append([]string{"-o", "-q", "-c", "2", "-p", "20"}, append(alive, silent)...), 1},
		{"by address", []string{"-A", "-c", "1", "target.lab", c.RouterAddr4[0].String()}, 0},
		// IPv4 only: fping 5.1 prints no line for an ICMPv6 error.
		{"ttl", []string{"-H", "1", "-c", "1", "-p", "20", c.TargetAddr4.String(), "198.18.100.1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, ourErr, code := cmdtest.InNS(t, c.Host, gpingBin, tc.args...)
			theirs, theirErr, fcode := cmdtest.InNS(t, c.Host, fping, tc.args...)
			if code != tc.code || fcode != tc.code {
				t.Errorf("exit gping %d, fping %d, want %d\n%s%s", code, fcode, tc.code, ours, ourErr)
			}
			// fping prints targets in the order they answer; compare sorted line shapes.
			sameLines(t, "stdout", ours, theirs)
			sameLines(t, "stderr", ourErr, theirErr)
			// What the shapes leave out: the outage figure (2 lost x 20 ms) and -A's
			// addresses in place of the name.
			for _, w := range map[string][]string{
				"outage":     {"outage(ms) = 40", "outage(ms) = 0,"},
				"by address": {c.TargetAddr4.String() + " "},
			}[tc.name] {
				if !strings.Contains(ours+ourErr, w) || !strings.Contains(theirs+theirErr, w) {
					t.Errorf("want %q in both outputs\n--- gping:\n%s%s--- fping:\n%s%s", w, ours, ourErr, theirs, theirErr)
				}
			}
			if tc.name == "by address" && strings.Contains(ours+ourErr, "target.lab") {
				t.Errorf("-A shows the name\n%s%s", ours, ourErr)
			}
		})
	}
}

// TestLabFpingSocketOptions: -O, -S, -H, -I and -M reach the packets as fping's do, counted
// at the target.
func TestLabFpingSocketOptions(t *testing.T) {
	fping := cmdtest.NeedTool(t, "fping")
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Target.Nft(t, fmt.Sprintf(`table ip fpopts {
	counter tos { }
	counter src { }
	counter ttl { }
	chain in {
		type filter hook input priority 0; policy accept;
		icmp type echo-request ip dscp cs1 counter name tos
		icmp type echo-request ip saddr %s counter name src
		icmp type echo-request ip ttl 7 counter name ttl
	}
}
`, c.HostAddr4))
	counter := func(name string) int { return nftCounter(t, c.Target, "fpopts", name) }
	ifName := vethName(t, c.Host)
	// fping mode needs two targets: the same one twice.
	dst := []string{c.TargetAddr4.String(), c.TargetAddr4.String()}
	for _, tc := range []struct {
		args    []string
		counter string
		want    int // requests counted per run
		code    int
		summary string // in the summary of each target
	}{
		{[]string{"-O", "0x20"}, "tos", 4, 0, "2/2/0%"},
		{[]string{"-S", c.HostAddr4.String()}, "src", 4, 0, "2/2/0%"},
		{[]string{"-H", "7"}, "ttl", 4, 0, "2/2/0%"},
		{[]string{"-I", ifName}, "", 0, 0, "2/2/0%"},
		{[]string{"-I", "lo"}, "", 0, 1, "2/0/100%"}, // bound elsewhere: no route to the target
		{[]string{"-b", "2000"}, "", 0, 0, "2/2/0%"}, // fragmented
		{[]string{"-M", "-b", "2000"}, "", 0, 1, "2/0/100%"},
	} {
		for _, tool := range []string{gpingBin, fping} {
			before := 0
			if tc.counter != "" {
				before = counter(tc.counter)
			}
			args := append(append(tc.args, "-q", "-c", "2", "-p", "20"), dst...)
			out, errOut, code := cmdtest.InNS(t, c.Host, tool, args...)
			if code != tc.code || strings.Count(errOut, tc.summary) != 2 {
				t.Errorf("%s %v: exit %d, want %d and %q twice\n%s%s", tool, args, code, tc.code, tc.summary, out, errOut)
			}
			if tc.counter != "" {
				if n := counter(tc.counter) - before; n != tc.want {
					t.Errorf("%s %v: %d requests counted as %s, want %d", tool, args, n, tc.counter, tc.want)
				}
			}
		}
	}
}

// sameLines compares two outputs line by line after sorting, numbers and names aside.
func sameLines(t *testing.T, what, ours, theirs string) {
	t.Helper()
	norm := func(s string) string {
		ls := cmdtest.Shape(s)
		for i, l := range ls {
			l = strings.ReplaceAll(l, "gping: ", "")
			l = regexp.MustCompile(`(N\.){3}N|target\.lab|nosuch\.lab|[0-9a-f:]+::N?`).ReplaceAllString(l, "H")
			l = regexp.MustCompile(`H +:`).ReplaceAllString(l, "H :") // padding depends on names
			ls[i] = strings.TrimRight(l, " ")
		}
		sortStrings(ls)
		// Repeated lines (one ICMP error per try) depend on timing: compare the kinds.
		uniq := ls[:0]
		for i, l := range ls {
			if i == 0 || l != ls[i-1] {
				uniq = append(uniq, l)
			}
		}
		return strings.Join(uniq, "\n")
	}
	if a, b := norm(ours), norm(theirs); a != b {
		t.Errorf("%s differs from fping's\n--- gping:\n%s\n--- fping:\n%s", what, ours, theirs)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestLabFpingPadding: the host column is padded to the longest name, as fping does.
func TestLabFpingPadding(t *testing.T) {
	c := fpingLab(t)
	out, _, code := cmdtest.InNS(t, c.Host, gpingBin, "-c", "1", "target.lab", c.TargetAddr4.String(), c.TargetAddr6.String())
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	w := len(c.TargetAddr6.String())
	for _, name := range []string{"target.lab", c.TargetAddr4.String(), c.TargetAddr6.String()} {
		want := fmt.Sprintf("%-*s : [0], 64 bytes, ", w, name)
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// TestLabFpingMixedFamilies: IPv4 and IPv6 targets in one run, each over its own socket.
func TestLabFpingMixedFamilies(t *testing.T) {
	c := fpingLab(t)
	var targets []string
	for i := 1; i <= 20; i++ {
		targets = append(targets, netip.MustParseAddr(fmt.Sprintf("198.18.100.%d", i)).String(), fmt.Sprintf("2001:db8:100::%x", i))
	}
	out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, append([]string{"-q", "-c", "5", "-p", "5", "-i", "0"}, targets...)...)
	if code != 0 || strings.Count(errOut, "xmt/rcv/%loss = 5/5/0%") != 40 {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

// TestLabFpingSenders: with --senders (and a --rate beyond one sender), sends leave from
// several sockets and goroutines, and every target still gets each probe answered once.
func TestLabFpingSenders(t *testing.T) {
	c := fpingLab(t)
	var targets []string
	for i := 1; i <= 100; i++ {
		targets = append(targets, netip.MustParseAddr(fmt.Sprintf("198.18.100.%d", i)).String())
		if i%5 == 0 {
			targets = append(targets, fmt.Sprintf("2001:db8:100::%x", i))
		}
	}
	for _, flags := range [][]string{{"--senders", "2"}, {"--rate", "300000"}} {
		args := append(append(flags, "-q", "-c", "5", "-p", "5", "-i", "0"), targets...)
		out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, args...)
		if code != 0 || strings.Count(errOut, "xmt/rcv/%loss = 5/5/0%") != len(targets) {
			t.Errorf("%v: exit %d\n%s%s", flags, code, out, errOut)
		}
	}
	if _, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "--senders", "-1", targets[0], targets[1]); code != fpExitUsage || !strings.Contains(errOut, "invalid --senders value") {
		t.Errorf("--senders -1: exit %d, %s", code, errOut)
	}
}

// TestLabFpingInFlight: throughput mode sends each target its next probe as soon as one settles,
// by a reply or by a timeout: a silent target's window empties by timeouts and the run ends.
func TestLabFpingInFlight(t *testing.T) {
	c := fpingLab(t)
	alive := []string{c.TargetAddr4.String(), c.TargetAddr6.String(), c.RouterAddr4[0].String()}
	silent := "198.18.200.1" // the router answers net unreachable: no reply
	// The silent target's 100 probes take 25 timeouts of 50 ms, 4 at a time.
	args := append([]string{"-q", "--in-flight", "4", "-c", "100", "-i", "0", "-t", "50"}, append(alive, silent)...)
	out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, args...)
	lost := regexp.MustCompile(regexp.QuoteMeta(silent) + ` +: xmt/rcv/%loss = 100/0/100%`)
	if code != fpExitUnreachable || strings.Count(errOut, "xmt/rcv/%loss = 100/100/0%") != len(alive) || !lost.MatchString(errOut) {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	for _, bad := range [][]string{
		{"--in-flight", "2", alive[0], alive[1]},                        // no count
		{"--in-flight", "2", "-c", "3", "-p", "10", alive[0], alive[1]}, // with -p
		{"--in-flight", "-1", "-c", "3", alive[0], alive[1]},
		{"--in-flight", "65536", "-c", "3", alive[0], alive[1]},
	} {
		if _, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, bad...); code != fpExitUsage || !strings.Contains(errOut, "in-flight") {
			t.Errorf("%v: exit %d, %s", bad, code, errOut)
		}
	}
}

func TestSendersFor(t *testing.T) {
	for _, tc := range []struct {
		senders int
		rate    float64
		cpus    int
		want    int
	}{
		{0, 0, 8, 1},      // full speed: one sender costs the least CPU
		{0, 50000, 8, 1},  // within one sender
		{0, 100000, 8, 1}, // just within
		{0, 150000, 8, 2},
		{0, 450000, 8, 5},
		{0, 450000, 2, 2}, // no more than the cores
		{3, 0, 8, 3},      // asked for
		{3, 0, 2, 2},
		{1, 900000, 8, 1},
	} {
		o := &fpOptions{senders: tc.senders, rate: tc.rate}
		if got := sendersFor(o, tc.cpus); got != tc.want {
			t.Errorf("senders %d, rate %v, %d CPUs: %d, want %d", tc.senders, tc.rate, tc.cpus, got, tc.want)
		}
	}
}

// TestWarnCounters: what only the engine counted gets a warning line each, and nothing is
// said when it counted nothing.
func TestWarnCounters(t *testing.T) {
	var b strings.Builder
	con := &console{out: newWriter(&b), errOut: &b}
	con.warnCounters(probe.Counters{Sent: 10, Replies: 10})
	if b.Len() != 0 {
		t.Errorf("clean counters: %q", b.String())
	}
	con.warnCounters(probe.Counters{KernelDrops: 3, BadChecksum: 2})
	for _, want := range []string{"the kernel dropped 3 packets", "2 ICMP messages with a bad checksum"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in %q", want, b.String())
		}
	}
}

// TestFpingGCPercent: fping mode halves the collector's headroom, unless GOGC says otherwise.
func TestFpingGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, c := range []struct {
		env  string
		want int
	}{{"", fpingGCPercent}, {"200", 100}} {
		t.Setenv("GOGC", c.env)
		debug.SetGCPercent(100)
		// No targets on stdin: fping mode starts, then stops before opening a socket.
		var out, errOut strings.Builder
		if code := runFping(context.Background(), []string{"-c", "1", "-"}, strings.NewReader(""), &out, &errOut); code != fpExitUnknown {
			t.Fatalf("GOGC=%q: exit %d, want %d (stderr %q)", c.env, code, fpExitUnknown, errOut.String())
		}
		if got := debug.SetGCPercent(100); got != c.want {
			t.Errorf("GOGC=%q: GC percent %d after fping mode, want %d", c.env, got, c.want)
		}
	}
}

// TestFpingHelp: -h with several targets prints fping mode's own flags and exits 0, as fping -h.
func TestFpingHelp(t *testing.T) {
	var out, errOut strings.Builder
	code := runFping(context.Background(), []string{"-h", "198.18.0.1", "198.18.0.2"}, strings.NewReader(""), &out, &errOut)
	if code != fpExitOK || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"Usage: gping [options] [targets...]", "--in-flight", "--vcount", "--period"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestLabFpingLoop: -l probes until SIGINT and then prints the summaries; -Q adds each target's
// summary of the last interval, every interval. gping's lines have the shape of fping's, run
// the same way in the same place; the summaries count what was sent and answered.
func TestLabFpingLoop(t *testing.T) {
	fping := cmdtest.NeedTool(t, "fping")
	c := fpingLab(t)
	targets := []string{c.TargetAddr4.String(), c.TargetAddr6.String(), c.RouterAddr4[0].String()}
	// run starts bin, reads stderr until it has shown `splits` interval summaries (or stdout
	// until 3 reply lines per target, without -Q), then interrupts it and returns both outputs.
	run := func(t *testing.T, bin string, splits int, args ...string) (stdout, stderr string, code int) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := c.Host.Exec(ctx, bin, append(args, targets...)...)
		errPipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		outPipe := cmdtest.Start(t, cmd)
		var out, errOut strings.Builder
		outDone, errDone := make(chan struct{}), make(chan struct{})
		enough := make(chan struct{}, 2)
		go func() {
			defer close(outDone)
			sc := bufio.NewScanner(outPipe)
			for n := 0; sc.Scan(); {
				out.WriteString(sc.Text() + "\n")
				if n++; splits == 0 && n == 3*len(targets) {
					enough <- struct{}{}
				}
			}
		}()
		go func() {
			defer close(errDone)
			sc := bufio.NewScanner(errPipe)
			for n := 0; sc.Scan(); {
				errOut.WriteString(sc.Text() + "\n")
				if strings.HasPrefix(sc.Text(), "[") {
					if n++; n == splits {
						enough <- struct{}{}
					}
				}
			}
		}()
		// fping's output is line-buffered: each line can be read as soon as it is made. A
		// tool that held its lines in a buffer would show them only when it filled.
		select {
		case <-enough:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: not enough lines after 5 s of 20 ms periods: held in a buffer?", bin)
		}
		cmd.Process.Signal(os.Interrupt)
		<-outDone
		<-errDone
		cmd.Wait()
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}
	for _, tc := range []struct {
		name   string
		splits int
		args   []string
	}{
		{"loop", 0, []string{"-l", "-p", "20"}},
		{"interval summaries", 2, []string{"-l", "-p", "20", "-Q", "0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, ourErr, code := run(t, gpingBin, tc.splits, tc.args...)
			theirs, theirErr, fcode := run(t, fping, tc.splits, tc.args...)
			if code != fcode || code != fpExitOK {
				t.Errorf("exit gping %d, fping %d, want %d\n%s%s", code, fcode, fpExitOK, ours, ourErr)
			}
			sameLines(t, "stdout", ours, theirs)
			sameLines(t, "stderr", ourErr, theirErr)
			// The final summaries count every reply line.
			for _, tgt := range targets {
				replies := strings.Count(ours, tgt+" ")
				m := regexp.MustCompile(regexp.QuoteMeta(tgt)+` +: xmt/rcv/%loss = (\d+)/(\d+)/`).FindAllStringSubmatch(ourErr, -1)
				if len(m) == 0 {
					t.Fatalf("no summary for %s:\n%s", tgt, ourErr)
				}
				last := m[len(m)-1]
				if tc.splits == 0 && (last[2] != strconv.Itoa(replies) || last[1] < last[2]) {
					t.Errorf("%s: summary %s/%s, %d reply lines", tgt, last[1], last[2], replies)
				}
				if tc.splits > 0 && len(m) < tc.splits+1 {
					t.Errorf("%s: %d summaries, want %d intervals and the final one:\n%s", tgt, len(m), tc.splits, ourErr)
				}
			}
		})
	}
	if _, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-l", "-c", "3", targets[0], targets[1]); code != fpExitUsage || !strings.Contains(errOut, "-l") {
		t.Errorf("-l -c: exit %d, %s", code, errOut)
	}
}

// TestParseFping: the values fping's options turn into, where they are not simply copied.
func TestParseFping(t *testing.T) {
	for _, c := range []struct {
		args    []string
		timeout time.Duration
		check   func(o *fpOptions) bool
	}{
		// fping's timeout is 500 ms by default, the period (up to 2 s) in count and loop modes.
		{[]string{"a", "b"}, 500 * time.Millisecond, nil},
		{[]string{"-c", "2", "-p", "20", "a", "b"}, 20 * time.Millisecond, nil},
		{[]string{"-l", "a", "b"}, time.Second, nil},
		{[]string{"-C", "1", "-p", "5000", "a", "b"}, 2 * time.Second, nil},
		{[]string{"-c", "2", "-p", "20", "-t", "300", "a", "b"}, 300 * time.Millisecond, nil},
		{[]string{"-O", "0x20", "-M", "-S", "198.18.0.1", "-I", "veth0", "-H", "9", "a", "b"}, 500 * time.Millisecond, func(o *fpOptions) bool {
			return o.sock.TOS == 0x20 && o.sock.PMTU == rawsock.PMTUDo && o.sock.Source == netip.MustParseAddr("198.18.0.1") &&
				o.sock.Interface == "veth0" && o.ttl == 9
		}},
		{[]string{"-T", "5", "-x", "2", "-o", "-A", "a", "b"}, 500 * time.Millisecond, func(o *fpOptions) bool {
			return o.reachable == 2 && o.outage && o.byAddr
		}},
	} {
		o, err := parseFping(c.args)
		if err != nil || o.timeout != c.timeout || c.check != nil && !c.check(o) {
			t.Errorf("%q: timeout %v, %+v, %v; want timeout %v", c.args, o.timeout, o, err, c.timeout)
		}
	}
	for _, args := range [][]string{
		{"-x", "0", "a", "b"},
		{"-H", "0", "a", "b"},
		{"-H", "256", "a", "b"},
		{"-O", "256", "a", "b"},
		{"-S", "nowhere", "a", "b"},
	} {
		if _, err := parseFping(args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestLabFpingJSON: with -J every stdout line is a JSON object as fping 5.3+ prints them: a
// resp or timeout per probe, a summary (vSum with -C) per target, and stats with -s; their
// figures agree with each other.
func TestLabFpingJSON(t *testing.T) {
	c := fpingLab(t)
	silent := "198.18.200.1"
	alive := []string{c.TargetAddr4.String(), c.TargetAddr6.String(), "target.lab"}
	targets := append(alive, silent)
	type line map[string]map[string]any
	parse := func(t *testing.T, out string) []line {
		t.Helper()
		var ls []line
		for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
			var l line
			if err := json.Unmarshal([]byte(s), &l); err != nil || len(l) != 1 {
				t.Fatalf("not one JSON object: %q: %v", s, err)
			}
			ls = append(ls, l)
		}
		return ls
	}
	t.Run("count", func(t *testing.T) {
		out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, append([]string{"-J", "-s", "-o", "-c", "2", "-p", "20"}, targets...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "ICMP Network Unreachable") {
			t.Errorf("no ICMP error line on stderr:\n%s", errOut)
		}
		kinds := map[string]int{}
		replies := map[string]int{}
		for _, l := range parse(t, out) {
			for kind, v := range l {
				kinds[kind]++
				host, _ := v["host"].(string)
				switch kind {
				case "resp":
					replies[host]++
					if v["rtt"].(float64) <= 0 || v["size"].(float64) != 64 || v["seq"].(float64) > 1 {
						t.Errorf("resp %v", v)
					}
				case "timeout":
					if host != silent {
						t.Errorf("timeout %v", v)
					}
				case "summary":
					want := map[string]any{"xmt": 2.0, "rcv": 2.0, "loss": 0.0, "outage(ms)": 0.0}
					if host == silent {
						want = map[string]any{"xmt": 2.0, "rcv": 0.0, "loss": 100.0, "outage(ms)": 40.0}
					} else if !(v["rttMin"].(float64) <= v["rttAvg"].(float64) && v["rttAvg"].(float64) <= v["rttMax"].(float64)) {
						t.Errorf("summary RTTs out of order: %v", v)
					}
					for k, w := range want {
						if v[k] != w {
							t.Errorf("summary of %s: %s = %v, want %v", host, k, v[k], w)
						}
					}
				case "stats":
					for k, w := range map[string]float64{"targets": 4, "alive": 3, "unreachable": 1, "icmpEchosSent": 8, "icmpEchoRepliesReceived": 6, "otherIcmpReceived": 2} {
						if v[k] != w {
							t.Errorf("stats: %s = %v, want %v", k, v[k], w)
						}
					}
				}
			}
		}
		if want := map[string]int{"resp": 6, "timeout": 2, "summary": 4, "stats": 1}; fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Errorf("lines %v, want %v\n%s", kinds, want, out)
		}
		for _, h := range alive {
			if replies[h] != 2 {
				t.Errorf("%d resp lines for %s, want 2", replies[h], h)
			}
		}
	})
	t.Run("vcount", func(t *testing.T) {
		out, errOut, _ := cmdtest.InNS(t, c.Host, gpingBin, "-J", "-q", "-C", "2", "-p", "20", c.TargetAddr4.String(), silent)
		ls := parse(t, out)
		if len(ls) != 2 {
			t.Fatalf("%d lines, want 2 vSum\n%s%s", len(ls), out, errOut)
		}
		for _, l := range ls {
			v := l["vSum"]
			vals, _ := v["values"].([]any)
			if len(vals) != 2 {
				t.Fatalf("vSum %v", l)
			}
			for _, x := range vals {
				if got := x == nil; got != (v["host"] == silent) {
					t.Errorf("vSum %v: want numbers for the target, nulls for the silent one", l)
				}
			}
		}
	})
	if _, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-J", c.TargetAddr4.String(), silent); code != fpExitUsage || !strings.Contains(errOut, "requires -c, -C, or -l") {
		t.Errorf("-J without -c: exit %d\n%s", code, errOut)
	}
}
