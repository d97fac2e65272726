package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/hostname"
	"github.com/gping/gping/l4"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
	"github.com/gping/gping/trace"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// Exit codes.
const (
	exitReached    = 0
	exitNotReached = 1
	exitError      = 2
)

// run is gtrace without the process around it: ctx ends on SIGINT/SIGTERM. It returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "gtrace: "+format+"\n", a...)
		return exitError
	}
	o, err := parseOptions(args)
	if err != nil {
		return fail("%v", err)
	}
	if o.help {
		fmt.Fprint(stdout, usageText[1:])
		return exitReached
	}
	if o.version {
		fmt.Fprintln(stdout, "gtrace "+version)
		return exitReached
	}
	dst, _, err := hostname.Resolve(ctx, o.host, o.family)
	if err != nil {
		return fail("%v", err)
	}
	fam := icmp.FamilyOf(dst)
	if o.source.IsValid() && icmp.FamilyOf(o.source) != fam {
		return fail("source address %s is not of the destination's family (%s)", o.source, fam)
	}
	ipHeader := 20
	if fam == icmp.IPv6 {
		ipHeader = 40
	}
	// As traceroute does, a packet length too small for the headers is raised to fit them.
	size := trace.DefaultSize
	if o.packetLen > 0 {
		size = max(o.packetLen-ipHeader-8, 0)
	}

	sock := rawsock.Config{Mode: o.socket, Source: o.source, Interface: o.iface, TOS: o.tos}
	mtu := 0
	if o.mtu {
		// Don't fragment, and do not let the kernel's cached path MTU refuse a probe either:
		// the routers' own answers are what is being measured.
		sock.PMTU = rawsock.PMTUProbe
		mtu = o.packetLen
		if mtu == 0 {
			if mtu, err = rawsock.RouteMTU(dst, &sock); err != nil {
				return fail("%v", err)
			}
		}
		// Loopback's MTU is 65536: more than an IP datagram can be.
		mtu = min(max(mtu, ipHeader+8), 65535)
		size = mtu - ipHeader - 8
	}
	prober, closeProber, err := openProber(o, fam, sock)
	if err != nil {
		return fail("%v", err)
	}
	defer closeProber()
	// The sockets are all gtrace needed privilege for: give up the rest before reading
	// anything from the network.
	if err := rawsock.DropPrivileges(); err != nil {
		fmt.Fprintf(stderr, "gtrace: warning: %v\n", err)
	}

	payload := size
	if payload == 0 {
		payload = trace.EmptyPayload
	}
	cfg := trace.Config{
		First: o.first, Max: o.max, Queries: o.queries, Parallel: o.parallel,
		Wait: o.wait, Here: o.here, Near: o.near, Size: payload, SendWait: o.sendwait,
		Classic: o.classic, MTU: mtu,
	}
	names := newNamer(ctx, !o.numeric)
	if o.report {
		hostname, err := os.Hostname()
		if err != nil {
			hostname = "localhost"
		}
		return report(ctx, o, prober, dst, cfg, hostname, names, stdout, stderr)
	}

	out := bufio.NewWriter(stdout)
	fmt.Fprint(out, header(o.host, dst, o.max, ipHeader+8+size))
	out.Flush()

	emit, printed := startPrinter(out)
	var reached bool
	if o.multipath {
		var res trace.MultiResult
		res, err = trace.Multipath(ctx, prober, dst, &trace.MultipathConfig{
			First: o.first, Max: o.max, Wait: o.wait, Parallel: o.parallel, Size: payload,
			Confidence: o.confidence,
		}, func(h trace.MultiHop) {
			for _, in := range h.Interfaces {
				names.start(in.Addr)
			}
			emit(func() string { return multiHopLine(h, names.label) })
		})
		reached = res.Reached
	} else {
		var res trace.Result
		res, err = trace.Run(ctx, prober, dst, &cfg, func(h trace.Hop) {
			for _, p := range h.Probes {
				names.start(p.From)
			}
			emit(func() string { return hopLine(h, names.label, o.extensions) })
		})
		reached = res.Reached
	}
	printed()
	switch {
	case err != nil && ctx.Err() != nil:
		return exitNotReached
	case err != nil:
		return fail("%v", err)
	case reached:
		return exitReached
	}
	return exitNotReached
}

// startPrinter prints hop lines on a goroutine of its own, so that reverse lookups (inside the
// line functions) never hold up probes. emit never blocks: the channel holds a line for every
// hop a trace can have. wait, called once after the last emit, returns when all are printed.
func startPrinter(out *bufio.Writer) (emit func(line func() string), wait func()) {
	lines := make(chan func() string, trace.MaxTTL)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for line := range lines {
			fmt.Fprint(out, line())
			out.Flush()
		}
	}()
	return func(line func() string) { lines <- line }, func() { close(lines); <-done }
}

// openProber opens the sockets of o's method for family f.
func openProber(o *options, f icmp.Family, sock rawsock.Config) (trace.Prober, func() error, error) {
	if o.method == methodICMP {
		e := probe.New(&probe.Config{Socket: sock})
		if err := e.Open(f); err != nil {
			e.Close()
			return nil, nil, err
		}
		return e, e.Close, nil
	}
	cfg := l4.Config{Protocol: l4.UDP, Port: o.port, Classic: o.classic, Socket: sock}
	if o.method == methodTCP {
		cfg.Protocol = l4.TCP
	}
	p, err := l4.Open(f, &cfg)
	if err != nil {
		return nil, nil, err
	}
	return p, p.Close, nil
}
