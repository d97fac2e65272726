package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/cli"
	"github.com/gping/gping/internal/hostname"
	"github.com/gping/gping/trace"
)

// header is traceroute's first line. The packet size counts the IP header (20 or 40 bytes),
// the 8-byte ICMP header and the payload.
func header(host string, dst netip.Addr, maxTTL, packetLen int) string {
	return fmt.Sprintf("traceroute to %s (%s), %d hops max, %d byte packets\n", host, dst, maxTTL, packetLen)
}

// hopLine is traceroute's line for one hop: the TTL right-aligned in two columns, then for each
// probe "*" or its time, the answering address shown before the first answer and again
// whenever a probe answers from another address than the answered probe before it, and the
// probe's mark after its time. label renders an address ("addr" or "name (addr)"). With ext
// (traceroute -e), an MPLS label stack the router reported follows its address as
// traceroute prints it: <MPLS:L=label,E=tc,S=bottom,T=ttl/...>.
func hopLine(h trace.Hop, label func(netip.Addr) string, ext bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%2d ", h.TTL)
	var last netip.Addr
	for _, p := range h.Probes {
		if p.Timeout {
			b.WriteString(" *")
			continue
		}
		if !last.IsValid() || p.From != last {
			b.WriteString(" " + label(p.From))
			if ext && len(p.MPLS) > 0 {
				b.WriteString(" <MPLS:")
				for i, l := range p.MPLS {
					if i > 0 {
						b.WriteByte('/')
					}
					s := 0
					if l.S {
						s = 1
					}
					fmt.Fprintf(&b, "L=%d,E=%d,S=%d,T=%d", l.Label, l.TC, s, l.TTL)
				}
				b.WriteByte('>')
			}
			if ext {
				for _, in := range p.Interfaces {
					b.WriteString(" " + interfaceInfo(in))
				}
			}
			last = p.From
		}
		fmt.Fprintf(&b, "  %.3f ms", float64(p.RTT)/float64(time.Millisecond))
		if p.MTU > 0 {
			fmt.Fprintf(&b, " F=%d", p.MTU)
		}
		if p.Annotation != "" {
			b.WriteString(" " + p.Annotation)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// interfaceRoles name RFC 5837's interface roles.
var interfaceRoles = [...]string{"in", "in-sub", "out", "next-hop"}

// interfaceInfo shows an RFC 5837 object in the key=value style traceroute -e uses for MPLS
// (traceroute itself prints other classes as a hex dump): <IF:role=in,index=3,addr=...,
// name=...,mtu=...>, with the fields the router sent. The name comes from the network and is
// escaped.
func interfaceInfo(in icmp.InterfaceInfo) string {
	var b strings.Builder
	b.WriteString("<IF:role=" + interfaceRoles[in.Role&3])
	if in.HasIfIndex {
		fmt.Fprintf(&b, ",index=%d", in.IfIndex)
	}
	if in.Addr.IsValid() {
		b.WriteString(",addr=" + in.Addr.String())
	}
	if in.Name != "" {
		b.WriteString(",name=" + cli.Escape(in.Name))
	}
	if in.HasMTU {
		fmt.Fprintf(&b, ",mtu=%d", in.MTU)
	}
	b.WriteByte('>')
	return b.String()
}

// multiHopLine is one hop of --multipath: every interface that answered, with its best RTT
// and its mark, in traceroute's way of naming a new address inside a line; "*" for a silent
// hop.
func multiHopLine(h trace.MultiHop, label func(netip.Addr) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%2d ", h.TTL)
	if len(h.Interfaces) == 0 {
		b.WriteString(" *")
	}
	for _, in := range h.Interfaces {
		fmt.Fprintf(&b, " %s  %.3f ms", label(in.Addr), float64(in.RTT)/float64(time.Millisecond))
		if in.Annotation != "" {
			b.WriteString(" " + in.Annotation)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// Reverse lookups: each bounded in time (hostname.Timeout), at most namerParallel at once,
// results cached.
const (
	namerParallel = 8
	namerCacheMax = 1024
)

// namer resolves addresses to names without ever delaying probes: start begins a lookup in the
// background, label waits for it. It is safe for concurrent use.
type namer struct {
	ctx     context.Context
	enabled bool
	sem     chan struct{}
	mu      sync.Mutex
	names   map[netip.Addr]*lookup
}

type lookup struct {
	done chan struct{}
	name string
}

func newNamer(ctx context.Context, enabled bool) *namer {
	return &namer{ctx: ctx, enabled: enabled, sem: make(chan struct{}, namerParallel),
		names: make(map[netip.Addr]*lookup)}
}

// start begins the lookup of a, if names are wanted and a is not known yet.
func (n *namer) start(a netip.Addr) *lookup {
	if !n.enabled || !a.IsValid() {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.names[a]; l != nil {
		return l
	}
	if len(n.names) >= namerCacheMax {
		// Keep memory bounded on endless runs; a forgotten name is only looked up again.
		for k, l := range n.names {
			select {
			case <-l.done:
				delete(n.names, k)
			default:
			}
		}
	}
	l := &lookup{done: make(chan struct{}), name: a.String()}
	n.names[a] = l
	go func() {
		defer close(l.done)
		select {
		case n.sem <- struct{}{}:
		case <-n.ctx.Done():
			return
		}
		defer func() { <-n.sem }()
		if name := hostname.Reverse(n.ctx, a); name != "" {
			l.name = name
		}
	}()
	return l
}

// name returns a's name, or the address itself with -n or when it has none, as mtr prints
// hops.
func (n *namer) name(a netip.Addr) string {
	l := n.start(a)
	if l == nil {
		return a.String()
	}
	<-l.done
	return l.name
}

// label returns "addr" with -n, else "name (addr)" (the address twice when it has no name),
// as traceroute prints them.
func (n *namer) label(a netip.Addr) string {
	l := n.start(a)
	if l == nil {
		return a.String()
	}
	<-l.done
	return l.name + " (" + a.String() + ")"
}
