package l4

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

// tcpState is the TCP part of a Prober.
type tcpState struct {
	sock rawsock.Config
	raw  *rawsock.TCPRawConn // privileged: SYNs out, SYN-ACKs and RSTs in
	// port is the reserved source port of privileged Paris probes; release frees it.
	port    uint16
	release func() error

	mu  sync.Mutex
	src map[netip.Addr]netip.Addr // destination -> source, for the IPv4 checksum
}

// tcpWindow is the receive window our SYNs advertise, that of a fresh Linux socket.
const tcpWindow = 64240

func (p *Prober) openTCP(sc *rawsock.Config) error {
	p.tcp.sock = *sc
	if p.mode != rawsock.Privileged {
		p.cfg.Classic = true // one source port per connect; see the package doc
		return nil
	}
	var err error
	if p.tcp.raw, err = rawsock.ListenTCPRaw(p.fam, sc); err != nil {
		return err
	}
	p.tcp.src = map[netip.Addr]netip.Addr{}
	if !p.cfg.Classic {
		if p.tcp.port, p.tcp.release, err = rawsock.ReserveTCPPort(p.bindAddr()); err != nil {
			return err
		}
	}
	return nil
}

func (p *Prober) startTCPReader() {
	if p.tcp.raw != nil {
		p.goRead(p.tcp.raw.ReadPacket, p.handleTCP)
	}
}

func (p *Prober) closeTCP() error {
	var errs []error
	if p.tcp.raw != nil {
		errs = append(errs, p.tcp.raw.Close())
	}
	if p.tcp.release != nil {
		errs = append(errs, p.tcp.release())
	}
	return errors.Join(errs...)
}

// setCloser gives pd the function that frees its own resources; if pd is no longer pending,
// it runs at once.
func (p *Prober) setCloser(pd *pending, closer func() error) {
	p.mu.Lock()
	_, live := p.pending[pd.seq]
	if live {
		pd.closer = closer
	}
	p.mu.Unlock()
	if !live {
		closer()
	}
}

func (p *Prober) startTCP(pd *pending, r probe.Request, timeout time.Duration) error {
	dst := netip.AddrPortFrom(pd.dst, p.cfg.Port+r.Flow)
	if p.tcp.raw == nil {
		// Errors come back through the probe's own socket: nothing to match on.
		if err := p.register(pd, timeout); err != nil {
			return err
		}
		var c *rawsock.TCPProbe
		err := p.ns.Do(func() (err error) {
			c, err = rawsock.DialTCPProbe(dst, r.TTL, &p.tcp.sock)
			return err
		})
		if err != nil {
			return err
		}
		p.setCloser(pd, c.Close)
		p.goWait(func() { p.waitConnect(pd, c) })
		return nil
	}
	src, err := p.source(pd.dst)
	if err != nil {
		return err
	}
	pd.port = p.tcp.port
	if p.cfg.Classic {
		var release func() error
		err := p.ns.Do(func() (err error) {
			pd.port, release, err = rawsock.ReserveTCPPort(p.bindAddr())
			return err
		})
		if err != nil {
			return err
		}
		pd.closer = release // before registering: remove runs it
	}
	seg := synSegment(src, dst, pd.port, pd.tcpSeq)
	if err := p.register(pd, timeout); err != nil {
		return err
	}
	return p.tcp.raw.WriteTo(seg, pd.dst, &rawsock.WriteOptions{TTL: r.TTL})
}

// bindAddr is the address source ports are reserved on: the configured source, else any.
func (p *Prober) bindAddr() netip.Addr {
	switch {
	case p.tcp.sock.Source.IsValid():
		return p.tcp.sock.Source
	case p.fam == icmp.IPv6:
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// source returns the source address of probes to dst, looked up once per destination.
func (p *Prober) source(dst netip.Addr) (netip.Addr, error) {
	p.tcp.mu.Lock()
	defer p.tcp.mu.Unlock()
	if a, ok := p.tcp.src[dst]; ok {
		return a, nil
	}
	var a netip.Addr
	err := p.ns.Do(func() (err error) {
		a, err = rawsock.RouteSource(dst, &p.tcp.sock)
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	p.tcp.src[dst] = a.Unmap()
	return a.Unmap(), nil
}

// synSegment builds a TCP SYN from src:port to dst with sequence number seq and an MSS
// option, as a connect() would send. For IPv4 it fills in the checksum (RFC 9293 section
// 3.1, over a pseudo-header with both addresses); for IPv6 the raw socket's IPV6_CHECKSUM
// has the kernel do it, with the field left zero. It is built by hand rather than with
// gopacket/layers, whose package initialization alone takes 3.5 ms of every gtrace start
// (GODEBUG=inittrace=1), longer than a whole 10-hop trace on a LAN.
func synSegment(src netip.Addr, dst netip.AddrPort, port uint16, seq uint32) []byte {
	const hdr = 24 // 20 bytes and a 4-byte MSS option
	seg := make([]byte, hdr)
	binary.BigEndian.PutUint16(seg[0:], port)
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], seq)
	seg[12] = hdr / 4 << 4 // data offset
	seg[13] = tcpSYN
	binary.BigEndian.PutUint16(seg[14:], tcpWindow)
	copy(seg[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	if src.Is4() {
		pseudo := make([]byte, 0, 12+hdr)
		pseudo = append(pseudo, src.AsSlice()...)
		pseudo = append(pseudo, dst.Addr().AsSlice()...)
		pseudo = append(pseudo, 0, 6, 0, hdr)
		binary.BigEndian.PutUint16(seg[16:], icmp.Checksum(append(pseudo, seg...)))
	}
	return seg
}

// matchTCP finds the TCP probe an ICMP error quoting source port port and sequence seq, sent
// to dst, belongs to.
func (p *Prober) matchTCP(dst netip.Addr, port uint16, seq uint32) *pending {
	return p.find(func(pd *pending) bool { return pd.dst == dst && pd.port == port && pd.tcpSeq == seq })
}

// TCP flags of the answers that end a probe.
const (
	tcpRST = 0x04
	tcpSYN = 0x02
	tcpACK = 0x10
)

// handleTCP takes a segment from the raw TCP socket: the destination's answer, a SYN-ACK (port
// open) or an RST (port closed) acknowledging our sequence number, or something to ignore.
func (p *Prober) handleTCP(pkt *rawsock.Packet) {
	seg := pkt.Data
	if len(seg) < 20 {
		return
	}
	sport, dport := binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:])
	ack, flags := binary.BigEndian.Uint32(seg[8:]), seg[13]
	if flags&tcpACK == 0 || flags&(tcpSYN|tcpRST) == 0 || sport != p.cfg.Port {
		return
	}
	src := pkt.Src.Unmap()
	pd := p.find(func(pd *pending) bool { return pd.dst == src && pd.port == dport && pd.tcpSeq+1 == ack })
	if pd == nil {
		return
	}
	p.answered(pd.seq, probe.Result{Outcome: probe.Reply, From: src, TTL: pkt.TTL, Size: len(seg)}, pkt.Time)
}

// waitConnect waits for the outcome of an unprivileged probe's connect.
func (p *Prober) waitConnect(pd *pending, c *rawsock.TCPProbe) {
	var pkt rawsock.Packet
	if err := c.Wait(&pkt); err != nil {
		if pd := p.remove(pd.seq); pd != nil {
			p.deliver(pd, probe.Result{Outcome: probe.Canceled, Err: err})
		}
		return
	}
	r := probe.Result{Outcome: probe.Reply, From: pd.dst, TTL: pkt.TTL}
	switch e := pkt.Err; {
	case e == nil, e.Origin != rawsock.OriginICMP && e.Origin != rawsock.OriginICMP6 && e.Errno == syscall.ECONNREFUSED:
	case e.Origin == rawsock.OriginICMP || e.Origin == rawsock.OriginICMP6:
		r = queuedError(p.fam, &pkt)
	default:
		r = probe.Result{Outcome: probe.ICMPError, From: pd.dst, TTL: -1, Kind: icmp.KindOther, Errno: e.Errno}
	}
	p.answered(pd.seq, r, pkt.Time)
}
