package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sentinel errors; every error returned by this package wraps one of them (or
// an *exec.ExitError / syscall error) so callers can use errors.Is.
var (
	ErrNoCommand = errors.New("netlab: no command")
	ErrTimeout   = errors.New("netlab: command timed out")
	ErrCommand   = errors.New("netlab: command failed")
)

const (
	// netnsDir is where "ip netns add" bind-mounts named namespaces.
	netnsDir = "/run/netns"
	// nsPrefix starts every namespace name a Lab creates; the stale-lab sweep
	// only ever deletes names matching labNSPattern.
	nsPrefix = "gpl"
	// commandTimeout bounds every command netlab runs, so a wedged tool fails
	// the test instead of hanging it.
	commandTimeout = 30 * time.Second
	// requireEnv turns "cannot run the lab" from a skip into a failure.
	requireEnv = "GPING_REQUIRE_LAB"
)

var (
	labNSPattern   = regexp.MustCompile(`^gpl([0-9a-f]{6})-[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	pidFilePattern = regexp.MustCompile(`^gpinglab-([0-9a-f]{6})\.pid$`)
	shortName      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// Lab owns every namespace it creates and deletes them all in t.Cleanup, also
// when the test fails or panics.
//
// Namespaces are named "gpl" + 6 hex digits (the Lab's id) + "-" + a short
// name. The id is reserved host-wide by creating the file
// os.TempDir()/gpinglab-ID.pid exclusively; it holds the owner's PID and
// process start time. As a safety net for labs whose process died before its
// cleanup ran (SIGKILL, a test binary timeout), New deletes the namespaces
// "gplID-*" of every such file whose owner is no longer running, then the
// file. Namespaces without a readable pid file are never touched.
//
// A Lab is safe for concurrent use. Its methods report failures with the
// testing.TB given to New, so, as with testing.T.FailNow, call them from the
// goroutine running that test.
type Lab struct {
	t       testing.TB
	id      string
	pidFile string
	icmp    []sysctlKV // kernel ICMP rate-limit defaults, read from a fresh namespace in New

	mu     sync.Mutex
	nss    []*NS
	names  map[string]bool
	links  int
	chains int
	closed bool
}

// New returns a Lab, or skips the test with the reason when the lab cannot run
// here (not Linux, not root, no ip or sysctl binary, "ip netns add" fails).
// With GPING_REQUIRE_LAB=1 in the environment it fails the test instead, so
// CI notices integration suites that silently did not run.
func New(t testing.TB) *Lab {
	t.Helper()
	if runtime.GOOS != "linux" {
		unavailable(t, "network namespaces need Linux, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		unavailable(t, "network namespaces need root (euid %d)", os.Geteuid())
	}
	for _, bin := range []string{"ip", "sysctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(t, "%v", err)
		}
	}
	l := &Lab{t: t, names: make(map[string]bool)}
	if err := l.reserveID(); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(l.cleanup)
	removeStale(t)

	// The probe namespace shows that "ip netns add" works here, and, being
	// fresh, it holds the running kernel's ICMP rate-limit defaults, which
	// RateLimitICMPErrors restores (they differ between kernel versions).
	probe, err := l.createNS("probe", nil)
	if err != nil {
		unavailable(t, "%v", err)
	}
	if l.icmp, err = probe.readSysctls(icmpLimitKeys[:]); err != nil {
		t.Fatalf("%v", err)
	}
	return l
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "netlab: lab unavailable: " + fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s (%s=1)", msg, requireEnv)
	}
	t.Skip(msg)
}

// reserveID picks a random id and claims it with an exclusively created pid
// file, so two labs (in any process) never share a namespace prefix.
func (l *Lab) reserveID() error {
	start, err := startTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("netlab: own start time: %w", err)
	}
	for range 8 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("netlab: lab id: %w", err)
		}
		id := hex.EncodeToString(b[:])
		name := filepath.Join(os.TempDir(), "gpinglab-"+id+".pid")
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlab: pid file: %w", err)
		}
		_, err = fmt.Fprintf(f, "%d %d\n", os.Getpid(), start)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return fmt.Errorf("netlab: pid file: %w", err)
		}
		l.id, l.pidFile = id, name
		return nil
	}
	return errors.New("netlab: no free lab id after 8 tries")
}

// startTime returns field 22 of /proc/PID/stat, the process start time in
// clock ticks since boot; with the PID it names a process uniquely, even
// after the PID is reused.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may contain spaces and parentheses; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("netlab: malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("netlab: short /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// ownerDead reports whether the pid file names a process that no longer
// runs. Unreadable or malformed files count as alive: the file may be in the
// middle of being written, and deleting a live lab would be far worse than
// leaking a dead one.
func ownerDead(pidFile string) bool {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d\n", &pid, &start); err != nil || pid <= 0 {
		return false
	}
	got, err := startTime(pid)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && got != start
}

// removeStale deletes the namespaces and pid files of labs whose owning
// process has died. Failures are logged, not fatal: another process may be
// sweeping the same lab at the same moment.
func removeStale(t testing.TB) {
	files, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Logf("netlab: stale sweep: %v", err)
		return
	}
	var dead []string
	for _, f := range files {
		m := pidFilePattern.FindStringSubmatch(f.Name())
		if m != nil && ownerDead(filepath.Join(os.TempDir(), f.Name())) {
			dead = append(dead, m[1])
		}
	}
	if len(dead) == 0 {
		return
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("netlab: stale sweep: %v", err)
		return
	}
	for _, id := range dead {
		var batch strings.Builder
		for _, e := range entries {
			if m := labNSPattern.FindStringSubmatch(e.Name()); m != nil && m[1] == id {
				fmt.Fprintf(&batch, "netns del %s\n", e.Name())
			}
		}
		if batch.Len() > 0 {
			if _, err := runInput(batch.String(), "ip", "-force", "-batch", "-"); err != nil {
				t.Logf("netlab: stale lab %s: %v", id, err)
				continue
			}
			t.Logf("netlab: deleted namespaces of stale lab %s", id)
		}
		os.Remove(filepath.Join(os.TempDir(), "gpinglab-"+id+".pid"))
	}
}

// cleanup deletes every namespace of the lab. The pid file goes last, and
// only if every deletion worked, so a later New can still sweep leftovers.
func (l *Lab) cleanup() {
	l.mu.Lock()
	nss := l.nss
	l.nss = nil
	l.closed = true
	l.mu.Unlock()
	var batch strings.Builder
	for _, n := range nss {
		fmt.Fprintf(&batch, "netns del %s\n", n.name)
	}
	if batch.Len() > 0 {
		if _, err := runInput(batch.String(), "ip", "-force", "-batch", "-"); err != nil {
			l.t.Errorf("netlab: deleting lab %s: %v", l.id, err)
			return
		}
	}
	if err := os.Remove(l.pidFile); err != nil {
		l.t.Errorf("netlab: %v", err)
	}
}

// NewNS creates the namespace "gplID-name", brings lo up and disables IPv6
// duplicate address detection (net.ipv6.conf.{all,default}.accept_dad=0) so
// that addresses never wait out DAD. (Addresses added by Link and Chain are
// ready when those return; ones added by hand with "ip address add" may take
// the kernel a moment longer, see Link.) name must be unique in
// the Lab (New already made "probe") and match [A-Za-z0-9][A-Za-z0-9_.-]*.
func (l *Lab) NewNS(name string) *NS {
	l.t.Helper()
	n, err := l.createNS(name, nil)
	if err != nil {
		l.t.Fatalf("%v", err)
	}
	if _, err := n.ip("link set lo up\n"); err != nil {
		l.t.Fatalf("%v", err)
	}
	return n
}

// createNS adds the namespace, records it for cleanup, then writes the DAD
// sysctls and extra (one exec for all of them). lo is left down for the caller
// to batch with its other link commands.
func (l *Lab) createNS(name string, extra []sysctlKV) (*NS, error) {
	if !shortName.MatchString(name) {
		return nil, fmt.Errorf("netlab: bad namespace name %q", name)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: lab %s is closed", l.id)
	}
	if l.names[name] {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: namespace %q already exists in lab %s", name, l.id)
	}
	l.names[name] = true
	l.mu.Unlock()

	n := &NS{lab: l, name: nsPrefix + l.id + "-" + name}
	if _, err := runInput("", "ip", "netns", "add", n.name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.mu.Unlock()
	kvs := append([]sysctlKV{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
	}, extra...)
	if err := n.writeSysctls(kvs); err != nil {
		return nil, err
	}
	return n, nil
}

// vethNames returns a fresh pair of interface names: "v", four hex digits of
// the lab id, the link number, then "a" or "b". They fit IFNAMSIZ (15 bytes)
// for the first 10^9 links and tell in a capture which lab and link they are.
func (l *Lab) vethNames() (string, string) {
	l.mu.Lock()
	i := l.links
	l.links++
	l.mu.Unlock()
	base := fmt.Sprintf("v%s%d", l.id[:4], i)
	return base + "a", base + "b"
}

// Link creates a veth pair with one end in a and the other in b, assigns the
// given addresses (CIDR strings such as "198.18.0.1/30" or
// "2001:db8:0:1::1/64"; IPv6 ones with nodad) and brings both ends up. It
// returns the two interface names.
//
// Link returns only once both ends can carry traffic, which the kernel
// finishes asynchronously in two ways. Until its link-watch work has handled
// the carrier change, a new veth drops what it is asked to send; querying the
// device with RTM_GETLINK ("ip link show dev X") runs that work at once
// (Linux 6.8 and later). IPv6 addresses become local in another work item,
// whose completion Link waits for on netlink (see localWatch).
func (l *Lab) Link(a *NS, aAddrs []string, b *NS, bAddrs []string) (aIf, bIf string) {
	l.t.Helper()
	aCmds, err := parseAddrs(aAddrs)
	if err != nil {
		l.t.Fatalf("%v", err)
	}
	bCmds, err := parseAddrs(bAddrs)
	if err != nil {
		l.t.Fatalf("%v", err)
	}
	wa, err := a.watchLocal6()
	if err != nil {
		l.t.Fatalf("%v", err)
	}
	defer wa.close()
	wb, err := b.watchLocal6()
	if err != nil {
		l.t.Fatalf("%v", err)
	}
	defer wb.close()
	aIf, bIf = l.vethNames()
	var batch strings.Builder
	fmt.Fprintf(&batch, "link add %s type veth peer name %s netns %s\n", aIf, bIf, b.name)
	configure(&batch, aIf, aCmds)
	if _, err := a.ip(batch.String()); err != nil {
		l.t.Fatalf("%v", err)
	}
	batch.Reset()
	configure(&batch, bIf, bCmds)
	fmt.Fprintf(&batch, "link show dev %s\n", bIf)
	if _, err := b.ip(batch.String()); err != nil {
		l.t.Fatalf("%v", err)
	}
	if _, err := a.ip("link show dev " + aIf + "\n"); err != nil {
		l.t.Fatalf("%v", err)
	}
	if err := wa.wait(addrsOf(aCmds)); err != nil {
		l.t.Fatalf("%v", err)
	}
	if err := wb.wait(addrsOf(bCmds)); err != nil {
		l.t.Fatalf("%v", err)
	}
	return aIf, bIf
}

// parseAddrs validates CIDR strings such as "198.18.0.1/30".
func parseAddrs(addrs []string) ([]netip.Prefix, error) {
	ps := make([]netip.Prefix, 0, len(addrs))
	for _, s := range addrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("netlab: address %q: %w", s, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func addrsOf(ps []netip.Prefix) []netip.Addr {
	as := make([]netip.Addr, len(ps))
	for i, p := range ps {
		as[i] = p.Addr()
	}
	return as
}

// configure appends the address and link-up commands for one interface.
// IPv6 addresses get nodad, so they are never tentative whatever the
// namespace's sysctls say.
func configure(b *strings.Builder, ifName string, addrs []netip.Prefix) {
	for _, p := range addrs {
		nodad := ""
		if !p.Addr().Is4() {
			nodad = " nodad"
		}
		fmt.Fprintf(b, "address add %s dev %s%s\n", p, ifName, nodad)
	}
	fmt.Fprintf(b, "link set %s up\n", ifName)
}

// runInput runs a host-level command with stdin, bounded by commandTimeout.
// It is used only for "ip netns add/del" (which act on the mount table, not on
// any network namespace) and, through NS, for "ip -n" and "ip netns exec".
func runInput(stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return runCmd(ctx, exec.CommandContext(ctx, name, args...), stdin)
}

func runCmd(ctx context.Context, cmd *exec.Cmd, stdin string) (string, error) {
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	// A grandchild keeping the output pipe open must not outlive the timeout.
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		return string(out), nil
	}
	line := strings.Join(cmd.Args, " ")
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%w: %s: %w\n%s", ErrTimeout, line, err, out)
	}
	return string(out), fmt.Errorf("%w: %s: %w\n%s%s", ErrCommand, line, err, out, indent(stdin))
}

// indent shows a batch script under the error it caused.
func indent(script string) string {
	if script == "" {
		return ""
	}
	return "input:\n\t" + strings.ReplaceAll(strings.TrimSuffix(script, "\n"), "\n", "\n\t")
}
