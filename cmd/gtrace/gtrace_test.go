package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// gtraceBin is the gtrace binary built once for the tests that run it as a process.
var gtraceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gtrace-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	gtraceBin = filepath.Join(dir, "gtrace")
	// Built as released (static, no cgo), which is also what lets gtrace drop capabilities on
	// every thread.
	build := exec.Command("go", "build", "-o", gtraceBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building gtrace: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCmd runs a command to completion and returns stdout, stderr and the exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return o.String(), e.String(), code
}

// needRoot skips tests that open raw sockets on the host's loopback when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("GPING_REQUIRE_LAB") == "1" {
			t.Fatal("GPING_REQUIRE_LAB=1 but not root")
		}
		t.Skip("needs root for raw ICMP sockets on loopback")
	}
}

// needTraceroute returns Debian's traceroute, which the output is compared with.
func needTraceroute(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("traceroute")
	if err != nil {
		if os.Getenv("GPING_REQUIRE_LAB") == "1" {
			t.Fatal("traceroute not installed (GPING_REQUIRE_LAB=1)")
		}
		t.Skip("traceroute not installed: nothing to compare with")
	}
	return p
}

var numberRE = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// shape replaces every number by N, so that two tools' outputs compare line by line whatever
// the timings and addresses.
func shape(s string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		lines = append(lines, numberRE.ReplaceAllString(l, "N"))
	}
	return lines
}

func sameShape(t *testing.T, ours, theirs string) {
	t.Helper()
	if a, b := shape(ours), shape(theirs); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("output shape differs from traceroute's\n--- gtrace:\n%s--- traceroute:\n%s", ours, theirs)
	}
}

// TestLoopback: one hop to the host itself, in each family, shaped as traceroute -I prints it.
func TestLoopback(t *testing.T) {
	needRoot(t)
	tr := needTraceroute(t)
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
			ours, errOut, code := runCmd(t, exec.CommandContext(ctx, gtraceBin, c.args...))
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, ours)
			}
			theirs, _, _ := runCmd(t, exec.CommandContext(ctx, tr, append([]string{"-I"}, c.args...)...))
			sameShape(t, ours, theirs)
			if !strings.Contains(ours, " hops max, "+c.size+" byte packets\n") {
				t.Errorf("header, want %s bytes:\n%s", c.size, ours)
			}
		})
	}
}
