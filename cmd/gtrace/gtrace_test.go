package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/internal/cmdtest"
)

// gtraceBin is the gtrace binary built once for the tests that run it as a process.
var gtraceBin string

func TestMain(m *testing.M) { cmdtest.Main(m, "gtrace", &gtraceBin) }

// TestLoopback: one hop to the host itself, in each family, shaped as traceroute -I prints it.
func TestLoopback(t *testing.T) {
	cmdtest.NeedRoot(t)
	tr := cmdtest.NeedTool(t, "traceroute")
	for _, c := range []struct {
		args []string
		size string
	}{
		{[]string{"-n", "127.0.0.1"}, "60"},
		{[]string{"-n", "::1"}, "80"},
		{[]string{"-n", "-q", "1", "::1", "100"}, "100"},
		{[]string{"-n", "-f", "1", "-m", "1", "127.0.0.1", "28"}, "28"},
		{[]string{"-n", "127.0.0.1", "10"}, "28"}, // raised to the headers' length
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ours, errOut, code := cmdtest.Run(t, exec.CommandContext(ctx, gtraceBin, c.args...))
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, ours)
			}
			theirs, _, _ := cmdtest.Run(t, exec.CommandContext(ctx, tr, append([]string{"-I"}, c.args...)...))
			cmdtest.SameShape(t, ours, theirs)
			if !strings.Contains(ours, " hops max, "+c.size+" byte packets\n") {
				t.Errorf("header, want %s bytes:\n%s", c.size, ours)
			}
		})
	}
}

// TestLoopbackMTU: --mtu starts at the route's link MTU, and loopback's 65536 is more than an
// IP datagram holds: gtrace probes at 65535, both families, and every probe is answered.
func TestLoopbackMTU(t *testing.T) {
	cmdtest.NeedRoot(t)
	for _, dst := range []string{"127.0.0.1", "::1"} {
		out, errOut, code := cmdtest.Host(t, gtraceBin, "-n", "--mtu", dst)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || errOut != "" || len(lines) != 2 || !strings.HasSuffix(lines[0], ", 65535 byte packets") ||
			strings.Contains(lines[1], "*") || strings.Contains(lines[1], "F=") {
			t.Errorf("%s: exit %d, stderr %q\n%s", dst, code, errOut, out)
		}
	}
}
