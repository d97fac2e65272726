package responder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
)

// maxReadErrors bounds consecutive failed reads before a reader gives up, so a socket stuck in
// an error state cannot spin a core.
const maxReadErrors = 100

// Config configures a Responder. A nil *Config answers every request normally.
type Config struct {
	// Script decides the answers; nil answers each request with one normal reply.
	Script Script
	// AltSource4 and AltSource6 are the sources of WrongSource answers. The IPv6 one must be an
	// address of the namespace; add it (nodad) before the first such answer.
	AltSource4, AltSource6 netip.Addr
	// MaxLog bounds the log: later requests are counted, not logged. 0: DefaultMaxLog.
	MaxLog int
}

// Stats are the responder's counts.
type Stats struct {
	Received   uint64 // echo requests read
	Sent       uint64 // packets written
	SendErrors uint64 // packets that could not be built or written
	Overflow   uint64 // delayed answers dropped because MaxDelayed were already waiting
}

// Responder answers echo requests in one namespace. It is safe for concurrent use.
type Responder struct {
	script Script
	alt    [2]netip.Addr
	maxLog int

	conn4 *ipv4.RawConn
	conn6 *ipv6.PacketConn
	wg    sync.WaitGroup // readers and delay callbacks

	mu      sync.Mutex // guards everything below
	closed  bool
	log     []Request
	stats   Stats
	arrived chan struct{} // closed and replaced on every request
	timers  map[uint64]*time.Timer
	timerID uint64
	idle    chan struct{} // closed while no delayed answer waits
}

// MustStart is Start for tests: it turns the namespace's own echo replies off first, fails t
// on error and closes the Responder in t.Cleanup.
func MustStart(t testing.TB, ns *netlab.NS, cfg *Config) *Responder {
	t.Helper()
	ns.NoEchoReply(t)
	r, err := Start(ns, cfg)
	if err != nil {
		t.Fatalf("responder in %s: %v", ns.Name(), err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Start opens a raw IPv4 and a raw ICMPv6 socket in ns and answers the echo requests they
// receive until Close. The kernel's own echo replies should be off (netlab.NS.NoEchoReply),
// or the pinger will see them too.
func Start(ns *netlab.NS, cfg *Config) (*Responder, error) {
	r := &Responder{maxLog: DefaultMaxLog, arrived: make(chan struct{}), timers: map[uint64]*time.Timer{},
		idle: make(chan struct{})}
	close(r.idle)
	if cfg != nil {
		r.script = cfg.Script
		r.alt = [2]netip.Addr{cfg.AltSource4.Unmap(), cfg.AltSource6}
		if cfg.MaxLog > 0 {
			r.maxLog = cfg.MaxLog
		}
	}
	if r.script == nil {
		r.script = Always(Normal())
	}
	err := ns.Do(func() error {
		c4, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		if r.conn4, err = ipv4.NewRawConn(c4); err != nil {
			c4.Close()
			return err
		}
		c6, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			r.conn4.Close()
			return err
		}
		r.conn6 = ipv6.NewPacketConn(c6)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("responder: open sockets: %w", err)
	}
	// Only echo requests reach user space: neither reader parses the namespace's other ICMP.
	var f4 ipv4.ICMPFilter
	f4.SetAll(true)
	f4.Accept(ipv4.ICMPTypeEcho)
	var f6 ipv6.ICMPFilter
	f6.SetAll(true)
	f6.Accept(ipv6.ICMPTypeEchoRequest)
	err = errors.Join(r.conn4.SetICMPFilter(&f4), r.conn6.SetICMPFilter(&f6),
		r.conn6.SetControlMessage(ipv6.FlagDst|ipv6.FlagHopLimit, true))
	if err != nil {
		r.conn4.Close()
		r.conn6.Close()
		return nil, fmt.Errorf("responder: configure sockets: %w", err)
	}
	r.wg.Add(2)
	go r.read4()
	go r.read6()
	return r, nil
}

// Close stops the responder: pending delayed answers and held (reordered) answers are
// discarded, the sockets are closed, and Close returns once every goroutine of the responder
// has ended. Later calls return ErrClosed.
func (r *Responder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	for id, t := range r.timers {
		// A timer that cannot be stopped has started its callback, which sees closed and
		// returns; the wait group covers it.
		if t.Stop() {
			delete(r.timers, id)
			r.delayDone()
			r.wg.Done()
		}
	}
	close(r.arrived)
	r.mu.Unlock()
	err := errors.Join(r.conn4.Close(), r.conn6.Close())
	r.wg.Wait()
	return err
}

// Log returns a copy of the requests received so far, in arrival order (at most Config.MaxLog).
func (r *Responder) Log() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.log...)
}

// Stats returns a snapshot of the counts.
func (r *Responder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// WaitReceived blocks until at least n requests have been received, ctx ends (its error is
// returned) or the responder is closed (ErrClosed).
func (r *Responder) WaitReceived(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		got, closed, ch := r.stats.Received, r.closed, r.arrived
		r.mu.Unlock()
		switch {
		case got >= uint64(n):
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitDelayed blocks until no delayed answer is waiting for its timer, that is until every
// Delay scheduled so far has been sent, or ctx ends.
func (r *Responder) WaitDelayed(ctx context.Context) error {
	r.mu.Lock()
	ch := r.idle
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Responder) read4() {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	var held []packet
	for failures := 0; failures <= maxReadErrors; {
		h, p, _, err := r.conn4.ReadFrom(buf)
		if err != nil {
			if r.isClosed() {
				return
			}
			failures++
			continue
		}
		failures = 0
		if len(p) < 8 || p[0] != 8 || p[1] != 0 {
			continue
		}
		src, _ := netip.AddrFromSlice(h.Src.To4())
		dst, _ := netip.AddrFromSlice(h.Dst.To4())
		in := inbound{
			req: request(icmp.IPv4, src, dst, p, h.TTL),
			msg: p, tos: uint8(h.TOS), ipID: uint16(h.ID),
			frag: uint16(int(h.Flags)<<13 | h.FragOff&0x1fff),
		}
		held = r.handle(&in, held)
	}
}

func (r *Responder) read6() {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	var held []packet
	for failures := 0; failures <= maxReadErrors; {
		n, cm, from, err := r.conn6.ReadFrom(buf)
		if err != nil {
			if r.isClosed() {
				return
			}
			failures++
			continue
		}
		failures = 0
		p := buf[:n]
		ia, ok := from.(*net.IPAddr)
		if len(p) < 8 || p[0] != 128 || p[1] != 0 || !ok || cm == nil {
			continue
		}
		src, _ := netip.AddrFromSlice(ia.IP)
		dst, _ := netip.AddrFromSlice(cm.Dst)
		in := inbound{req: request(icmp.IPv6, src, dst, p, cm.HopLimit), msg: p}
		held = r.handle(&in, held)
	}
}

func request(f icmp.Family, src, dst netip.Addr, msg []byte, ttl int) Request {
	return Request{
		Family: f, Src: src.Unmap(), Dst: dst.Unmap(),
		ID: uint16(msg[4])<<8 | uint16(msg[5]), Seq: uint16(msg[6])<<8 | uint16(msg[7]),
		Len: len(msg) - 8, TTL: ttl, Time: time.Now(), Payload: msg[8:],
	}
}

func (r *Responder) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// handle logs one request and sends its answers. held are the answers the previous request of
// this family held back (Reorder); it returns those this request holds back.
func (r *Responder) handle(in *inbound, held []packet) []packet {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	in.req.N = int(r.stats.Received)
	r.stats.Received++
	if len(r.log) < r.maxLog {
		logged := in.req
		logged.Payload = nil
		r.log = append(r.log, logged)
	}
	close(r.arrived)
	r.arrived = make(chan struct{})
	r.mu.Unlock()

	acts := r.script(in.req.N, &in.req)
	var hold []packet
	alt := r.alt[0]
	if in.req.Family == icmp.IPv6 {
		alt = r.alt[1]
	}
	for i := range acts[:min(len(acts), MaxActions)] {
		a := &acts[i]
		if a.Kind == KindDrop {
			continue
		}
		p, err := answer(a, in, alt)
		if err != nil {
			r.count(0, 1)
			continue
		}
		n := 1 + min(max(a.Copies, 0), MaxCopies)
		switch {
		case a.Delay > 0:
			r.schedule(a.Delay, p, n)
		case a.Reorder:
			for range n {
				hold = append(hold, p)
			}
		default:
			r.send(p, n)
		}
	}
	for _, p := range held {
		r.send(p, 1)
	}
	return hold
}

// schedule sends n copies of p after d, unless the responder is closed first.
func (r *Responder) schedule(d time.Duration, p packet, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if len(r.timers) >= MaxDelayed {
		r.stats.Overflow++
		return
	}
	if len(r.timers) == 0 {
		r.idle = make(chan struct{})
	}
	r.timerID++
	id := r.timerID
	r.wg.Add(1)
	r.timers[id] = time.AfterFunc(d, func() {
		defer r.wg.Done()
		r.mu.Lock()
		_, mine := r.timers[id]
		closed := r.closed
		r.mu.Unlock()
		if mine && !closed {
			r.send(p, n)
		}
		r.mu.Lock()
		if mine {
			// Removed only after the send, so that WaitDelayed returns once it is on the wire.
			delete(r.timers, id)
			r.delayDone()
		}
		r.mu.Unlock()
	})
}

// delayDone signals WaitDelayed when the last timer is gone. r.mu must be held.
func (r *Responder) delayDone() {
	if len(r.timers) == 0 {
		close(r.idle)
	}
}

func (r *Responder) send(p packet, n int) {
	for range n {
		var err error
		if p.fam == icmp.IPv4 {
			h := &ipv4.Header{Version: ipv4.Version, Len: ipv4.HeaderLen, TotalLen: ipv4.HeaderLen + len(p.msg),
				TTL: 64, Protocol: 1, Src: p.src.AsSlice(), Dst: p.dst.AsSlice()}
			err = r.conn4.WriteTo(h, p.msg, nil)
		} else {
			_, err = r.conn6.WriteTo(p.msg, &ipv6.ControlMessage{Src: p.src.AsSlice()}, &net.IPAddr{IP: p.dst.AsSlice()})
		}
		if err != nil {
			r.count(0, 1)
		} else {
			r.count(1, 0)
		}
	}
}

func (r *Responder) count(sent, failed uint64) {
	r.mu.Lock()
	r.stats.Sent += sent
	r.stats.SendErrors += failed
	r.mu.Unlock()
}
