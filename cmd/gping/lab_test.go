package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gping/gping/internal/cmdtest"
	"github.com/gping/gping/internal/hostname"
	"github.com/gping/gping/internal/netlab"
)

func families(c *netlab.Chain) map[string][2]netip.Addr {
	return map[string][2]netip.Addr{
		"IPv4": {c.TargetAddr4, c.RouterAddr4[0]},
		"IPv6": {c.TargetAddr6, c.RouterAddr6[0]},
	}
}

// TestLabReplies: through two routers, every family and socket kind gets every reply, with the
// TTL decremented twice, and the output has iputils' shape.
func TestLabReplies(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(2)
	// Ping sockets for every group, inside the test's own namespace only.
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	for fam, a := range families(c) {
		for _, mode := range cmdtest.Modes {
			t.Run(fam+"/"+mode, func(t *testing.T) {
				args := []string{"-c", "3", "-i", "0.01", a[0].String()}
				out, errOut, code := cmdtest.InMode(t, c.Host, mode, gpingBin, args...)
				if code != 0 {
					t.Fatalf("exit %d\n%s%s", code, out, errOut)
				}
				if n := strings.Count(out, fmt.Sprintf("bytes from %s: ", a[0])); n != 3 {
					t.Errorf("%d replies from %s, want 3:\n%s", n, a[0], out)
				}
				if n := strings.Count(out, " ttl=62 "); n != 3 {
					t.Errorf("%d replies with ttl=62 (64 less two routers), want 3:\n%s", n, out)
				}
				if !strings.Contains(out, "3 packets transmitted, 3 received, 0% packet loss") {
					t.Errorf("summary:\n%s", out)
				}
				theirs, _, _ := cmdtest.InNS(t, c.Host, cmdtest.NeedTool(t, "ping"), args...)
				cmdtest.SameShape(t, out, theirs)
			})
		}
	}
}

// TestLabTimeExceeded: a TTL too small for the path brings the first router's error, reported
// as iputils does, in every socket kind (raw: as a packet; datagram: from the error queue).
func TestLabTimeExceeded(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(2)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	text := map[string]string{"IPv4": "Time to live exceeded", "IPv6": "Time exceeded: Hop limit"}
	for fam, a := range families(c) {
		for _, mode := range cmdtest.Modes {
			t.Run(fam+"/"+mode, func(t *testing.T) {
				args := []string{"-c", "2", "-i", "0.01", "-t", "1", a[0].String()}
				out, errOut, code := cmdtest.InMode(t, c.Host, mode, gpingBin, args...)
				if code != 1 {
					t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
				}
				for seq := 1; seq <= 2; seq++ {
					want := fmt.Sprintf("From %s icmp_seq=%d %s\n", a[1], seq, text[fam])
					if !strings.Contains(out, want) {
						t.Errorf("no %q in:\n%s", want, out)
					}
				}
				if !strings.Contains(out, "2 packets transmitted, 0 received, +2 errors, 100% packet loss") {
					t.Errorf("summary:\n%s", out)
				}
				theirs, _, _ := cmdtest.InNS(t, c.Host, cmdtest.NeedTool(t, "ping"), args...)
				cmdtest.SameShape(t, out, theirs)
			})
		}
	}
}

// TestLabAdminProhibited: a router that rejects with admin-prohibited is reported with
// iputils' words for each family.
func TestLabAdminProhibited(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(2)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr4, 32))
	c.Routers[1].RejectAdminProhibited(t, netip.PrefixFrom(c.TargetAddr6, 128))
	text := map[string]string{"IPv4": "Packet filtered", "IPv6": "Destination unreachable: Administratively prohibited"}
	for fam, a := range families(c) {
		from := c.RouterAddr4[1]
		if fam == "IPv6" {
			from = c.RouterAddr6[1]
		}
		for _, mode := range cmdtest.Modes {
			t.Run(fam+"/"+mode, func(t *testing.T) {
				out, errOut, code := cmdtest.InMode(t, c.Host, mode, gpingBin, "-c", "1", a[0].String())
				want := fmt.Sprintf("From %s icmp_seq=1 %s\n", from, text[fam])
				if code != 1 || !strings.Contains(out, want) {
					t.Fatalf("exit %d, want 1 and %q\n%s%s", code, want, out, errOut)
				}
			})
		}
	}
}

var summaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received, (?:\+\d+ \w+, )*([\d.]+)% packet loss`)

// TestLabLoss: total loss exits 1 with 100%; partial loss counts every probe as either
// received or lost, and -O reports the unanswered ones.
func TestLabLoss(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(1)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	c.Routers[0].DropPercent(t, 30)
	for fam, a := range families(c) {
		t.Run(fam, func(t *testing.T) {
			const n = 60
			out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-c", strconv.Itoa(n), "-i", "0.002", "-W", "0.5", "-O", a[0].String())
			m := summaryRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no summary (exit %d):\n%s%s", code, out, errOut)
			}
			sent, _ := strconv.Atoi(m[1])
			recv, _ := strconv.Atoi(m[2])
			loss, _ := strconv.ParseFloat(m[3], 64)
			replies := strings.Count(out, " bytes from ")
			if sent != n || recv != replies || recv == 0 || recv == n {
				// 30% independent loss each way: P(all or none of 60 answered) < 1e-9.
				t.Fatalf("sent %d received %d (%d reply lines)\n%s", sent, recv, replies, out)
			}
			if want := float64(n-recv) * 100 / n; loss < want-0.001 || loss > want+0.001 {
				t.Errorf("loss %v%%, want %v%%", loss, want)
			}
			if code != 0 {
				t.Errorf("exit %d with some replies, want 0", code)
			}
			// Every unanswered probe but the last is reported by -O when the next one goes out.
			if unanswered := strings.Count(out, "no answer yet for icmp_seq="); unanswered < n-recv-1 || unanswered > n-recv {
				t.Errorf("%d 'no answer yet' lines for %d lost probes", unanswered, n-recv)
			}
		})
	}
	c2 := lab.Chain(1)
	c2.Target.NoEchoReply(t)
	t.Run("total", func(t *testing.T) {
		start := time.Now()
		out, _, code := cmdtest.InNS(t, c2.Host, gpingBin, "-c", "2", "-i", "0.01", "-W", "0.3", c2.TargetAddr4.String())
		if code != 1 || !strings.Contains(out, "2 packets transmitted, 0 received, 100% packet loss") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if strings.Contains(out, "rtt min") {
			t.Errorf("rtt line with no replies:\n%s", out)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v with -W 0.3", d)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		// -w ends the run; with -c unmet the exit is 1.
		out, _, code := cmdtest.InNS(t, c2.Host, gpingBin, "-c", "100", "-i", "0.05", "-w", "1", c2.TargetAddr6.String())
		m := summaryRE.FindStringSubmatch(out)
		if code != 1 || m == nil || m[2] != "0" {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

// TestLabNoRoute: like iputils, gping learns there is no route before sending and exits 2.
func TestLabNoRoute(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.MustRun(t, "ip", "route", "add", "unreachable", "198.19.250.0/24")
	c.Host.MustRun(t, "ip", "-6", "route", "add", "unreachable", "2001:db8:ffff::/48")
	for _, dst := range []string{"198.19.250.1", "2001:db8:ffff::1"} {
		out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-c", "1", dst)
		_, theirs, pcode := cmdtest.InNS(t, c.Host, cmdtest.NeedTool(t, "ping"), "-c", "1", dst)
		if code != 2 || pcode != 2 || out != "" {
			t.Errorf("%s: exit %d (ping %d), stdout %q", dst, code, pcode, out)
		}
		_, ours, _ := strings.Cut(errOut, ": ")
		_, theirs, _ = strings.Cut(theirs, ": ")
		if ours != theirs {
			t.Errorf("%s: stderr %q, iputils says %q", dst, errOut, theirs)
		}
	}
}

// TestLabPermissionDenied: with neither privilege nor ping sockets allowed, gping exits 2 with
// one line naming both fixes.
func TestLabPermissionDenied(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "1 0")
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		out, errOut, code := cmdtest.InMode(t, c.Host, "dgram-user", gpingBin, "-c", "1", dst.String())
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", dst, code, out, errOut)
		}
		for _, want := range []string{"setcap cap_net_raw", "ping_group_range"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr lacks %q: %s", dst, want, errOut)
			}
		}
	}
}

// TestLabDNSTimeout: a resolver that never answers (a silent socket on the namespace's own
// loopback, named in its resolv.conf) costs gping a bounded wait and exit 2, not a hang.
func TestLabDNSTimeout(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	dir := "/etc/netns/" + c.Host.Name()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(dir+"/resolv.conf", []byte("nameserver 127.0.0.1\noptions timeout:30 attempts:3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/hosts", []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Host.Do(func() error {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:53")
		if err == nil {
			t.Cleanup(func() { pc.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-c", "1", "silent.lab")
	d := time.Since(start)
	if code != 2 || out != "" || !strings.Contains(errOut, "silent.lab: Temporary failure in name resolution") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d < hostname.Timeout || d > hostname.Timeout+5*time.Second {
		t.Errorf("gave up after %v, want about %v", d, hostname.Timeout)
	}
}

// TestLabNames: names resolve forward and backward (from the namespace's own hosts file, which
// `ip netns exec` mounts over /etc/hosts), printed as iputils prints them; -n turns reverse
// lookups off. The namespace has no route to any DNS server, so nothing leaves it.
func TestLabNames(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(1)
	dir := "/etc/netns/" + c.Host.Name()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The router's address maps to a name with terminal escape bytes: it must be printed
	// escaped, never raw.
	hosts := fmt.Sprintf("127.0.0.1 localhost\n%s target.lab\n%s target6.lab\n%s evil\x1b[2J\x07.lab\n",
		c.TargetAddr4, c.TargetAddr6, c.RouterAddr4[0])
	if err := os.WriteFile(dir+"/hosts", []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr, header string
	}{
		{"target.lab", c.TargetAddr4.String(), fmt.Sprintf("PING target.lab (%s) 56(84) bytes of data.", c.TargetAddr4)},
		{"target6.lab", c.TargetAddr6.String(), fmt.Sprintf("PING target6.lab(target6.lab (%s)) 56 data bytes", c.TargetAddr6)},
	} {
		args := []string{"-c", "2", "-i", "0.01", tc.name}
		out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, args...)
		if code != 0 || !strings.HasPrefix(out, tc.header+"\n") {
			t.Fatalf("exit %d, want header %q\n%s%s", code, tc.header, out, errOut)
		}
		if n := strings.Count(out, fmt.Sprintf("bytes from %s (%s): icmp_seq=", tc.name, tc.addr)); n != 2 {
			t.Errorf("%d named reply lines, want 2:\n%s", n, out)
		}
		theirs, _, _ := cmdtest.InNS(t, c.Host, cmdtest.NeedTool(t, "ping"), args...)
		cmdtest.SameShape(t, out, theirs)
		out, _, _ = cmdtest.InNS(t, c.Host, gpingBin, append([]string{"-n"}, args...)...)
		if n := strings.Count(out, fmt.Sprintf("bytes from %s: icmp_seq=", tc.addr)); n != 2 {
			t.Errorf("-n: %d numeric reply lines, want 2:\n%s", n, out)
		}
	}
	// Go's resolver already refuses such a name (it is no valid domain name); either way it
	// must not reach the terminal raw (hostname.Escape is tested in its package).
	out, _, code := cmdtest.InNS(t, c.Host, gpingBin, "-c", "1", "-t", "1", "target.lab")
	re := regexp.MustCompile(fmt.Sprintf(`\nFrom (\S+) \(%s\) icmp_seq=1 Time to live exceeded\n`, regexp.QuoteMeta(c.RouterAddr4[0].String())))
	if code != 1 || !re.MatchString(out) || strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("hostile reverse name: exit %d, output:\n%q", code, out)
	}
}

// TestLabConcurrentProcesses: eight gping processes at once, raw and datagram mixed, two on
// each of four hosts (so same-host and different-host neighbours both exist), each count
// exactly their own replies: none lost, none crossed, no duplicates.
func TestLabConcurrentProcesses(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(1)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	hosts := []netip.Addr{c.TargetAddr4, c.TargetAddr6, c.RouterAddr4[0], c.RouterAddr6[0]}
	const procs, count = 8, 100
	type result struct {
		name, out string
	}
	results := make(chan result, procs)
	for i := range procs {
		mode := []string{"raw", "dgram"}[i%2]
		dst := hosts[i/2%len(hosts)]
		go func() {
			out, _, _ := cmdtest.InMode(t, c.Host, mode, gpingBin, "-c", strconv.Itoa(count), "-i", "0.002", dst.String())
			results <- result{mode + " " + dst.String(), out}
		}()
	}
	for range procs {
		r := <-results
		if !strings.Contains(r.out, fmt.Sprintf("%d packets transmitted, %d received, 0%% packet loss", count, count)) ||
			strings.Contains(r.out, "DUP") || strings.Count(r.out, " bytes from ") != count {
			t.Errorf("%s: crossed or lost replies:\n%s", r.name, r.out)
		}
	}
}

// TestFloodNeedsPrivilege: as iputils, an unprivileged user may not flood or go under 2 ms.
func TestFloodNeedsPrivilege(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	for _, args := range [][]string{{"-f", "-c", "3"}, {"-i", "0.001", "-c", "3"}} {
		out, errOut, code := cmdtest.InMode(t, c.Host, "dgram-user", gpingBin, append(args, c.TargetAddr4.String())...)
		if code != 2 || out != "" || !strings.Contains(errOut, "cannot flood") {
			t.Errorf("%v as nobody: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	// Root may.
	out, _, code := cmdtest.InNS(t, c.Host, gpingBin, "-f", "-c", "200", c.TargetAddr4.String())
	if code != 0 || !strings.Contains(out, "200 packets transmitted, 200 received") || !strings.Contains(out, "ipg/ewma") {
		t.Errorf("flood as root: exit %d\n%q", code, out)
	}
}

// TestLabDuplicates: a target whose replies nftables duplicates (dup to the host) yields
// iputils' "(DUP!)" lines and "+N duplicates" in the summary, and the probes still count once.
func TestLabDuplicates(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Target.Nft(t, fmt.Sprintf(`table ip gpingdup {
	chain out {
		type filter hook output priority 0; policy accept;
		icmp type echo-reply dup to %s
	}
}
`, c.HostAddr4))
	out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-c", "3", "-i", "0.01", c.TargetAddr4.String())
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// The run ends when the last probe is answered, as iputils' does, so the last duplicate
	// may or may not be in: either way lines and summary must agree.
	dups := strings.Count(out, " ms (DUP!)\n")
	if dups < 2 || dups > 3 {
		t.Errorf("%d DUP lines, want 2 or 3:\n%s", dups, out)
	}
	want := fmt.Sprintf("3 packets transmitted, 3 received, +%d duplicates, 0%% packet loss", dups)
	if !strings.Contains(out, want) {
		t.Errorf("summary lacks %q:\n%s", want, out)
	}
	if n := strings.Count(out, " bytes from "); n != 3+dups {
		t.Errorf("%d reply lines for 3 replies and %d duplicates", n, dups)
	}
}

// TestLabFileCapability: a binary given cap_net_raw+p (permitted, not effective, as the
// Dockerfile does) raises the capability itself and opens a raw socket for an ordinary user
// where ping sockets are refused.
func TestLabFileCapability(t *testing.T) {
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		t.Skip("setcap (libcap2-bin) not installed")
	}
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "1 0")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := dir + "/gping"
	data, err := os.ReadFile(gpingBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(setcap, "cap_net_raw+p", bin).CombinedOutput(); err != nil {
		t.Skipf("setcap on %s: %v %s (file system without capability xattrs?)", dir, err, out)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		out, errOut, code := cmdtest.InNS(t, c.Host, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-c", "2", "-i", "0.01", dst.String())
		if code != 0 || !strings.Contains(out, "2 packets transmitted, 2 received") {
			t.Errorf("%s as nobody with cap_net_raw+p: exit %d\n%s%s", dst, code, out, errOut)
		}
	}
}

// capsOf reads the capability sets of a running process.
func capsOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	caps := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" {
			caps[k] = strings.TrimSpace(v)
		}
	}
	return caps
}

// TestPrivilegesDropped: once its socket is open, gping holds no capability, whether it ran as
// root or as a user with the file capability; checked from /proc while it runs.
func TestPrivilegesDropped(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "1 0")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	capBin := dir + "/gping"
	data, _ := os.ReadFile(gpingBin)
	if err := os.WriteFile(capBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	canSetcap := exec.Command("setcap", "cap_net_raw+p", capBin).Run() == nil
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"root", []string{gpingBin}},
		{"root-dgram", []string{gpingBin, "--socket=dgram"}},
		{"user-filecap", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", capBin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "user-filecap" && !canSetcap {
				t.Skip("setcap unavailable here")
			}
			if tc.name == "root-dgram" {
				c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
				defer c.Host.Sysctl(t, "net.ipv4.ping_group_range", "1 0")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := c.Host.Exec(ctx, tc.argv[0], append(tc.argv[1:], "-i", "0.01", c.TargetAddr4.String())...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout := cmdtest.Start(t, cmd)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() && !strings.Contains(sc.Text(), " bytes from ") {
			}
			// `ip netns exec` (and setpriv) exec into gping, so the pid is gping's.
			caps := capsOf(t, cmd.Process.Pid)
			for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
				if caps[k] != "0000000000000000" {
					t.Errorf("%s = %s mid-run, want 0 (%v)", k, caps[k], caps)
				}
			}
			if caps["NoNewPrivs"] != "1" {
				t.Errorf("NoNewPrivs = %q, want 1", caps["NoNewPrivs"])
			}
			cmd.Process.Signal(os.Interrupt)
			io.Copy(io.Discard, stdout)
			if err := cmd.Wait(); err != nil || stderr.Len() != 0 {
				t.Errorf("gping: %v, stderr %q", err, stderr.String())
			}
		})
	}
}

// echoCounter counts the echo requests that reach the target, as ground truth for "transmitted".
func echoCounter(t *testing.T, ns *netlab.NS) func() int {
	ns.Nft(t, `table inet gpingcount {
	counter echoes { }
	chain in {
		type filter hook input priority 0; policy accept;
		icmp type echo-request counter name echoes
		icmpv6 type echo-request counter name echoes
	}
}
`)
	re := regexp.MustCompile(`packets (\d+) bytes`)
	return func() int {
		out := ns.MustRun(t, "nft", "list", "counter", "inet", "gpingcount", "echoes")
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no counter in %q", out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
}

// TestLabSignalAnyMoment: SIGINT or SIGTERM after any number of replies prints the summary once,
// with "transmitted" equal to the echo requests the target received, and exits as iputils.
func TestLabSignalAnyMoment(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	count := echoCounter(t, c.Target)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		for _, after := range []int{0, 1, 5} {
			t.Run(fmt.Sprintf("%v/after-%d", sig, after), func(t *testing.T) {
				before := count()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := c.Host.Exec(ctx, gpingBin, "-i", "0.005", c.TargetAddr4.String())
				stdout := cmdtest.Start(t, cmd)
				var out strings.Builder
				sc := bufio.NewScanner(stdout)
				for replies := -1; replies < after && sc.Scan(); { // the header line counts as -1
					out.WriteString(sc.Text() + "\n")
					replies++
				}
				cmd.Process.Signal(sig)
				rest, _ := io.ReadAll(stdout)
				out.Write(rest)
				err := cmd.Wait()
				m := summaryRE.FindStringSubmatch(out.String())
				if m == nil || strings.Count(out.String(), "ping statistics") != 1 {
					t.Fatalf("summary missing or repeated (%v):\n%s", err, out.String())
				}
				sent, _ := strconv.Atoi(m[1])
				recv, _ := strconv.Atoi(m[2])
				if got := count() - before; got != sent {
					t.Errorf("gping says %d transmitted, the target received %d", sent, got)
				}
				if (recv > 0) != (err == nil) {
					t.Errorf("exit %v with %d received", err, recv)
				}
			})
		}
	}
}

// TestClosedStdout: `gping ... | head -1` ends gping quietly when head exits.
func TestClosedStdout(t *testing.T) {
	cmdtest.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gpingBin, "-i", "0.005", "127.0.0.1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout := cmdtest.Start(t, cmd)
	first, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "PING ") {
		t.Fatalf("first line %q, %v", first, err)
	}
	stdout.Close()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("gping kept running after its stdout closed")
	}
	if stderr.Len() != 0 {
		t.Errorf("gping was not quiet: %q (%v)", stderr.String(), err)
	}
}

// lines feeds the lines of r into a channel, closed at EOF.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// waitLine reads from ch until a line contains want, failing after the test's bound.
func waitLine(t *testing.T, ch <-chan string, want string, seen *[]string) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended before %q; seen:\n%s", want, strings.Join(*seen, "\n"))
			}
			*seen = append(*seen, l)
			if strings.Contains(l, want) {
				return
			}
		case <-timeout.C:
			t.Fatalf("no %q within 20s; seen:\n%s", want, strings.Join(*seen, "\n"))
		}
	}
}

// TestLabFaults: a path that fails mid-run (prohibit, unreachable and blackhole routes, an
// output firewall drop, the link going down) is reported once per state change with the
// kernel's reason, the failed probes count as errors, and replies resume when the path returns.
func TestLabFaults(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	// Linux flushes IPv6 addresses when a link goes down unless told to keep them; the link
	// fault is about the path, not about renumbering.
	for _, ns := range []*netlab.NS{c.Host, c.Target} {
		ns.Sysctl(t, "net.ipv6.conf.all.keep_addr_on_down", "1")
	}
	ifName := strings.Fields(c.Host.MustRun(t, "ip", "-o", "link", "show", "type", "veth"))[1]
	ifName, _, _ = strings.Cut(strings.TrimSuffix(ifName, ":"), "@")
	type fault struct {
		name, text    string
		apply, revert []string
	}
	faults := func(dst netip.Addr) []fault {
		ipv := "-4"
		bits := "/32"
		if dst.Is6() {
			ipv, bits = "-6", "/128"
		}
		route := func(kind string) fault {
			return fault{kind + " route", "", []string{"ip", ipv, "route", "add", kind, dst.String() + bits}, []string{"ip", ipv, "route", "del", kind, dst.String() + bits}}
		}
		fs := []fault{route("prohibit"), route("unreachable"), route("blackhole")}
		fs[0].text, fs[1].text, fs[2].text = "Permission denied", "No route to host", "Invalid argument"
		fs = append(fs,
			fault{"firewall", "Operation not permitted",
				[]string{"nft", "add table inet gpingfw; add chain inet gpingfw out { type filter hook output priority 0; }; add rule inet gpingfw out meta l4proto { icmp, ipv6-icmp } drop"},
				[]string{"nft", "delete", "table", "inet", "gpingfw"}},
			fault{"link down", "Network is unreachable",
				[]string{"ip", "link", "set", ifName, "down"}, []string{"ip", "link", "set", ifName, "up"}})
		return fs
	}
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		for _, f := range faults(dst) {
			t.Run(dst.String()+"/"+f.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				cmd := c.Host.Exec(ctx, gpingBin, "-i", "0.005", "-W", "1", dst.String())
				stderr, _ := cmd.StderrPipe()
				stdout := cmdtest.Start(t, cmd)
				out, errs := lines(stdout), lines(stderr)
				var seenOut, seenErr []string
				waitLine(t, out, "icmp_seq=3 ", &seenOut)
				c.Host.MustRun(t, f.apply...)
				waitLine(t, errs, "sendmsg: "+f.text, &seenErr)
				c.Host.MustRun(t, f.revert...)
				// Replies resume: wait for three more after the revert.
				start := len(seenOut)
				for n := 0; n < 3; {
					waitLine(t, out, " bytes from ", &seenOut)
					n = len(seenOut) - start
				}
				cmd.Process.Signal(os.Interrupt)
				for l := range out {
					seenOut = append(seenOut, l)
				}
				for l := range errs {
					seenErr = append(seenErr, l)
				}
				err := cmd.Wait()
				all := strings.Join(seenOut, "\n")
				if err != nil {
					t.Errorf("exit %v\n%s", err, all)
				}
				if len(seenErr) != 1 {
					t.Errorf("stderr has %d lines, want the one state change:\n%s", len(seenErr), strings.Join(seenErr, "\n"))
				}
				m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received, \+(\d+) errors`).FindStringSubmatch(all)
				if m == nil {
					t.Fatalf("no errors in the summary:\n%s", all)
				}
				sent, _ := strconv.Atoi(m[1])
				recv, _ := strconv.Atoi(m[2])
				nerr, _ := strconv.Atoi(m[3])
				if nerr == 0 || recv < 6 || recv+nerr > sent || recv != strings.Count(all, " bytes from ") {
					t.Errorf("sent %d, received %d, errors %d:\n%s", sent, recv, nerr, all)
				}
				// No busy loop while the path was down.
				if u := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(); u > time.Second {
					t.Errorf("used %v of CPU", u)
				}
			})
		}
	}
}

// TestLabIdentTaken: when another ping socket binds gping's ident mid-run (Linux allows it and
// gives it the replies), gping says so instead of reporting plain loss.
func TestLabIdentTaken(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Host.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.Host.Exec(ctx, gpingBin, "--socket=dgram", "-c", "4", "-i", "0.2", "-W", "0.2", c.TargetAddr4.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout := cmdtest.Start(t, cmd)
	out := lines(stdout)
	var seen []string
	waitLine(t, out, "icmp_seq=1 ", &seen)
	// gping's ident, from the namespace's ping socket table (it holds only gping's socket).
	table := strings.Split(strings.TrimSpace(c.Host.MustRun(t, "cat", "/proc/net/icmp")), "\n")
	if len(table) != 2 {
		t.Fatalf("ping socket table:\n%s", strings.Join(table, "\n"))
	}
	_, port, _ := strings.Cut(strings.Fields(table[1])[1], ":")
	ident, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Host.Do(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		t.Cleanup(func() { syscall.Close(fd) })
		return syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ident)})
	})
	if err != nil {
		t.Fatalf("binding a second socket to ident %d: %v", ident, err)
	}
	for l := range out {
		seen = append(seen, l)
	}
	cmd.Wait()
	all := strings.Join(seen, "\n")
	if !strings.Contains(all, "4 packets transmitted, 1 received") {
		t.Errorf("want the 3 later replies taken:\n%s", all)
	}
	if !strings.Contains(stderr.String(), "another ping socket is bound to this one's ident") {
		t.Errorf("no warning about the taken ident; stderr %q", stderr.String())
	}
}

// TestLabBadChecksum: replies whose ICMP checksum nftables corrupted on the way are not
// replies: gping drops them, counts them, and says so (raw IPv4 sockets see them; the kernel
// drops them before datagram sockets).
func TestLabBadChecksum(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Target.Nft(t, `table ip gpingcorrupt {
	chain out {
		type filter hook output priority 0; policy accept;
		icmp type echo-reply @th,16,16 set 0x1234
	}
}
`)
	out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "--socket=raw", "-c", "3", "-i", "0.01", "-W", "0.3", c.TargetAddr4.String())
	if code != 1 || !strings.Contains(out, "3 packets transmitted, 0 received, 100% packet loss") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if !strings.Contains(errOut, "warning: 3 ICMP messages with a bad checksum were dropped") {
		t.Errorf("stderr %q", errOut)
	}
}

// TestLabSocketOptions: -I (interface or source address), -Q and -M reach the wire, checked by
// nftables counters in the target, which count what arrives with the expected marks.
// nftCounter returns the packets counted by counter name of the ip table in ns.
func nftCounter(t *testing.T, ns *netlab.NS, table, name string) int {
	t.Helper()
	out := ns.MustRun(t, "nft", "list", "counter", "ip", table, name)
	n, _ := strconv.Atoi(regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)[1])
	return n
}

// vethName returns the name of ns's (first) veth interface.
func vethName(t *testing.T, ns *netlab.NS) string {
	t.Helper()
	name := strings.Fields(ns.MustRun(t, "ip", "-o", "link", "show", "type", "veth"))[1]
	name, _, _ = strings.Cut(strings.TrimSuffix(name, ":"), "@")
	return name
}

func TestLabSocketOptions(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	c.Target.Nft(t, fmt.Sprintf(`table ip gpingopts {
	counter tos { }
	counter src { }
	chain in {
		type filter hook input priority 0; policy accept;
		icmp type echo-request ip dscp cs1 counter name tos
		icmp type echo-request ip saddr %s counter name src
	}
}
`, c.HostAddr4))
	counter := func(name string) int { return nftCounter(t, c.Target, "gpingopts", name) }
	ifName := vethName(t, c.Host)
	for _, args := range [][]string{
		{"-I", ifName},
		{"-I", c.HostAddr4.String()},
		{"-Q", "0x20"},
	} {
		out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, append(args, "-c", "2", "-i", "0.01", c.TargetAddr4.String())...)
		if code != 0 || !strings.Contains(out, "2 received") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if n := counter("tos"); n != 2 {
		t.Errorf("%d requests with DSCP CS1 (-Q 0x20), want 2", n)
	}
	if n := counter("src"); n != 6 {
		t.Errorf("%d requests from %s, want 6", n, c.HostAddr4)
	}
	// -M do: a packet over the link MTU is refused locally, not fragmented.
	out, errOut, code := cmdtest.InNS(t, c.Host, gpingBin, "-M", "do", "-s", "2000", "-c", "1", "-W", "0.3", c.TargetAddr4.String())
	if code == 0 || !strings.Contains(errOut+out, "essage too long") {
		t.Errorf("-M do -s 2000: exit %d\n%s%s", code, out, errOut)
	}
	// Without -M do the same size goes out in fragments and is answered.
	out, _, code = cmdtest.InNS(t, c.Host, gpingBin, "-M", "dont", "-s", "2000", "-c", "1", c.TargetAddr4.String())
	if code != 0 || !strings.Contains(out, "2008 bytes from") {
		t.Errorf("-M dont -s 2000: exit %d\n%s", code, out)
	}
}
