package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	"github.com/gping/gping/icmp"
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
	dst, err := resolve(ctx, o.host, o.family)
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

	e := probe.New(&probe.Config{Socket: rawsock.Config{
		Mode: o.socket, Source: o.source, Interface: o.iface, TOS: o.tos,
	}})
	defer e.Close()
	if err := e.Open(fam); err != nil {
		return fail("%v", err)
	}

	payload := size
	if payload == 0 {
		payload = trace.EmptyPayload
	}
	cfg := trace.Config{
		First: o.first, Max: o.max, Queries: o.queries, Parallel: o.parallel,
		Wait: o.wait, Here: o.here, Near: o.near, Size: payload, SendWait: o.sendwait,
	}
	names := newNamer(ctx, !o.numeric)
	if o.report {
		hostname, err := os.Hostname()
		if err != nil {
			hostname = "localhost"
		}
		return report(ctx, o, e, dst, cfg, hostname, names, stdout, stderr)
	}

	out := bufio.NewWriter(stdout)
	fmt.Fprint(out, header(o.host, dst, o.max, ipHeader+8+size))
	out.Flush()

	// Hops are printed by their own goroutine so that reverse lookups never hold up probes;
	// the channel holds every hop a trace can have, so onHop never blocks.
	hops := make(chan trace.Hop, trace.MaxTTL)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for h := range hops {
			fmt.Fprint(out, hopLine(h, names.label))
			out.Flush()
		}
	}()
	res, err := trace.Run(ctx, e, dst, &cfg, func(h trace.Hop) {
		for _, p := range h.Probes {
			names.start(p.From)
		}
		hops <- h
	})
	close(hops)
	<-printed
	switch {
	case err != nil && ctx.Err() != nil:
		return exitNotReached
	case err != nil:
		return fail("%v", err)
	case res.Reached:
		return exitReached
	}
	return exitNotReached
}

// resolve turns the destination into one address: a literal as it is (refused if it
// contradicts -4/-6), a name looked up within dnsTimeout, taking the first address of the wanted
// family.
func resolve(ctx context.Context, host string, family int) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if family == 4 && !a.Is4() || family == 6 && a.Is4() {
			return netip.Addr{}, fmt.Errorf("%s: Address family for hostname not supported", host)
		}
		if a.Is6() && a.Zone() == "" && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
			return netip.Addr{}, fmt.Errorf("%s: link-local address needs a zone: %s%%IFNAME", host, host)
		}
		if a.IsUnspecified() {
			return netip.Addr{}, fmt.Errorf("%s: not a destination address", host)
		}
		return a, nil
	}
	network := "ip"
	switch family {
	case 4:
		network = "ip4"
	case 6:
		network = "ip6"
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil || len(addrs) == 0 {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsTimeout {
			return netip.Addr{}, fmt.Errorf("%s: Temporary failure in name resolution", quoteName(host))
		}
		return netip.Addr{}, fmt.Errorf("%s: Name or service not known", quoteName(host))
	}
	return addrs[0].Unmap(), nil
}
