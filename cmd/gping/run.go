package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/hostname"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// Exit codes of iputils ping.
const (
	exitOK      = 0
	exitNoReply = 1
	exitError   = 2
)

// console is where gping writes; lines from the run loop and the SIGQUIT status may interleave,
// so every write holds the lock.
type console struct {
	mu     sync.Mutex
	out    *bufio.Writer
	errOut io.Writer
	// batch leaves flushing to the buffer (and to errorf and the end of the run): with
	// thousands of targets a write per line would cost more than the probing.
	batch bool
}

func newWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }

func (c *console) line(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.WriteString(s)
	if !c.batch {
		c.out.Flush()
	}
}

// errorf0 writes one line to stderr as it is, without gping's prefix (fping's ICMP lines).
func (c *console) errorf0(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Flush()
	fmt.Fprintln(c.errOut, line)
}

// warnCounters reports what the engine counted that no summary line shows.
func (c *console) warnCounters(ct probe.Counters) {
	if ct.KernelDrops > 0 {
		c.errorf("warning: the kernel dropped %d packets for want of receive buffer", ct.KernelDrops)
	}
	if ct.BadChecksum > 0 {
		// iputils counts these as replies marked (BAD CHECKSUM!); a reply whose bytes are
		// wrong proves nothing, so gping drops them and says so.
		c.errorf("warning: %d ICMP messages with a bad checksum were dropped", ct.BadChecksum)
	}
}

func (c *console) errorf(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Flush()
	fmt.Fprintf(c.errOut, "gping: "+format+"\n", a...)
}

// run is gping without the process around it: ctx ends on SIGINT/SIGTERM, a value on status
// asks for the SIGQUIT line. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, status <-chan struct{}) int {
	con := &console{out: bufio.NewWriter(stdout), errOut: stderr}
	o, err := parseOptions(args)
	if err != nil {
		con.errorf("%v", err)
		return exitError
	}
	if o.help {
		con.line(usageText[1:])
		return exitOK
	}
	if o.version {
		con.line("gping " + version + "\n")
		return exitOK
	}
	privileged := rawsock.RawAllowed()
	if (o.flood || o.intervalSet && o.interval < minUserInterval) && !privileged {
		con.errorf("cannot flood, minimal interval for user must be >= %d ms, use -i %.3f (or higher)",
			minUserInterval.Milliseconds(), minUserInterval.Seconds())
		return exitError
	}

	dst, numericHost, err := hostname.Resolve(ctx, o.host, o.family)
	if err != nil {
		con.errorf("%v", err)
		return exitError
	}
	fam := icmp.FamilyOf(dst)
	if maxSize := probe.MaxPayload(fam); o.size > maxSize {
		con.errorf("invalid argument: '%d': out of range: 0 <= value <= %d", o.size, maxSize)
		return exitError
	}
	if o.source.IsValid() && icmp.FamilyOf(o.source) != fam {
		con.errorf("invalid source address %s for an %s destination", o.source, fam)
		return exitError
	}
	if o.iface == "" {
		// As iputils does with connect(): learn now, without sending, that there is no route.
		if err := routeCheck(dst, o.source); err != nil {
			con.errorf("connect: %s", syscallText(err))
			return exitError
		}
	}

	e := probe.New(&probe.Config{Socket: rawsock.Config{
		Mode: o.socket, Source: o.source, Interface: o.iface, TOS: o.tos, Mark: o.mark, PMTU: o.pmtu,
	}})
	defer e.Close()
	if err := e.Open(fam); err != nil {
		con.errorf("%v", err)
		return exitError
	}
	// The socket is all gping needed privilege for: give up the rest before touching input
	// from the network.
	if err := rawsock.DropPrivileges(); err != nil {
		con.errorf("warning: %v", err)
	}

	names := newNamer(!o.numeric && !numericHost)
	// iputils names the address in the IPv6 header ("name (addr)") but not in the IPv4 one.
	headerAddr := dst.String()
	if fam == icmp.IPv6 {
		headerAddr = names.label(ctx, dst)
	}
	con.line(header(o.host, headerAddr, fam, o.size) + "\n")

	var (
		flood    floodFigures
		floodOut *floodFigures
	)
	if o.flood {
		floodOut = &flood
	}
	interval := o.interval
	if o.intervalSet && interval == 0 {
		// -i 0 (privileged only): as fast as the sends go; the engine's zero means "default".
		interval = time.Nanosecond
	}
	size := o.size
	if size == 0 {
		size = probe.EmptyPayload
	}
	cfg := &probe.PingConfig{
		Count: o.count, Interval: interval, Timeout: o.timeout, Deadline: o.deadline,
		Size: size, TTL: o.ttl, Preload: o.preload, Flood: o.flood,
	}
	cfg.OnResult = func(r probe.Result) {
		if r.Outcome == probe.Reply {
			flood.add(r.RTT)
		}
		if o.quiet {
			return
		}
		if o.flood {
			switch r.Outcome {
			case probe.Reply, probe.Duplicate:
				con.line("\b \b")
			case probe.ICMPError:
				con.line("\bE")
			}
			return
		}
		if s := resultLine(ctx, &r, o, names); s != "" {
			con.line(s)
		}
	}
	if o.outstanding && !o.quiet && !o.flood {
		cfg.OnUnanswered = func(seq uint64) {
			con.line(fmt.Sprintf("no answer yet for icmp_seq=%d\n", uint16(seq)))
		}
	}
	// A failing send is reported when the failure starts or changes, not on every probe: a
	// route that stays "prohibit" for a minute is one state, not sixty messages.
	var sendErr string
	cfg.OnSend = func(uint64) {
		sendErr = ""
		if o.flood && !o.quiet {
			con.line(".")
		}
	}
	cfg.OnSendError = func(err error) {
		if s := syscallText(err); s != sendErr {
			sendErr = s
			con.errorf("sendmsg: %s", s)
		}
	}
	p := e.NewPinger(dst, cfg)

	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-status:
				con.mu.Lock()
				con.out.Flush()
				fmt.Fprint(con.errOut, statusLine(p.Summary(), flood.ewma()))
				con.mu.Unlock()
			}
		}
	}()
	runErr := p.Run(ctx)
	close(done)
	if runErr != nil {
		con.errorf("%v", runErr)
		return exitError
	}
	s := p.Summary()
	con.line(summaryText(o.host, s, p.Elapsed(), o.percentiles, floodOut))
	if s.Lost > 0 {
		// Silence from a ping socket may mean another socket took our ident, not loss.
		if shared, err := e.IdentShared(fam); err == nil && shared {
			con.errorf("warning: another ping socket is bound to this one's ident and receives its replies: the losses above may not be real")
		}
	}
	con.warnCounters(e.Counters())
	if s.Received == 0 || o.deadline > 0 && o.count > 0 && s.Received < uint64(o.count) {
		return exitNoReply
	}
	return exitOK
}

// resultLine is the iputils line for one outcome, or "" for outcomes iputils does not print.
func resultLine(ctx context.Context, r *probe.Result, o *options, names *namer) string {
	var b strings.Builder
	if o.timestamps {
		now := time.Now()
		fmt.Fprintf(&b, "[%d.%06d] ", now.Unix(), now.Nanosecond()/1000)
	}
	seq := uint16(r.Seq)
	switch r.Outcome {
	case probe.Reply, probe.Duplicate:
		fmt.Fprintf(&b, "%d bytes from %s: icmp_seq=%d", r.Size, names.label(ctx, r.From), seq)
		if r.TTL >= 0 {
			fmt.Fprintf(&b, " ttl=%d", r.TTL)
		}
		fmt.Fprintf(&b, " time=%s ms", formatRTT(r.RTT))
		if r.Outcome == probe.Duplicate {
			b.WriteString(" (DUP!)")
		}
		if r.Corrupted {
			b.WriteString(" (BAD PAYLOAD!)")
		}
	case probe.ICMPError:
		from := "local host"
		if r.From.IsValid() && !r.From.IsUnspecified() {
			from = names.label(ctx, r.From)
		}
		fmt.Fprintf(&b, "From %s icmp_seq=%d %s", from, seq, describeError(r))
	default:
		return ""
	}
	if o.audible {
		b.WriteByte('\a')
	}
	b.WriteByte('\n')
	return b.String()
}

// routeCheck asks the kernel for a route to dst the way iputils does, with a connected UDP
// socket, which sends nothing.
func routeCheck(dst, src netip.Addr) error {
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 1025)))
	if err != nil {
		return err
	}
	return c.Close()
}

// syscallText is the strerror text of the errno inside err, as iputils prints it.
func syscallText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// namer prints addresses as iputils does: "name (addr)" when names are wanted, else "addr".
// Reverse lookups are bounded in time and cached; the cache is bounded too.
type namer struct {
	enabled bool
	cache   map[netip.Addr]string
}

const namerCacheMax = 256

func newNamer(enabled bool) *namer {
	return &namer{enabled: enabled, cache: make(map[netip.Addr]string)}
}

func (n *namer) label(ctx context.Context, a netip.Addr) string {
	if !n.enabled {
		return a.String()
	}
	name, ok := n.cache[a]
	if !ok {
		if name = hostname.Reverse(ctx, a); name == "" {
			name = a.String() // getnameinfo's fallback, which iputils prints
		}
		if len(n.cache) >= namerCacheMax {
			clear(n.cache)
		}
		n.cache[a] = name
	}
	return name + " (" + a.String() + ")"
}
