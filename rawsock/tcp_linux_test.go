//go:build linux

package rawsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
)

// The TCP tests run in a netlab chain Host -- r1 -- Target, for both families.

var tcpFamilies = []icmp.Family{icmp.IPv4, icmp.IPv6}

// tcpWait bounds every wait for a packet or an outcome.
const tcpWait = 5 * time.Second

// Ports in the target: nothing listens on tcpClosedPort; tcpDroppedPort is silently dropped
// by the target's firewall (see dropPort).
const (
	tcpClosedPort  = 9
	tcpDroppedPort = 7
)

type chainAddrs struct{ host, router, target netip.Addr }

func addrsOf(c *netlab.Chain, f icmp.Family) chainAddrs {
	if f == icmp.IPv6 {
		return chainAddrs{c.HostAddr6, c.RouterAddr6[0], c.TargetAddr6}
	}
	return chainAddrs{c.HostAddr4, c.RouterAddr4[0], c.TargetAddr4}
}

// doIn runs fn inside ns, failing the test with its error.
func doIn(t *testing.T, ns *netlab.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// within runs fn and fails the test unless it returns within tcpWait; abort (closing the
// socket fn blocks on) is called first so that fn's goroutine ends.
func within(t *testing.T, what string, abort func(), fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(tcpWait):
		abort()
		<-done
		t.Fatalf("%s: nothing within %v", what, tcpWait)
	}
}

// listenTCPIn starts a TCP listener on addr in ns (an ephemeral port) and returns its port.
func listenTCPIn(t *testing.T, ns *netlab.NS, addr netip.Addr) (net.Listener, uint16) {
	t.Helper()
	var ln net.Listener
	doIn(t, ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

// dropPort makes the target drop TCP segments to tcpDroppedPort without answering.
func dropPort(t *testing.T, target *netlab.NS) {
	target.Nft(t, `table inet tcptest {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 7 drop
	}
}`)
}

// TCP header flags (RFC 9293 section 3.1).
const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

type tcpSeg struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
}

func parseTCPSeg(b []byte) (tcpSeg, bool) {
	if len(b) < 20 {
		return tcpSeg{}, false
	}
	return tcpSeg{
		sport: binary.BigEndian.Uint16(b[0:]),
		dport: binary.BigEndian.Uint16(b[2:]),
		seq:   binary.BigEndian.Uint32(b[4:]),
		ack:   binary.BigEndian.Uint32(b[8:]),
		flags: b[13],
	}, true
}

// appendSYN appends a 20-byte SYN. For IPv4 it fills in the checksum over the pseudo-header
// (RFC 9293 section 3.1); for IPv6 it leaves it 0 for the kernel to compute, so an answer
// proves that the kernel did.
func appendSYN(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(b, 5<<4, tcpSYN)
	b = binary.BigEndian.AppendUint16(b, 65535) // window
	b = append(b, 0, 0, 0, 0)                   // checksum, urgent pointer
	if src.Is4() {
		seg := b[start:]
		ph := append(src.AsSlice(), dst.AsSlice()...)
		ph = append(ph, 0, unix.IPPROTO_TCP, 0, byte(len(seg)))
		binary.BigEndian.PutUint16(seg[16:], icmp.Checksum(append(ph, seg...)))
	}
	return b
}

// rawTCPSetup is a raw TCP socket in the chain's host, the source address it sends from and a
// port reserved for it.
type rawTCPSetup struct {
	c     *TCPRawConn
	src   netip.Addr
	sport uint16
	buf   []byte
}

func newRawTCP(t *testing.T, ch *netlab.Chain, f icmp.Family) *rawTCPSetup {
	t.Helper()
	s := &rawTCPSetup{buf: make([]byte, 1<<16)}
	doIn(t, ch.Host, func() error {
		var err error
		if s.c, err = ListenTCPRaw(f, nil); err != nil {
			return err
		}
		if s.src, err = RouteSource(addrsOf(ch, f).target, nil); err != nil {
			return err
		}
		var release func() error
		if s.sport, release, err = ReserveTCPPort(s.src); err != nil {
			return err
		}
		t.Cleanup(func() { release() })
		return nil
	})
	t.Cleanup(func() { s.c.Close() })
	return s
}

// readSeg reads segments until one from dst:dport to our port arrives, and returns it.
func (s *rawTCPSetup) readSeg(t *testing.T, dst netip.Addr, dport uint16, p *Packet) tcpSeg {
	t.Helper()
	var got tcpSeg
	within(t, "ReadPacket", func() { s.c.Close() }, func() error {
		for range 1000 {
			if err := s.c.ReadPacket(s.buf, p); err != nil {
				return err
			}
			seg, ok := parseTCPSeg(p.Data)
			if ok && p.Src == dst && seg.sport == dport && seg.dport == s.sport {
				got = seg
				return nil
			}
		}
		return errors.New("no matching segment among 1000")
	})
	return got
}

// TestTCPRaw: SYNs built here, sent through a raw TCP socket, draw an RST from a closed port, a
// SYN-ACK from a listening one, and, with TTL 1, a Time Exceeded quoting them.
func TestTCPRaw(t *testing.T) {
	ch := netlab.New(t).Chain(1)
	for _, f := range tcpFamilies {
		t.Run(f.String(), func(t *testing.T) {
			a := addrsOf(ch, f)
			s := newRawTCP(t, ch, f)
			if s.src != a.host {
				t.Fatalf("RouteSource(%v) = %v, want %v", a.target, s.src, a.host)
			}
			_, openPort := listenTCPIn(t, ch.Target, a.target)
			var p Packet

			seq := rand.Uint32()
			syn := appendSYN(nil, s.src, a.target, s.sport, tcpClosedPort, seq)
			if err := s.c.WriteTo(syn, a.target, nil); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			seg := s.readSeg(t, a.target, tcpClosedPort, &p)
			if seg.flags&tcpRST == 0 || seg.flags&tcpACK == 0 || seg.ack != seq+1 {
				t.Errorf("closed port answered flags %#x ack %d, want RST|ACK with ack %d", seg.flags, seg.ack, seq+1)
			}
			if p.Dst != s.src || p.TTL != 63 || p.Time.IsZero() || p.Err != nil {
				t.Errorf("RST packet: Dst %v TTL %d Time %v Err %v, want Dst %v, TTL 63 (one router), a timestamp, no Err",
					p.Dst, p.TTL, p.Time, p.Err, s.src)
			}

			seq = rand.Uint32()
			syn = appendSYN(syn[:0], s.src, a.target, s.sport, openPort, seq)
			if err := s.c.WriteTo(syn, a.target, nil); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			seg = s.readSeg(t, a.target, openPort, &p)
			if seg.flags&(tcpSYN|tcpACK|tcpRST) != tcpSYN|tcpACK || seg.ack != seq+1 {
				t.Errorf("open port answered flags %#x ack %d, want SYN|ACK with ack %d", seg.flags, seg.ack, seq+1)
			}

			// TTL 1 expires at the router, whose Time Exceeded a raw ICMP socket sees.
			var ic *Conn
			doIn(t, ch.Host, func() (err error) {
				ic, err = Listen(f, &Config{Mode: Privileged})
				return err
			})
			t.Cleanup(func() { ic.Close() })
			seq = rand.Uint32()
			syn = appendSYN(syn[:0], s.src, a.target, s.sport, openPort, seq)
			if err := s.c.WriteTo(syn, a.target, &WriteOptions{TTL: 1}); err != nil {
				t.Fatalf("WriteTo TTL 1: %v", err)
			}
			buf := make([]byte, 1<<16)
			var m icmp.Message
			within(t, "ICMP ReadPacket", func() { ic.Close() }, func() error {
				for range 1000 {
					if err := ic.ReadPacket(buf, &p); err != nil {
						return err
					}
					if icmp.Parse(f, p.Data, &m) != nil || m.Kind != icmp.KindTimeExceeded {
						continue
					}
					q := m.Quote
					if q.Protocol == unix.IPPROTO_TCP && q.SrcPort == s.sport && q.DstPort == openPort && q.TCPSeq == seq {
						return nil
					}
				}
				return errors.New("no Time Exceeded quoting our SYN among 1000 packets")
			})
			if p.Src != a.router || m.Quote.Src != s.src || m.Quote.Dst != a.target || m.Quote.TTL > 1 {
				t.Errorf("Time Exceeded from %v quoting %v -> %v TTL %d, want from %v quoting %v -> %v with TTL <= 1",
					p.Src, m.Quote.Src, m.Quote.Dst, m.Quote.TTL, a.router, s.src, a.target)
			}
		})
	}
}

// dialIn starts a probe from the chain's host.
func dialIn(t *testing.T, ns *netlab.NS, dst netip.AddrPort, ttl int) *TCPProbe {
	t.Helper()
	var p *TCPProbe
	doIn(t, ns, func() (err error) {
		p, err = DialTCPProbe(dst, ttl, nil)
		return err
	})
	t.Cleanup(func() { p.Close() })
	if p.LocalPort() == 0 {
		t.Errorf("LocalPort() = 0 after DialTCPProbe")
	}
	return p
}

func waitProbe(t *testing.T, p *TCPProbe, pkt *Packet) {
	t.Helper()
	within(t, "Wait", func() { p.Close() }, func() error { return p.Wait(pkt) })
}

// TestTCPProbe: a connect with TTL 1 ends on the router's Time Exceeded, read from the error
// queue; at full TTL it is refused by a closed port and completes on a listening one; Close
// ends a Wait that nothing else would end.
func TestTCPProbe(t *testing.T) {
	ch := netlab.New(t).Chain(1)
	dropPort(t, ch.Target)
	for _, f := range tcpFamilies {
		t.Run(f.String(), func(t *testing.T) {
			a := addrsOf(ch, f)
			ln, openPort := listenTCPIn(t, ch.Target, a.target)
			var pkt Packet

			t.Run("TimeExceeded", func(t *testing.T) {
				p := dialIn(t, ch.Host, netip.AddrPortFrom(a.target, openPort), 1)
				waitProbe(t, p, &pkt)
				origin, typ := uint8(OriginICMP), uint8(11)
				if f == icmp.IPv6 {
					origin, typ = OriginICMP6, 3
				}
				if pkt.Err == nil {
					t.Fatalf("Wait: no error, want Time Exceeded (Src %v)", pkt.Src)
				}
				e := *pkt.Err
				if e.Origin != origin || e.Type != typ || e.Code != 0 || e.Offender != a.router || e.Errno != unix.EHOSTUNREACH {
					t.Errorf("Err = %+v (%v), want origin %d type %d code 0 from %v, EHOSTUNREACH", e, e.Errno, origin, typ, a.router)
				}
				if pkt.Src != a.router || pkt.Dst != a.target {
					t.Errorf("Src %v Dst %v, want %v and %v", pkt.Src, pkt.Dst, a.router, a.target)
				}
				if pkt.Time.IsZero() || time.Since(pkt.Time).Abs() > time.Minute {
					t.Errorf("Time = %v, want the kernel timestamp of the ICMP error", pkt.Time)
				}
				// The outcome stays.
				var again Packet
				if err := p.Wait(&again); err != nil || again.Err == nil || *again.Err != e || again.Err == pkt.Err {
					t.Errorf("second Wait: %v, %+v; want %+v again, in the new Packet", err, again.Err, e)
				}
			})

			t.Run("Unreachable", func(t *testing.T) {
				// The router has no route (and no default) for this address.
				nowhere, origin, typ := netip.MustParseAddr("198.19.200.1"), uint8(OriginICMP), uint8(3)
				if f == icmp.IPv6 {
					nowhere, origin, typ = netip.MustParseAddr("2001:db8:ffff::1"), OriginICMP6, 1
				}
				p := dialIn(t, ch.Host, netip.AddrPortFrom(nowhere, 80), 0)
				waitProbe(t, p, &pkt)
				if pkt.Err == nil {
					t.Fatalf("Wait: no error, want Destination Unreachable (Src %v)", pkt.Src)
				}
				e := *pkt.Err
				if e.Origin != origin || e.Type != typ || e.Code != 0 || e.Offender != a.router || e.Errno != unix.ENETUNREACH {
					t.Errorf("Err = %+v (%v), want origin %d type %d code 0 from %v, ENETUNREACH", e, e.Errno, origin, typ, a.router)
				}
				if pkt.Src != a.router || pkt.Dst != nowhere {
					t.Errorf("Src %v Dst %v, want %v and %v", pkt.Src, pkt.Dst, a.router, nowhere)
				}
			})

			t.Run("Refused", func(t *testing.T) {
				p := dialIn(t, ch.Host, netip.AddrPortFrom(a.target, tcpClosedPort), 0)
				waitProbe(t, p, &pkt)
				if pkt.Err == nil || pkt.Err.Errno != unix.ECONNREFUSED || pkt.Err.Origin != 0 || pkt.Src != a.target {
					t.Errorf("Wait: Err %+v Src %v, want ECONNREFUSED with origin 0 from %v", pkt.Err, pkt.Src, a.target)
				}
				if pkt.Dst != a.host {
					t.Errorf("Dst = %v, want the local address %v", pkt.Dst, a.host)
				}
			})

			t.Run("Connected", func(t *testing.T) {
				p := dialIn(t, ch.Host, netip.AddrPortFrom(a.target, openPort), 0)
				waitProbe(t, p, &pkt)
				if pkt.Err != nil || pkt.Src != a.target || pkt.Dst != a.host {
					t.Fatalf("Wait: Err %+v Src %v Dst %v, want connected to %v from %v", pkt.Err, pkt.Src, pkt.Dst, a.target, a.host)
				}
				// The target saw the connection come from LocalPort, and Close resets it.
				var conn net.Conn
				within(t, "Accept", func() { ln.Close() }, func() (err error) {
					conn, err = ln.Accept()
					return err
				})
				defer conn.Close()
				if port := conn.RemoteAddr().(*net.TCPAddr).AddrPort().Port(); port != p.LocalPort() {
					t.Errorf("target sees port %d, LocalPort() = %d", port, p.LocalPort())
				}
				if err := p.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				conn.SetReadDeadline(time.Now().Add(tcpWait))
				if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("target's Read after Close: %v, want ECONNRESET (SO_LINGER 0)", err)
				}
			})

			t.Run("CloseUnblocksWait", func(t *testing.T) {
				p := dialIn(t, ch.Host, netip.AddrPortFrom(a.target, tcpDroppedPort), 0)
				done := make(chan error, 1)
				go func() { done <- p.Wait(&pkt) }()
				select {
				case err := <-done:
					t.Fatalf("Wait returned %v (Err %+v) before Close; the SYN should go unanswered", err, pkt.Err)
				default:
				}
				closeUnblocks(t, "Wait", p.Close, done, tcpWait)
			})
		})
	}
}

func TestTCPProbeErrors(t *testing.T) {
	dst := netip.MustParseAddrPort("198.18.0.2:80")
	for _, tc := range []struct {
		name string
		dst  netip.AddrPort
		ttl  int
		cfg  *Config
		want error
	}{
		{"ttl 256", dst, 256, nil, ErrInvalidTTL},
		{"ttl -1", dst, -1, nil, ErrInvalidTTL},
		{"no address", netip.AddrPort{}, 1, nil, ErrInvalidAddr},
		{"source of another family", dst, 1, &Config{Source: netip.MustParseAddr("2001:db8::1")}, ErrInvalidAddr},
	} {
		if _, err := DialTCPProbe(tc.dst, tc.ttl, tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("%s: DialTCPProbe: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ListenTCPRaw(0, nil); !errors.Is(err, ErrInvalidFamily) {
		t.Errorf("ListenTCPRaw(0): %v, want ErrInvalidFamily", err)
	}
	if _, err := ListenTCPRaw(icmp.IPv6, &Config{Source: netip.MustParseAddr("198.18.0.1")}); !errors.Is(err, ErrInvalidAddr) {
		t.Errorf("ListenTCPRaw with an IPv4 source: %v, want ErrInvalidAddr", err)
	}
	if _, err := RouteSource(netip.Addr{}, nil); !errors.Is(err, ErrInvalidAddr) {
		t.Errorf("RouteSource(unset): %v, want ErrInvalidAddr", err)
	}
	if _, _, err := ReserveTCPPort(netip.Addr{}); !errors.Is(err, ErrInvalidAddr) {
		t.Errorf("ReserveTCPPort(unset): %v, want ErrInvalidAddr", err)
	}
}

func TestRouteSource(t *testing.T) {
	ch := netlab.New(t).Chain(1)
	for _, f := range tcpFamilies {
		a := addrsOf(ch, f)
		other := netip.MustParseAddr("198.19.9.9")
		if f == icmp.IPv6 {
			other = netip.MustParseAddr("2001:db8:99::9")
		}
		doIn(t, ch.Host, func() error {
			for _, dst := range []netip.Addr{a.target, a.router} {
				if got, err := RouteSource(dst, nil); err != nil || got != a.host {
					t.Errorf("RouteSource(%v) = %v, %v; want %v", dst, got, err, a.host)
				}
			}
			// An address the namespace does not have: Source is returned as is.
			if got, err := RouteSource(a.target, &Config{Source: other}); err != nil || got != other {
				t.Errorf("RouteSource with Source %v = %v, %v", other, got, err)
			}
			if _, err := RouteSource(a.target, &Config{Interface: "nosuchif0"}); !errors.Is(err, unix.ENODEV) {
				t.Errorf("RouteSource on a missing interface: %v, want ENODEV", err)
			}
			return nil
		})
	}
}

func TestReserveTCPPort(t *testing.T) {
	ch := netlab.New(t).Chain(0)
	for _, f := range tcpFamilies {
		src := ch.HostAddr4
		if f == icmp.IPv6 {
			src = ch.HostAddr6
		}
		doIn(t, ch.Host, func() error {
			p1, release1, err := ReserveTCPPort(src)
			if err != nil {
				return err
			}
			p2, release2, err := ReserveTCPPort(src)
			if err != nil {
				release1()
				return err
			}
			defer release2()
			if p1 == 0 || p1 == p2 {
				t.Errorf("%v: ports %d and %d, want two different ephemeral ports", src, p1, p2)
			}
			bind := func() error {
				ln, err := net.Listen("tcp", netip.AddrPortFrom(src, p1).String())
				if err == nil {
					ln.Close()
				}
				return err
			}
			if err := bind(); !errors.Is(err, unix.EADDRINUSE) {
				t.Errorf("%v: binding reserved port %d: %v, want EADDRINUSE", src, p1, err)
			}
			if err := release1(); err != nil {
				t.Errorf("release: %v", err)
			}
			if err := bind(); err != nil {
				t.Errorf("%v: binding port %d after release: %v", src, p1, err)
			}
			if err := release1(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second release: %v, want net.ErrClosed", err)
			}
			return nil
		})
	}
}

// TestTCPProbeWaitsInPoller drops the first SYN of each probe, so that its outcome comes from
// the retransmission a second later, long after Wait has parked in the runtime poller: the
// connect completing, the RST and the queued ICMP error must each wake it.
func TestTCPProbeWaitsInPoller(t *testing.T) {
	const expirePort = 33 // any port: the probe expires at the router
	ch := netlab.New(t).Chain(1)
	type probeCase struct {
		name string
		f    icmp.Family
		dst  netip.AddrPort
		ttl  int
		want func(a chainAddrs, pkt *Packet) bool
	}
	var cases []probeCase
	var routerRules, targetRules strings.Builder
	for _, f := range tcpFamilies {
		a := addrsOf(ch, f)
		_, openPort := listenTCPIn(t, ch.Target, a.target)
		match := "ip daddr"
		if f == icmp.IPv6 {
			match = "ip6 daddr"
		}
		// Each rule has its own numgen counter: the first SYN to each port is dropped.
		dropFirst := func(b *strings.Builder, port uint16) {
			fmt.Fprintf(b, "\t\t%s %v tcp dport %d tcp flags syn numgen inc mod 2 == 0 drop\n", match, a.target, port)
		}
		dropFirst(&routerRules, expirePort)
		dropFirst(&targetRules, tcpClosedPort)
		dropFirst(&targetRules, openPort)
		cases = append(cases,
			probeCase{"TimeExceeded", f, netip.AddrPortFrom(a.target, expirePort), 1, func(a chainAddrs, pkt *Packet) bool {
				return pkt.Err != nil && pkt.Err.Offender == a.router && pkt.Err.Errno == unix.EHOSTUNREACH
			}},
			probeCase{"Refused", f, netip.AddrPortFrom(a.target, tcpClosedPort), 0, func(a chainAddrs, pkt *Packet) bool {
				return pkt.Err != nil && pkt.Err.Errno == unix.ECONNREFUSED && pkt.Src == a.target
			}},
			probeCase{"Connected", f, netip.AddrPortFrom(a.target, openPort), 0, func(a chainAddrs, pkt *Packet) bool {
				return pkt.Err == nil && pkt.Src == a.target
			}})
	}
	ruleset := "table inet tcptest {\n\tchain pre {\n\t\ttype filter hook prerouting priority -200; policy accept;\n%s\t}\n}\n"
	ch.Routers[0].Nft(t, fmt.Sprintf(ruleset, routerRules.String()))
	ch.Target.Nft(t, fmt.Sprintf(ruleset, targetRules.String()))

	for _, tc := range cases {
		t.Run(tc.f.String()+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			a := addrsOf(ch, tc.f)
			p := dialIn(t, ch.Host, tc.dst, tc.ttl)
			var pkt Packet
			waitProbe(t, p, &pkt)
			if !tc.want(a, &pkt) {
				t.Errorf("Wait: Src %v Err %+v, want %s", pkt.Src, pkt.Err, tc.name)
			}
		})
	}
}
