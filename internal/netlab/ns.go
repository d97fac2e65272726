package netlab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// NS is a named network namespace owned by a Lab. All its methods act inside
// the namespace, never on the host. An NS is safe for concurrent use; methods
// taking a testing.TB report failures through it, so call them from the
// goroutine running that test.
type NS struct {
	lab  *Lab
	name string
}

// sysctlKV is one sysctl assignment, key in dotted form.
type sysctlKV struct{ key, value string }

// Name returns the namespace's full name, as "ip netns" knows it.
func (n *NS) Name() string { return n.name }

// Path returns the namespace's bind mount, /run/netns/NAME, which setns(2)
// and "nsenter --net=" accept.
func (n *NS) Path() string { return netnsDir + "/" + n.name }

// Exec returns a command that runs name with args inside the namespace
// ("ip netns exec NAME name args..."), killed when ctx is done.
func (n *NS) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Run runs args[0] with args[1:] inside the namespace and returns its
// combined output. It gives up after 30 s (the error then wraps ErrTimeout);
// a non-zero exit wraps ErrCommand and the *exec.ExitError.
func (n *NS) Run(args ...string) (string, error) {
	return n.runInput("", args...)
}

// MustRun is Run that fails the test on error, showing the output.
func (n *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

func (n *NS) runInput(stdin string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%w in %s", ErrNoCommand, n.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return runCmd(ctx, n.Exec(ctx, args[0], args[1:]...), stdin)
}

// ip runs an "ip -batch" script inside the namespace: one process for any
// number of link, address and route commands.
func (n *NS) ip(script string) (string, error) {
	return runInput(script, "ip", "-n", n.name, "-batch", "-")
}

// Sysctl sets key (dotted form, e.g. "net.ipv4.ip_forward") to value inside
// the namespace with "ip netns exec NAME sysctl -w"; only per-namespace keys
// exist there, so the host's settings cannot be reached.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if err := n.writeSysctls([]sysctlKV{{key, value}}); err != nil {
		t.Fatalf("%v", err)
	}
}

func (n *NS) writeSysctls(kvs []sysctlKV) error {
	args := []string{"sysctl", "-q", "-w"}
	for _, kv := range kvs {
		if kv.key == "" || strings.ContainsAny(kv.key, "= \t\n") || strings.ContainsAny(kv.value, "\n") {
			return fmt.Errorf("netlab: bad sysctl %q=%q", kv.key, kv.value)
		}
		args = append(args, kv.key+"="+kv.value)
	}
	_, err := n.Run(args...)
	return err
}

// readSysctls returns the current values of keys, in order.
func (n *NS) readSysctls(keys []string) ([]sysctlKV, error) {
	out, err := n.Run(append([]string{"sysctl", "-n"}, keys...)...)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(keys) {
		return nil, fmt.Errorf("%w: sysctl -n %v printed %d lines", ErrCommand, keys, len(lines))
	}
	kvs := make([]sysctlKV, len(keys))
	for i, k := range keys {
		kvs[i] = sysctlKV{k, lines[i]}
	}
	return kvs, nil
}
