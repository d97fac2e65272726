// Package cmdtest holds what the command tests of gping and gtrace share: building the command
// once, running it (on the host or in a lab namespace, in each socket mode) with a bound on its
// time, finding the peer tool it is compared with, and comparing output shapes.
package cmdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/internal/netlab"
)

// RunTimeout bounds every command a test runs.
const RunTimeout = 60 * time.Second

// Main builds the command in the current directory once, as released (static, no cgo, which
// is also what lets it drop capabilities on every thread), stores its path in *bin, runs the
// tests and removes the build. Call it from TestMain.
func Main(m *testing.M, name string, bin *string) {
	dir, err := os.MkdirTemp("", name+"-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	*bin = filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", *bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Run runs cmd to completion and returns stdout, stderr and the exit code; anything but a
// clean exit or an exit status fails the test.
func Run(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
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

// Host runs bin with args on the host, bounded by RunTimeout.
func Host(t testing.TB, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	return Run(t, exec.CommandContext(ctx, bin, args...))
}

// InNS runs a program inside a lab namespace, bounded by RunTimeout.
func InNS(t testing.TB, ns *netlab.NS, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	return Run(t, ns.Exec(ctx, name, args...))
}

// Modes are the ways the commands are run in the lab: "raw" and "dgram" force the socket kind
// as root; "dgram-user" runs the command as nobody with no capability in auto mode, which must
// pick the ping socket the test's namespace allows.
var Modes = []string{"raw", "dgram", "dgram-user"}

// InMode runs bin in ns in one of Modes.
func InMode(t testing.TB, ns *netlab.NS, mode, bin string, args ...string) (string, string, int) {
	t.Helper()
	switch mode {
	case "raw", "dgram":
		return InNS(t, ns, bin, append([]string{"--socket=" + mode}, args...)...)
	case "dgram-user":
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("setpriv (util-linux) not installed: cannot run unprivileged")
		}
		return InNS(t, ns, setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin}, args...)...)
	}
	t.Fatalf("unknown mode %q", mode)
	return "", "", 0
}

// NeedRoot skips tests that open raw sockets on the host's loopback when not root (the host's
// ping_group_range is not ours to change), or fails them under GPING_REQUIRE_LAB=1.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("GPING_REQUIRE_LAB") == "1" {
			t.Fatal("GPING_REQUIRE_LAB=1 but not root")
		}
		t.Skip("needs root for raw ICMP sockets on loopback")
	}
}

// NeedTool returns the path of a peer tool the output is compared with, or skips (fails under
// GPING_REQUIRE_LAB=1) when it is not installed.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("GPING_REQUIRE_LAB") == "1" {
			t.Fatalf("%s not installed (GPING_REQUIRE_LAB=1)", name)
		}
		t.Skipf("%s not installed: nothing to compare with", name)
	}
	return p
}

var numberRE = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// Shape replaces every number by N, so that two tools' outputs compare line by line whatever
// the timings and addresses.
func Shape(s string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		lines = append(lines, numberRE.ReplaceAllString(l, "N"))
	}
	return lines
}

// SameShape fails the test when ours and theirs differ other than in numbers.
func SameShape(t testing.TB, ours, theirs string) {
	t.Helper()
	if a, b := Shape(ours), Shape(theirs); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("output shape differs from the peer tool's\n--- ours:\n%s\n--- theirs:\n%s", ours, theirs)
	}
}

// Start starts cmd with its standard output on a pipe, which it returns, for tests that read
// the output as it comes; the process is killed when the test ends if it is still running. Set
// cmd.Stderr before calling to capture errors.
func Start(t testing.TB, cmd *exec.Cmd) io.ReadCloser {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return stdout
}
