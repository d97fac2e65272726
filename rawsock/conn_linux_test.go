//go:build linux

package rawsock

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
)

var (
	families = []icmp.Family{icmp.IPv4, icmp.IPv6}
	modes    = []Mode{Privileged, Unprivileged}
)

func TestListenModes(t *testing.T) {
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.String()+"/"+m.String(), func(t *testing.T) {
				c, _ := loopbackConn(t, f, m)
				if c.Family() != f {
					t.Errorf("Family() = %v, want %v", c.Family(), f)
				}
				if c.Mode() != m {
					t.Errorf("Mode() = %v, want %v", c.Mode(), m)
				}
				if m == Unprivileged && c.ID() == 0 {
					t.Error("datagram socket: ID() = 0, want the ident the kernel assigned")
				}
				if m == Privileged && c.ID() != 0 {
					t.Errorf("raw socket: ID() = %d, want 0", c.ID())
				}
				if !c.LocalAddr().IsValid() || !familyMatches(f, c.LocalAddr()) {
					t.Errorf("LocalAddr() = %v, want an %v address", c.LocalAddr(), f)
				}
			})
		}
	}
}

// TestListenAuto checks the order of Auto: datagram when ping_group_range allows it, raw
// (we are root) when it does not.
func TestListenAuto(t *testing.T) {
	for _, tc := range []struct {
		groups string
		want   Mode
	}{
		{"0 2147483647", Unprivileged},
		{"1 0", Privileged},
	} {
		t.Run(tc.groups, func(t *testing.T) {
			ns := newNetns(t, "auto")
			ns.Sysctl(t, "net.ipv4.ping_group_range", tc.groups)
			c, err := listenIn(t, ns, icmp.IPv4, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode() != tc.want {
				t.Errorf("ping_group_range %q: Mode() = %v, want %v", tc.groups, c.Mode(), tc.want)
			}
		})
	}
}

// TestListenSource binds to an explicit local address in both modes.
func TestListenSource(t *testing.T) {
	ns := newNetns(t, "src")
	ns.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	run(t, "ip", "-n", ns.Name(), "addr", "add", "198.18.7.1/32", "dev", "lo")
	src := netip.MustParseAddr("198.18.7.1")
	for _, m := range modes {
		c, err := listenIn(t, ns, icmp.IPv4, &Config{Mode: m, Source: src, PMTU: PMTUDo, TOS: 0x20, RecvBuffer: 1 << 20})
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if c.LocalAddr() != src {
			t.Errorf("%v: LocalAddr() = %v, want %v", m, c.LocalAddr(), src)
		}
		// A reply to a probe sent from src comes back to src.
		pr := newProber(t, c)
		if err := pr.send(src, 1, nil); err != nil {
			t.Fatal(err)
		}
		var p Packet
		readWithin(t, c, pr.buf, &p)
		if !pr.isOurEcho(p.Data, 0, 1) || p.Dst != src || p.Src != src {
			t.Errorf("%v: got %v -> %v % x, want our echo reply %v -> %v", m, p.Src, p.Dst, p.Data, src, src)
		}
	}
}

func TestListenErrors(t *testing.T) {
	ns := newNetns(t, "err")
	ns.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	_, err := listenIn(t, ns, icmp.IPv4, &Config{Mode: Privileged, Interface: "gping-no-such-if"})
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "listen" || !errors.Is(err, syscall.ENODEV) {
		t.Errorf("bad Interface: err = %v, want a listen *net.OpError wrapping ENODEV", err)
	}
	// A source address the namespace does not own.
	_, err = listenIn(t, ns, icmp.IPv4, &Config{Mode: Unprivileged, Source: netip.MustParseAddr("198.18.9.9")})
	if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("foreign Source: err = %v, want EADDRNOTAVAIL", err)
	}
	// SO_BINDTODEVICE to an existing interface works.
	if _, err := listenIn(t, ns, icmp.IPv4, &Config{Mode: Privileged, Interface: "lo", Mark: 7}); err != nil {
		t.Errorf("Interface lo, Mark 7: %v", err)
	}
}

// TestEchoLoopback pings the loopback address and checks every field of the reply.
func TestEchoLoopback(t *testing.T) {
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.String()+"/"+m.String(), func(t *testing.T) {
				c, ns := loopbackConn(t, f, m)
				wantTTL := 0
				if f == icmp.IPv4 {
					wantTTL, _ = strconv.Atoi(getSysctl(t, ns, "net.ipv4.ip_default_ttl"))
				} else {
					wantTTL, _ = strconv.Atoi(getSysctl(t, ns, "net.ipv6.conf.lo.hop_limit"))
				}
				dst := loopback(f)
				pr := newProber(t, c)
				var p Packet
				for seq := uint16(1); seq <= 2; seq++ {
					before := time.Now()
					// The request's own TTL must not leak into the reply's: that is the
					// responder's default.
					if err := pr.send(dst, seq, &WriteOptions{TTL: 7}); err != nil {
						t.Fatalf("WriteTo: %v", err)
					}
					// On a raw socket without the kernel filter, the next packet would be our
					// own request looping back; the filter lets only the reply through.
					readWithin(t, c, pr.buf, &p)
					after := time.Now()
					if typ, _, _, _ := echoFields(p.Data); typ == f.EchoRequestType() {
						t.Fatalf("seq %d: read our own echo request: the ICMP filter let it through", seq)
					}
					if !pr.isOurEcho(p.Data, f.EchoReplyType(), seq) {
						t.Fatalf("seq %d: Data = % x, want our echo reply", seq, p.Data)
					}
					if p.Err != nil {
						t.Errorf("Err = %+v, want nil", p.Err)
					}
					if p.Src != dst || p.Dst != dst {
						t.Errorf("Src, Dst = %v, %v, want %v, %v", p.Src, p.Dst, dst, dst)
					}
					if p.TTL != wantTTL {
						t.Errorf("TTL = %d, want the responder's default %d", p.TTL, wantTTL)
					}
					if p.Time.Before(before) || p.Time.After(after) {
						t.Errorf("Time = %v, want within [%v, %v]", p.Time, before, after)
					}
					if lo, err := net.InterfaceByName("lo"); err == nil && p.IfIndex != lo.Index {
						t.Errorf("IfIndex = %d, want lo (%d)", p.IfIndex, lo.Index)
					}
				}
			})
		}
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			c, _ := loopbackConn(t, icmp.IPv4, m)
			started := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				close(started)
				var p Packet
				done <- c.ReadPacket(make([]byte, 1500), &p)
			}()
			<-started
			closeUnblocks(t, "ReadPacket", c.Close, done, readTimeout)
			if err := c.WriteTo([]byte{8, 0, 0, 0, 0, 0, 0, 0}, loopback(icmp.IPv4), nil); !errors.Is(err, net.ErrClosed) {
				t.Errorf("WriteTo after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestWriteToInvalid(t *testing.T) {
	c, _ := loopbackConn(t, icmp.IPv4, Unprivileged)
	req := icmp.AppendEchoRequest(nil, icmp.IPv4, 0, 1, nil)
	for _, tc := range []struct {
		dst  netip.Addr
		opt  *WriteOptions
		want error
	}{
		{netip.Addr{}, nil, ErrInvalidAddr},
		{netip.IPv6Loopback(), nil, ErrInvalidAddr},
		{loopback(icmp.IPv4), &WriteOptions{TTL: 256}, ErrInvalidTTL},
		{loopback(icmp.IPv4), &WriteOptions{TTL: -1}, ErrInvalidTTL},
	} {
		err := c.WriteTo(req, tc.dst, tc.opt)
		var oe *net.OpError
		if !errors.Is(err, tc.want) || !errors.As(err, &oe) || oe.Op != "write" {
			t.Errorf("WriteTo(%v, %+v) = %v, want a write *net.OpError wrapping %v", tc.dst, tc.opt, err, tc.want)
		}
	}
}

// routedLab builds host -- router -- far, each in its own namespace:
//
//	host 198.18.0.2 / 2001:db8:1::2  --  198.18.0.1 / 2001:db8:1::1 router
//	router 198.18.1.1 / 2001:db8:2::1  --  198.18.1.2 / 2001:db8:2::2 far
//	router 198.18.2.1 / 2001:db8:4::1  --  nobody (the peer veth stays in the router)
//
// The host has an unreachable route to 198.19.255.0/24 and 2001:db8:ffff::/48. Nobody owns
// 198.18.2.3 and 2001:db8:4::3: the router's address resolution on veth4 gives up after one
// probe and 100 ms and it answers with a destination unreachable (RFC 1812 section 4.3.3.1;
// RFC 4443 section 3.1, address unreachable). An unreachable route in the router would not do
// for IPv4: ip_error charges its error to a per-source token bucket that starts empty. The
// links towards real hosts keep the default resolution retries, which absorb the time a new
// veth takes to become ready.
type routedLab struct {
	host          *netlab.NS
	router, far   map[icmp.Family]netip.Addr // router: its host-side address
	localUnreach  map[icmp.Family]netip.Addr // unreachable in the host
	remoteUnreach map[icmp.Family]netip.Addr // unresolvable behind the router
}

func newRoutedLab(t *testing.T) *routedLab {
	lab := netlab.New(t)
	hNS, rNS, fNS := lab.NewNS("host"), lab.NewNS("router"), lab.NewNS("far")
	h, r, f := hNS.Name(), rNS.Name(), fNS.Name()
	run(t, "ip", "-n", h, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", r)
	run(t, "ip", "-n", r, "link", "add", "veth2", "type", "veth", "peer", "name", "veth3", "netns", f)
	run(t, "ip", "-n", r, "link", "add", "veth4", "type", "veth", "peer", "name", "veth5")
	for _, c := range [][]string{
		{h, "addr", "add", "198.18.0.2/24", "dev", "veth0"},
		{h, "-6", "addr", "add", "2001:db8:1::2/64", "dev", "veth0", "nodad"},
		{h, "link", "set", "veth0", "up"},
		{h, "route", "add", "default", "via", "198.18.0.1"},
		{h, "-6", "route", "add", "default", "via", "2001:db8:1::1"},
		{h, "route", "add", "unreachable", "198.19.255.0/24"},
		{h, "-6", "route", "add", "unreachable", "2001:db8:ffff::/48"},
		{r, "addr", "add", "198.18.0.1/24", "dev", "veth1"},
		{r, "-6", "addr", "add", "2001:db8:1::1/64", "dev", "veth1", "nodad"},
		{r, "link", "set", "veth1", "up"},
		{r, "addr", "add", "198.18.1.1/24", "dev", "veth2"},
		{r, "-6", "addr", "add", "2001:db8:2::1/64", "dev", "veth2", "nodad"},
		{r, "link", "set", "veth2", "up"},
		{r, "addr", "add", "198.18.2.1/24", "dev", "veth4"},
		{r, "-6", "addr", "add", "2001:db8:4::1/64", "dev", "veth4", "nodad"},
		{r, "link", "set", "veth4", "up"},
		{r, "link", "set", "veth5", "up"},
		{f, "addr", "add", "198.18.1.2/24", "dev", "veth3"},
		{f, "-6", "addr", "add", "2001:db8:2::2/64", "dev", "veth3", "nodad"},
		{f, "link", "set", "veth3", "up"},
		{f, "route", "add", "default", "via", "198.18.1.1"},
		{f, "-6", "route", "add", "default", "via", "2001:db8:2::1"},
	} {
		run(t, append([]string{"ip", "-n"}, c...)...)
	}
	hNS.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	for key, val := range map[string]string{
		"net.ipv4.ip_forward":                  "1",
		"net.ipv6.conf.all.forwarding":         "1",
		"net.ipv4.icmp_ratelimit":              "0",
		"net.ipv6.icmp.ratelimit":              "0",
		"net.ipv4.neigh.veth4.mcast_solicit":   "1",
		"net.ipv4.neigh.veth4.retrans_time_ms": "100",
		"net.ipv6.neigh.veth4.mcast_solicit":   "1",
		"net.ipv6.neigh.veth4.retrans_time_ms": "100",
	} {
		rNS.Sysctl(t, key, val)
	}
	return &routedLab{
		host:          hNS,
		router:        map[icmp.Family]netip.Addr{icmp.IPv4: netip.MustParseAddr("198.18.0.1"), icmp.IPv6: netip.MustParseAddr("2001:db8:1::1")},
		far:           map[icmp.Family]netip.Addr{icmp.IPv4: netip.MustParseAddr("198.18.1.2"), icmp.IPv6: netip.MustParseAddr("2001:db8:2::2")},
		localUnreach:  map[icmp.Family]netip.Addr{icmp.IPv4: netip.MustParseAddr("198.19.255.1"), icmp.IPv6: netip.MustParseAddr("2001:db8:ffff::1")},
		remoteUnreach: map[icmp.Family]netip.Addr{icmp.IPv4: netip.MustParseAddr("198.18.2.3"), icmp.IPv6: netip.MustParseAddr("2001:db8:4::3")},
	}
}

// Error types and the offset of the quoted ICMP header inside an error message, per family.
func timeExceededType(f icmp.Family) uint8 {
	return map[icmp.Family]uint8{icmp.IPv4: 11, icmp.IPv6: 3}[f]
}
func unreachableType(f icmp.Family) uint8 {
	return map[icmp.Family]uint8{icmp.IPv4: 3, icmp.IPv6: 1}[f]
}

// quotedEcho returns the ICMP header our error message quotes (RFC 792, RFC 4443: the
// invoking packet follows the 8-byte error header).
func quotedEcho(f icmp.Family, b []byte) []byte {
	if len(b) < 8+20 {
		return nil
	}
	inner := b[8:]
	hl := 40
	if f == icmp.IPv4 {
		hl = int(inner[0]&0x0f) * 4
	}
	if len(inner) < hl+8 {
		return nil
	}
	return inner[hl:]
}

// checkICMPError checks that p reports an ICMP error of type typ from router about our probe
// seq: in a packet on a raw socket, on the error queue of a datagram socket.
func checkICMPError(t *testing.T, pr *prober, p *Packet, typ uint8, router netip.Addr, seq uint16) {
	t.Helper()
	f := pr.c.Family()
	if p.Time.IsZero() {
		t.Error("Time is zero, want the kernel receive timestamp")
	}
	if p.Src != router {
		t.Errorf("Src = %v, want the router %v", p.Src, router)
	}
	if pr.c.Mode() == Privileged {
		if p.Err != nil {
			t.Errorf("raw socket: Err = %+v, want nil (errors arrive as packets)", p.Err)
		}
		if len(p.Data) == 0 || p.Data[0] != typ {
			t.Fatalf("raw socket: Data = % x, want ICMP type %d", p.Data, typ)
		}
		q := quotedEcho(f, p.Data)
		if _, id, s, ok := echoFields(q); !ok || id != pr.id || s != seq {
			t.Errorf("raw socket: quoted message % x, want our echo id %d seq %d", q, pr.id, seq)
		}
		return
	}
	if p.Err == nil {
		t.Fatalf("datagram socket: Err = nil, Data = % x; want an error-queue packet", p.Data)
	}
	wantOrigin := uint8(OriginICMP)
	if f == icmp.IPv6 {
		wantOrigin = OriginICMP6
	}
	if p.Err.Type != typ || p.Err.Origin != wantOrigin || p.Err.Offender != router || p.Err.Errno == 0 {
		t.Errorf("Err = %+v, want type %d origin %d from %v with an errno", *p.Err, typ, wantOrigin, router)
	}
	if !pr.isOurEcho(p.Data, f.EchoRequestType(), seq) {
		t.Errorf("error-queue Data = % x, want our original echo request seq %d", p.Data, seq)
	}
}

func TestRouted(t *testing.T) {
	lab := newRoutedLab(t)
	lab.each(t, func(t *testing.T, f icmp.Family, m Mode, c *Conn, pr *prober) {
		var p Packet

		// TTL 1 expires at the router.
		if err := pr.send(lab.far[f], 1, &WriteOptions{TTL: 1}); err != nil {
			t.Fatalf("WriteTo TTL 1: %v", err)
		}
		readWithin(t, c, pr.buf, &p)
		checkICMPError(t, pr, &p, timeExceededType(f), lab.router[f], 1)

		// The TTL was for that packet only: the next one reaches the far host, and its
		// reply crossed one router.
		if err := pr.send(lab.far[f], 2, nil); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		readWithin(t, c, pr.buf, &p)
		if p.Err != nil || !pr.isOurEcho(p.Data, f.EchoReplyType(), 2) || p.Src != lab.far[f] {
			t.Fatalf("got %v % x (Err %+v), want our echo reply seq 2 from %v", p.Src, p.Data, p.Err, lab.far[f])
		}
		if p.TTL != 63 {
			t.Errorf("reply TTL = %d, want 63 (64 minus one router)", p.TTL)
		}

		// Unresolvable behind the router: an ICMP destination unreachable comes back.
		if err := pr.send(lab.remoteUnreach[f], 3, nil); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		readWithin(t, c, pr.buf, &p)
		checkICMPError(t, pr, &p, unreachableType(f), lab.router[f], 3)

		// Unreachable in the host: the write itself fails.
		err := pr.send(lab.localUnreach[f], 4, nil)
		var oe *net.OpError
		if !errors.Is(err, syscall.EHOSTUNREACH) || !errors.As(err, &oe) {
			t.Errorf("WriteTo through an unreachable route: %v, want a *net.OpError wrapping EHOSTUNREACH", err)
		}

		// The socket still works.
		if err := pr.send(lab.router[f], 5, nil); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		readWithin(t, c, pr.buf, &p)
		if !pr.isOurEcho(p.Data, f.EchoReplyType(), 5) || p.Src != lab.router[f] || p.TTL != 64 {
			t.Fatalf("got %v TTL %d % x, want our echo reply seq 5 from %v with TTL 64", p.Src, p.TTL, p.Data, lab.router[f])
		}
	})
}

// TestPMTUDo: with PMTUDo a datagram socket refuses, locally, a packet larger than the route
// MTU, and reports it as EMSGSIZE on the write.
func TestPMTUDo(t *testing.T) {
	lab := newRoutedLab(t)
	run(t, "ip", "-n", lab.host.Name(), "link", "set", "veth0", "mtu", "1280")
	c, err := listenIn(t, lab.host, icmp.IPv4, &Config{Mode: Unprivileged, PMTU: PMTUDo})
	if err != nil {
		t.Fatal(err)
	}
	big := icmp.AppendEchoRequest(nil, icmp.IPv4, 0, 1, make([]byte, 1400))
	if err := c.WriteTo(big, lab.far[icmp.IPv4], nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("WriteTo 1428 bytes over MTU 1280 with PMTUDo: %v, want EMSGSIZE", err)
	}
}

// childEnv selects the role of TestListenChild in a child process.
const childEnv = "GPING_RAWSOCK_CHILD"

// TestListenPermission runs Listen as an unprivileged user inside a namespace whose
// ping_group_range first excludes, then includes, every group.
func TestListenPermission(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: setpriv(1) not found")
	}
	ns := newNetns(t, "perm")
	bin := copyTestBinary(t)
	for _, tc := range []struct{ groups, role string }{
		{"1 0", "deny"},
		{"0 2147483647", "allow"},
	} {
		ns.Sysctl(t, "net.ipv4.ping_group_range", tc.groups)
		cmd := exec.Command("ip", "netns", "exec", ns.Name(),
			"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
			bin, "-test.run=^TestListenChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+tc.role)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "CHILD-OK "+tc.role) {
			t.Errorf("child %s (ping_group_range %q): %v\n%s", tc.role, tc.groups, err, out)
		}
	}
}

// copyTestBinary copies the test binary where user nobody can execute it (go test builds it
// in a private directory).
func copyTestBinary(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gping-rawsock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "rawsock.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestListenChild is the child half of TestListenPermission.
func TestListenChild(t *testing.T) {
	role := os.Getenv(childEnv)
	if role == "" {
		t.Skip("skipping: helper process of TestListenPermission")
	}
	if os.Geteuid() == 0 {
		t.Fatal("child runs as root; want an unprivileged user")
	}
	switch role {
	case "deny":
		for _, f := range families {
			c, err := Listen(f, nil)
			if err == nil {
				c.Close()
				t.Fatalf("%v: Listen succeeded, want a permission error", f)
			}
			if !errors.Is(err, os.ErrPermission) || !errors.Is(err, ErrPermission) {
				t.Errorf("%v: %v: want errors.Is os.ErrPermission and ErrPermission", f, err)
			}
			for _, want := range []string{"setcap cap_net_raw+p", "ping_group_range", "0 2147483647"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v: message %q does not mention %q", f, err, want)
				}
			}
		}
	case "allow":
		c, err := Listen(icmp.IPv4, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Mode() != Unprivileged || c.ID() == 0 {
			t.Errorf("Mode, ID = %v, %d, want dgram with an ident", c.Mode(), c.ID())
		}
		pr := newProber(t, c)
		if err := pr.send(loopback(icmp.IPv4), 1, nil); err != nil {
			t.Fatal(err)
		}
		var p Packet
		readWithin(t, c, pr.buf, &p)
		if !pr.isOurEcho(p.Data, 0, 1) || p.Src != loopback(icmp.IPv4) {
			t.Errorf("got %v % x, want our echo reply from 127.0.0.1", p.Src, p.Data)
		}
	default:
		t.Fatalf("unknown role %q", role)
	}
	if !t.Failed() {
		t.Log("CHILD-OK " + role)
	}
}

// TestConcurrentWriters: many goroutines write, each with its own per-packet TTL, while one
// reads; every reply arrives exactly once. Run with -race.
func TestConcurrentWriters(t *testing.T) {
	const writers, each = 8, 12 // 96 replies fit the default receive buffer
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			c, _ := loopbackConn(t, icmp.IPv4, m)
			pr := newProber(t, c)
			errc := make(chan error, writers)
			for w := range writers {
				go func() {
					var req []byte
					for i := range each {
						seq := uint16(w*each + i)
						req = icmp.AppendEchoRequest(req[:0], icmp.IPv4, pr.id, seq, pr.token)
						if err := c.WriteTo(req, loopback(icmp.IPv4), &WriteOptions{TTL: 1 + w}); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
			}
			seen := make(map[uint16]bool)
			var p Packet
			for range writers * each {
				readWithin(t, c, pr.buf, &p)
				_, _, seq, _ := echoFields(p.Data)
				if !pr.isOurEcho(p.Data, 0, seq) || seen[seq] || seq >= writers*each {
					t.Fatalf("unexpected or duplicate packet % x", p.Data)
				}
				seen[seq] = true
			}
			for range writers {
				if err := <-errc; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestAllocs: the hot path (one write and one read) allocates nothing.
func TestAllocs(t *testing.T) {
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.String()+"/"+m.String(), func(t *testing.T) {
				c, _ := loopbackConn(t, f, m)
				pr := newProber(t, c)
				var p Packet
				for _, opt := range []*WriteOptions{nil, {TTL: 9}} {
					allocs := echoAllocs(t, c, pr, opt, func(seq uint16) bool {
						return c.ReadPacket(pr.buf, &p) == nil && pr.isOurEcho(p.Data, f.EchoReplyType(), seq)
					})
					if allocs != 0 {
						t.Errorf("opt %+v: %v allocations per write+read, want 0", opt, allocs)
					}
				}
			})
		}
	}
}

// echoAllocs sends 200 echo requests to c's loopback address with opt, reading each answer
// with read, and returns the allocations per echo. It fails t if any echo fails, and closes c
// if they take far too long.
func echoAllocs(t *testing.T, c *Conn, pr *prober, opt *WriteOptions, read func(seq uint16) bool) float64 {
	t.Helper()
	f, dst := c.Family(), loopback(c.Family())
	watchdog := time.AfterFunc(4*readTimeout, func() { c.Close() })
	defer watchdog.Stop()
	seq, bad := uint16(0), 0
	req := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(200, func() {
		seq++
		req = icmp.AppendEchoRequest(req[:0], f, pr.id, seq, pr.token)
		if err := c.WriteTo(req, dst, opt); err != nil || !read(seq) {
			bad++
		}
	})
	if bad != 0 {
		t.Fatalf("opt %+v: %d of %d echoes failed", opt, bad, seq)
	}
	return allocs
}

func BenchmarkEchoLoopback(b *testing.B) {
	for _, f := range families {
		for _, m := range modes {
			b.Run(f.String()+"/"+m.String(), func(b *testing.B) {
				c, _ := loopbackConn(b, f, m)
				dst := loopback(f)
				pr := newProber(b, c)
				// Bounds the benchmark if a reply were ever lost: ReadPacket then fails.
				watchdog := time.AfterFunc(2*time.Minute, func() { c.Close() })
				defer watchdog.Stop()
				var p Packet
				var seq uint16
				b.ReportAllocs()
				for b.Loop() {
					seq++
					pr.req = icmp.AppendEchoRequest(pr.req[:0], f, pr.id, seq, pr.token)
					if err := c.WriteTo(pr.req, dst, nil); err != nil {
						b.Fatal(err)
					}
					if err := c.ReadPacket(pr.buf, &p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// open opens a socket of family f and mode m in the lab's host, and a prober on it.
// each runs fn as a subtest for every family and mode, on a socket of its own in the lab.
func (lab *routedLab) each(t *testing.T, fn func(t *testing.T, f icmp.Family, m Mode, c *Conn, pr *prober)) {
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.String()+"/"+m.String(), func(t *testing.T) {
				c, pr := lab.open(t, f, m)
				fn(t, f, m, c, pr)
			})
		}
	}
}

func (lab *routedLab) open(t *testing.T, f icmp.Family, m Mode) (*Conn, *prober) {
	t.Helper()
	c, err := listenIn(t, lab.host, f, &Config{Mode: m})
	if err != nil {
		t.Fatal(err)
	}
	return c, newProber(t, c)
}

// staleErrorConn opens a datagram socket in the lab and sends a TTL 1 probe (seq 1) from it,
// then waits, without reading, until the router's time exceeded is queued on the socket: its
// next send will meet that error pending.
func staleErrorConn(t *testing.T, lab *routedLab, f icmp.Family) (*Conn, *prober) {
	t.Helper()
	c, pr := lab.open(t, f, Unprivileged)
	if err := pr.send(lab.far[f], 1, &WriteOptions{TTL: 1}); err != nil {
		t.Fatalf("WriteTo TTL 1: %v", err)
	}
	fds := []unix.PollFd{{Fd: int32(c.sys.f.Fd()), Events: unix.POLLERR}}
	if n, err := unix.Poll(fds, 5000); err != nil || n != 1 || fds[0].Revents&unix.POLLERR == 0 {
		t.Fatalf("no queued error within 5s: n=%d revents=%#x err=%v", n, fds[0].Revents, err)
	}
	return c, pr
}

// TestStaleErrorDoesNotEatSend: a datagram socket with IP_RECVERR keeps an arrived ICMP error
// pending, and the next sendmsg reports it instead of sending. WriteTo must send anyway: the
// error is the earlier packet's, and it waits on the error queue.
func TestStaleErrorDoesNotEatSend(t *testing.T) {
	lab := newRoutedLab(t)
	for _, f := range families {
		t.Run(f.String(), func(t *testing.T) {
			c, pr := staleErrorConn(t, lab, f)
			if err := pr.send(lab.far[f], 2, nil); err != nil {
				t.Fatalf("send after a queued ICMP error: %v", err)
			}
			var p Packet
			gotErr, gotReply := false, false
			for range 2 {
				readWithin(t, c, pr.buf, &p)
				switch {
				case p.Err != nil && p.Err.Type == timeExceededType(f):
					gotErr = true
				case p.Err == nil && pr.isOurEcho(p.Data, f.EchoReplyType(), 2):
					gotReply = true
				}
			}
			if !gotErr || !gotReply {
				t.Errorf("queued error read: %v, reply to the second probe: %v", gotErr, gotReply)
			}
		})
	}
}
