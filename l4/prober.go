package l4

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

// maxReadErrors bounds consecutive failed reads before a reader gives up, so that a socket in
// a persistent error state cannot spin a core.
const maxReadErrors = 100

// Prober sends UDP or TCP probes of one family and delivers each probe's outcome exactly once
// (Reply, ICMPError, Timeout or Canceled; no Duplicate or Late). It is safe for concurrent use.
type Prober struct {
	fam   icmp.Family
	cfg   Config
	mode  rawsock.Mode
	token uint64

	ns      *rawsock.NetNS   // where Open ran: later sockets are made there too
	udp     *rawsock.UDPConn // UDP probes
	errs    *rawsock.Conn    // privileged: the raw ICMP socket errors arrive on
	tcp     tcpState
	readers sync.WaitGroup

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]*pending
	closed  bool
}

// pending is a probe awaiting its outcome; it leaves Prober.pending exactly once, and whoever
// removes it delivers the outcome.
type pending struct {
	seq      uint64
	dst      netip.Addr
	port     uint16 // UDP: destination port; TCP: source port
	tcpSeq   uint32
	sent     time.Time
	timer    *time.Timer
	onResult func(probe.Result)
	closer   func() error // unprivileged TCP: the probe's own socket
}

// Open opens the sockets of a Prober for family f, in the network namespace of the calling
// thread. cfg may be nil (UDP, traceroute's port, Auto).
func Open(f icmp.Family, cfg *Config) (_ *Prober, err error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Protocol == 0 {
		c.Protocol = UDP
	}
	if c.Protocol != UDP && c.Protocol != TCP {
		return nil, fmt.Errorf("%w: protocol %d", ErrConfig, c.Protocol)
	}
	if f != icmp.IPv4 && f != icmp.IPv6 {
		return nil, fmt.Errorf("%w: family %d", ErrConfig, f)
	}
	if c.Port == 0 {
		c.Port = DefaultUDPPort
		if c.Protocol == TCP {
			c.Port = DefaultTCPPort
		}
	}
	mode := c.Socket.Mode
	if mode == rawsock.Auto {
		mode = rawsock.Unprivileged
		if rawsock.RawAllowed() {
			mode = rawsock.Privileged
		}
	}
	p := &Prober{fam: f, cfg: c, mode: mode, token: rand.Uint64(), pending: map[uint64]*pending{}}
	defer func() {
		if err != nil {
			p.closeSockets()
		}
	}()
	if p.ns, err = rawsock.CurrentNetNS(); err != nil {
		return nil, err
	}
	sc := c.Socket
	sc.Mode = mode
	if mode == rawsock.Privileged {
		ec := sc
		ec.Source, ec.Interface = netip.Addr{}, ""
		if p.errs, err = rawsock.Listen(f, &ec); err != nil {
			return nil, err
		}
	}
	if c.Protocol == UDP {
		if p.udp, err = rawsock.ListenUDP(f, 0, &sc); err != nil {
			return nil, err
		}
	} else if err = p.openTCP(&sc); err != nil {
		return nil, err
	}
	if p.errs != nil {
		// Every ICMP packet of the host reaches a raw socket: parse each into one Message
		// owned by the reader goroutine rather than a new one.
		var msg icmp.Message
		p.goRead(p.errs.ReadPacket, func(pkt *rawsock.Packet) { p.handleError(pkt, &msg) })
	}
	if p.udp != nil {
		p.goRead(p.udp.ReadPacket, p.handleUDP)
	}
	p.startTCPReader()
	return p, nil
}

// goRead starts a reader goroutine: it reads packets with read and hands each to handle until
// the socket is closed or fails maxReadErrors times in a row.
func (p *Prober) goRead(read func([]byte, *rawsock.Packet) error, handle func(*rawsock.Packet)) {
	p.goWait(func() {
		buf := make([]byte, 1<<16)
		var pkt rawsock.Packet
		for failures := 0; failures <= maxReadErrors; {
			if err := read(buf, &pkt); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				failures++
				continue
			}
			failures = 0
			handle(&pkt)
		}
	})
}

// goWait runs f on a goroutine that Close waits for.
func (p *Prober) goWait(f func()) {
	p.readers.Add(1)
	go func() {
		defer p.readers.Done()
		f()
	}()
}

// Mode reports how errors are received: Privileged (raw ICMP socket) or Unprivileged.
func (p *Prober) Mode() rawsock.Mode { return p.mode }

// Protocol reports the probes' protocol.
func (p *Prober) Protocol() Protocol { return p.cfg.Protocol }

// Port reports the destination port of probes with Flow 0 (the first one, when Classic UDP).
func (p *Prober) Port() uint16 { return p.cfg.Port }

// AnswerBurst is how many answers a destination sends at once before its rate limit: for UDP
// the burst of Linux's ICMP error limit (net.ipv4.icmp_ratelimit), 6; for TCP 0, as SYN-ACKs
// and RSTs are not limited. A trace uses it to keep probes past the destination from taking
// the answers its own queries need.
func (p *Prober) AnswerBurst() int {
	if p.cfg.Protocol == UDP {
		return linuxICMPBurst
	}
	return 0
}

// linuxICMPBurst is the burst of Linux's per-destination ICMP error token bucket
// (XRLIM_BURST_FACTOR).
const linuxICMPBurst = 6

// Start sends one probe and returns its sequence number; the outcome goes to r.OnResult, on
// another goroutine. r.Dst must be of the Prober's family; r.Size is the payload length, at
// least icmp.PayloadHeaderLen for Paris UDP probes, which are told apart by their payload.
func (p *Prober) Start(r probe.Request) (uint64, error) {
	dst := r.Dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() || icmp.FamilyOf(dst) != p.fam {
		return 0, fmt.Errorf("%w: %v", probe.ErrInvalidAddr, r.Dst)
	}
	maxSize := probe.MaxPayload(p.fam)
	if r.Size < 0 || r.Size > maxSize {
		return 0, fmt.Errorf("%w: %d (0 to %d)", probe.ErrSize, r.Size, maxSize)
	}
	if p.cfg.Protocol == UDP && !p.cfg.Classic && r.Size < icmp.PayloadHeaderLen {
		return 0, fmt.Errorf("%w: %d, Paris UDP probes need at least %d", probe.ErrSize, r.Size, icmp.PayloadHeaderLen)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = probe.DefaultTimeout
	}
	p.mu.Lock()
	p.seq++
	pd := &pending{seq: p.seq, dst: dst, onResult: r.OnResult}
	p.mu.Unlock()
	pd.tcpSeq = uint32(p.token>>32) + uint32(pd.seq)

	// Everything a reader matches on is set before the probe is registered, and it is
	// registered before it is sent: a quick answer cannot race its own registration.
	var err error
	switch p.cfg.Protocol {
	case UDP:
		pd.port = p.cfg.Port + r.Flow
		if p.cfg.Classic {
			pd.port += uint16(pd.seq - 1)
		}
		payload := icmp.AppendPayload(nil, r.Size, p.token, pd.seq)
		if err = p.register(pd, timeout); err == nil {
			err = p.udp.WriteTo(payload, netip.AddrPortFrom(dst, pd.port), &rawsock.WriteOptions{TTL: r.TTL})
		}
	case TCP:
		err = p.startTCP(pd, r, timeout)
	}
	if err != nil {
		if p.remove(pd.seq) == nil && pd.closer != nil {
			pd.closer() // never registered
		}
		return 0, fmt.Errorf("l4: send to %s: %w", dst, err)
	}
	return pd.seq, nil
}

// register enters pd in the pending table, stamps its send time and starts its timeout.
func (p *Prober) register(pd *pending, timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return probe.ErrClosed
	}
	p.pending[pd.seq] = pd
	pd.sent = time.Now()
	pd.timer = time.AfterFunc(timeout, func() {
		if pd := p.remove(pd.seq); pd != nil {
			p.deliver(pd, probe.Result{Outcome: probe.Timeout})
		}
	})
	return nil
}

// remove takes the probe out of the pending table; it returns nil when it was gone already.
func (p *Prober) remove(seq uint64) *pending {
	p.mu.Lock()
	pd := p.pending[seq]
	delete(p.pending, seq)
	p.mu.Unlock()
	if pd == nil {
		return nil
	}
	pd.timer.Stop()
	if pd.closer != nil {
		pd.closer()
	}
	return pd
}

func (p *Prober) deliver(pd *pending, r probe.Result) {
	r.Dst, r.Seq, r.Sent = pd.dst, pd.seq, pd.sent
	if r.TTL == 0 && r.Outcome != probe.Reply && r.Outcome != probe.ICMPError {
		r.TTL = -1
	}
	if pd.onResult != nil {
		pd.onResult(r)
	}
}

// Cancel gives up a probe. It reports whether the probe was still pending, in which case its
// OnResult gets Canceled (on the calling goroutine).
func (p *Prober) Cancel(dst netip.Addr, seq uint64) bool {
	pd := p.remove(seq)
	if pd == nil {
		return false
	}
	p.deliver(pd, probe.Result{Outcome: probe.Canceled, Err: probe.ErrClosed})
	return true
}

// Close closes the sockets, cancels the pending probes and waits for the readers.
func (p *Prober) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.closed = true
	var all []uint64
	for seq := range p.pending {
		all = append(all, seq)
	}
	p.mu.Unlock()
	for _, seq := range all {
		if pd := p.remove(seq); pd != nil {
			p.deliver(pd, probe.Result{Outcome: probe.Canceled, Err: probe.ErrClosed})
		}
	}
	err := p.closeSockets()
	p.readers.Wait()
	return err
}

func (p *Prober) closeSockets() error {
	var errs []error
	if p.udp != nil {
		errs = append(errs, p.udp.Close())
	}
	if p.errs != nil {
		errs = append(errs, p.errs.Close())
	}
	errs = append(errs, p.closeTCP())
	if p.ns != nil {
		errs = append(errs, p.ns.Close())
	}
	return errors.Join(errs...)
}

// find returns the pending probe that matches, without removing it; nil if none does.
func (p *Prober) find(match func(*pending) bool) *pending {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pd := range p.pending {
		if match(pd) {
			return pd
		}
	}
	return nil
}

// answered delivers an answer to the probe with sequence seq, if it is still pending.
func (p *Prober) answered(seq uint64, r probe.Result, kernel time.Time) {
	pd := p.remove(seq)
	if pd == nil {
		return
	}
	now := time.Now()
	r.RTT = now.Sub(pd.sent)
	if !kernel.IsZero() {
		if q := now.Round(0).Sub(kernel); q > 0 && q < r.RTT {
			r.RTT -= q
		}
	}
	p.deliver(pd, r)
}

// handleUDP takes a packet from the UDP socket: a queued error (Unprivileged), or a datagram a
// destination sent back.
func (p *Prober) handleUDP(pkt *rawsock.Packet) {
	if pkt.Err == nil {
		// A UDP answer from a service on the destination: the probe with that port.
		src, port := pkt.Src.Unmap(), pkt.Port
		if pd := p.find(func(pd *pending) bool { return pd.dst == src && pd.port == port }); pd != nil {
			p.answered(pd.seq, probe.Result{Outcome: probe.Reply, From: src, TTL: pkt.TTL, Size: len(pkt.Data)}, pkt.Time)
		}
		return
	}
	pd := p.matchUDP(pkt.Dst.Unmap(), pkt.Port, pkt.Data)
	if pd == nil {
		return
	}
	p.answered(pd.seq, queuedError(p.fam, pkt), pkt.Time)
}

// matchUDP finds the UDP probe an ICMP error quoting payload, sent to dst:port, belongs to.
func (p *Prober) matchUDP(dst netip.Addr, port uint16, payload []byte) *pending {
	if token, seq, ok := icmp.ParsePayload(payload); ok && token == p.token {
		return p.find(func(pd *pending) bool { return pd.seq == seq && pd.dst == dst })
	}
	if p.cfg.Classic {
		return p.find(func(pd *pending) bool { return pd.port == port && pd.dst == dst })
	}
	return nil
}

// queuedError converts an error-queue packet into an ICMPError result, as the probe engine
// does for ping sockets.
func queuedError(f icmp.Family, pkt *rawsock.Packet) probe.Result {
	e := pkt.Err
	r := probe.Result{Outcome: probe.ICMPError, From: e.Offender, TTL: pkt.TTL, Type: e.Type, Code: e.Code, Errno: e.Errno}
	r.Kind = icmp.Classify(f, e.Type)
	if r.Kind == icmp.KindPacketTooBig || r.Kind == icmp.KindDestinationUnreachable && f == icmp.IPv4 && e.Code == 4 {
		r.MTU = int(e.Info)
	}
	if e.Origin == rawsock.OriginLocal {
		r.Kind, r.Type, r.Code = icmp.KindOther, 0, 0
		r.MTU = int(e.Info)
	}
	return r
}

// handleError takes a packet from the raw ICMP socket of a privileged Prober, parsed into msg:
// an error quoting one of its probes, or something else to ignore.
func (p *Prober) handleError(pkt *rawsock.Packet, msg *icmp.Message) {
	if icmp.Parse(p.fam, pkt.Data, msg) != nil || !msg.ChecksumOK {
		return
	}
	switch msg.Kind {
	case icmp.KindDestinationUnreachable, icmp.KindTimeExceeded, icmp.KindPacketTooBig, icmp.KindParameterProblem:
	default:
		return
	}
	q := &msg.Quote
	if !q.Valid {
		return
	}
	var pd *pending
	dst := q.Dst.Unmap()
	switch {
	case p.cfg.Protocol == UDP && q.Protocol == 17 && q.SrcPort == p.udp.LocalAddrPort().Port():
		pd = p.matchUDP(dst, q.DstPort, q.Payload)
	case p.cfg.Protocol == TCP && q.Protocol == 6:
		pd = p.matchTCP(dst, q.SrcPort, q.TCPSeq)
	}
	if pd == nil {
		return
	}
	r := probe.Result{Outcome: probe.ICMPError, From: pkt.Src.Unmap(), TTL: pkt.TTL, Size: len(pkt.Data),
		Kind: msg.Kind, Type: msg.Type, Code: msg.Code, MTU: msg.MTU}
	if len(msg.Extensions) > 0 {
		r.Extensions = append([]byte(nil), msg.Extensions...) // the read buffer is reused
	}
	p.answered(pd.seq, r, pkt.Time)
}
