//go:build linux

package rawsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
)

// The lab: network namespaces the tests create (and always delete) so that they never touch
// the host's interfaces or sysctls. Addresses come from 198.18.0.0/15 and 2001:db8::/32 only.

const readTimeout = 5 * time.Second

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a namespace with lo up in a lab of netlab's, which deletes it when the test
// ends (and skips the test, or fails it under GPING_REQUIRE_LAB=1, when no lab can be made).
func newNetns(t testing.TB, tag string) *netlab.NS {
	t.Helper()
	return netlab.New(t).NewNS(tag)
}

// getSysctl reads a sysctl in ns (nil: the host, read only).
func getSysctl(t testing.TB, ns *netlab.NS, key string) string {
	t.Helper()
	if ns == nil {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	return strings.TrimSpace(ns.MustRun(t, "sysctl", "-n", key))
}

// inNetns runs fn with the OS thread in namespace ns (nil means: stay here).
func inNetns(t testing.TB, ns *netlab.NS, fn func()) {
	t.Helper()
	if ns == nil {
		fn()
		return
	}
	if err := ns.Do(func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// listenIn opens a Conn inside namespace ns and closes it when the test ends.
func listenIn(t testing.TB, ns *netlab.NS, f icmp.Family, cfg *Config) (*Conn, error) {
	t.Helper()
	var c *Conn
	var err error
	inNetns(t, ns, func() { c, err = Listen(f, cfg) })
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// loopback returns the loopback address of f.
func loopback(f icmp.Family) netip.Addr {
	if f == icmp.IPv6 {
		return netip.IPv6Loopback()
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// loopbackConn opens a socket of mode m whose pings to loopback no one else sees: inside a
// private namespace that allows ping sockets when the lab is available, on the host otherwise
// (skipping when the host refuses that kind of socket). It returns the namespace ("" for the
// host, nil).
func loopbackConn(t testing.TB, f icmp.Family, m Mode) (*Conn, *netlab.NS) {
	t.Helper()
	var ns *netlab.NS
	if os.Geteuid() == 0 || os.Getenv("GPING_REQUIRE_LAB") == "1" {
		ns = newNetns(t, "lo")
		ns.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	}
	if f == icmp.IPv6 {
		var addrs string
		if ns == nil {
			addrs = run(t, "ip", "-6", "addr", "show", "dev", "lo")
		} else {
			addrs = ns.MustRun(t, "ip", "-6", "addr", "show", "dev", "lo")
		}
		if !strings.Contains(addrs, "::1/128") {
			t.Skip("skipping: ::1 is unavailable (IPv6 disabled?)")
		}
	}
	c, err := listenIn(t, ns, f, &Config{Mode: m})
	if ns == nil && errors.Is(err, ErrPermission) {
		t.Skipf("skipping: the host refuses %v sockets: %v", m, err)
	}
	if err != nil {
		t.Fatalf("Listen(%v, %v): %v", f, m, err)
	}
	return c, ns
}

// readWithin reads one packet, failing the test (and closing c) if none arrives in time.
func readWithin(t testing.TB, c *Conn, buf []byte, p *Packet) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.ReadPacket(buf, p) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ReadPacket: %v", err)
		}
	case <-time.After(readTimeout):
		c.Close()
		<-done
		t.Fatalf("no packet within %v", readTimeout)
	}
}

// echoFields returns type, id and seq of an ICMP echo message.
func echoFields(b []byte) (typ uint8, id, seq uint16, ok bool) {
	if len(b) < 8 {
		return 0, 0, 0, false
	}
	return b[0], binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), true
}

// prober sends echo requests with a random token payload and recognises their replies.
type prober struct {
	t     testing.TB
	c     *Conn
	id    uint16
	token []byte
	buf   []byte
	req   []byte
}

func newProber(t testing.TB, c *Conn) *prober {
	pr := &prober{t: t, c: c, id: c.ID(), token: make([]byte, 16), buf: make([]byte, 1<<16+512)}
	if c.Mode() == Privileged {
		pr.id = uint16(rand.Uint32N(1<<16-1) + 1)
	}
	for i := range pr.token {
		pr.token[i] = byte(rand.Uint32())
	}
	return pr
}

func (pr *prober) send(dst netip.Addr, seq uint16, opt *WriteOptions) error {
	pr.req = icmp.AppendEchoRequest(pr.req[:0], pr.c.Family(), pr.id, seq, pr.token)
	return pr.c.WriteTo(pr.req, dst, opt)
}

// isOurEcho reports whether b is an echo message of type typ from this prober with seq.
func (pr *prober) isOurEcho(b []byte, typ uint8, seq uint16) bool {
	gt, id, gs, ok := echoFields(b)
	return ok && gt == typ && id == pr.id && gs == seq && bytes.Equal(b[8:], pr.token)
}

// closeUnblocks closes a socket with closer while a call of it (named what) is blocked or about
// to block, and checks that the call then ends with net.ErrClosed within wait, and that a
// second Close reports net.ErrClosed too.
func closeUnblocks(t *testing.T, what string, closer func() error, done <-chan error, wait time.Duration) {
	t.Helper()
	if err := closer(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v, want net.ErrClosed", what, err)
		}
	case <-time.After(wait):
		t.Fatalf("Close did not unblock %s", what)
	}
	if err := closer(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}
