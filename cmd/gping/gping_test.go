package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gping/gping/internal/cmdtest"
)

// gpingBin is the gping binary built once for the tests that run it as a process.
var gpingBin string

func TestMain(m *testing.M) { cmdtest.Main(m, "gping", &gpingBin) }

func gping(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return cmdtest.Host(t, gpingBin, args...)
}

var replyRE = regexp.MustCompile(`^(\d+) bytes from ([^:]+): icmp_seq=(\d+) ttl=(\d+) time=([\d.]+) ms$`)

func TestLoopbackLikeIputils(t *testing.T) {
	cmdtest.NeedRoot(t)
	ping := cmdtest.NeedTool(t, "ping")
	for _, args := range [][]string{
		{"-c", "3", "-i", "0.01", "127.0.0.1"},
		{"-c", "2", "-i", "0.01", "-s", "100", "127.0.0.1"},
		{"-c", "2", "-i", "0.01", "-q", "127.0.0.1"},
		{"-c", "2", "-i", "0.01", "-D", "127.0.0.1"},
		{"-c", "3", "-i", "0.01", "::1"},
		{"-c", "2", "-i", "0.01", "-n", "-t", "9", "127.0.0.1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ours, _, code := gping(t, args...)
			theirs, _, pcode := cmdtest.Run(t, exec.Command(ping, args...))
			if code != 0 || pcode != 0 {
				t.Fatalf("exit codes gping %d, ping %d\n%s", code, pcode, ours)
			}
			cmdtest.SameShape(t, ours, theirs)
			seq := 0
			for _, l := range strings.Split(ours, "\n") {
				if m := replyRE.FindStringSubmatch(l); m != nil {
					seq++
					if m[3] != strconv.Itoa(seq) || m[4] != "64" {
						t.Errorf("reply line %q: want icmp_seq=%d ttl=64", l, seq)
					}
				}
			}
		})
	}
}

func TestSummaryCounts(t *testing.T) {
	cmdtest.NeedRoot(t)
	out, _, code := gping(t, "-c", "4", "-i", "0.01", "--percentiles", "127.0.0.1")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"--- 127.0.0.1 ping statistics ---\n4 packets transmitted, 4 received, 0% packet loss, time ",
		"rtt min/avg/max/mdev = ",
		"rtt p50/p90/p99/jitter = ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "bytes from 127.0.0.1"); n != 4 {
		t.Errorf("%d reply lines, want 4", n)
	}
}

// TestSignals: SIGQUIT prints the status line and the run goes on; SIGINT ends it with the full
// summary, and the transmitted count is what was sent.
func TestSignals(t *testing.T) {
	cmdtest.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gpingBin, "-i", "0.01", "127.0.0.1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout := cmdtest.Start(t, cmd)
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	replies := 0
	waitReplies := func(n int) {
		for replies < n && sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if replyRE.MatchString(sc.Text()) {
				replies++
			}
		}
	}
	waitReplies(3)
	cmd.Process.Signal(syscall.SIGQUIT)
	waitReplies(6) // still running after SIGQUIT
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stdout)
	out.Write(rest)
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("gping ended with %v\n%s\n%s", err, out.String(), stderr.String())
	}
	if !regexp.MustCompile(`\r\d+/\d+ packets, \d+% loss, min/avg/ewma/max = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms\n`).MatchString(stderr.String()) {
		t.Errorf("no SIGQUIT status line on stderr: %q", stderr.String())
	}
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no summary after SIGINT:\n%s", out.String())
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	lines := strings.Count(out.String(), " bytes from ")
	if recv != lines || sent < recv || sent > recv+1 || recv < 6 {
		t.Errorf("summary says %d sent, %d received; %d reply lines", sent, recv, lines)
	}
	if strings.Count(out.String(), "ping statistics") != 1 {
		t.Errorf("summary printed other than once:\n%s", out.String())
	}
}
