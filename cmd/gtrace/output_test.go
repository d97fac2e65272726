package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/trace"
)

func TestHeader(t *testing.T) {
	for _, c := range []struct {
		host      string
		dst       string
		max, size int
		want      string
	}{
		{"198.18.3.2", "198.18.3.2", 32, 60, "traceroute to 198.18.3.2 (198.18.3.2), 32 hops max, 60 byte packets\n"},
		{"example.org", "2001:db8::1", 30, 80, "traceroute to example.org (2001:db8::1), 30 hops max, 80 byte packets\n"},
	} {
		if got := header(c.host, netip.MustParseAddr(c.dst), c.max, c.size); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestHopLine(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.2")
	b := netip.MustParseAddr("198.18.9.2")
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	ok := func(from netip.Addr, rtt time.Duration) trace.ProbeResult {
		return trace.ProbeResult{From: from, RTT: rtt}
	}
	star := trace.ProbeResult{Timeout: true}
	for _, c := range []struct {
		name string
		hop  trace.Hop
		want string
	}{
		{"three answers", trace.Hop{TTL: 1, Probes: []trace.ProbeResult{ok(a, ms(0.05)), ok(a, ms(0.02)), ok(a, ms(0.018))}},
			" 1  198.18.0.2  0.050 ms  0.020 ms  0.018 ms\n"},
		{"all lost", trace.Hop{TTL: 2, Probes: []trace.ProbeResult{star, star, star}},
			" 2  * * *\n"},
		{"lost then answered", trace.Hop{TTL: 12, Probes: []trace.ProbeResult{star, ok(a, ms(1.5)), star}},
			"12  * 198.18.0.2  1.500 ms *\n"},
		{"address changes", trace.Hop{TTL: 3, Probes: []trace.ProbeResult{ok(a, ms(1)), ok(b, ms(2)), ok(b, ms(3))}},
			" 3  198.18.0.2  1.000 ms 198.18.9.2  2.000 ms  3.000 ms\n"},
		{"address again after a loss", trace.Hop{TTL: 4, Probes: []trace.ProbeResult{ok(a, ms(1)), star, ok(a, ms(2))}},
			" 4  198.18.0.2  1.000 ms *  2.000 ms\n"},
		{"marks", trace.Hop{TTL: 5, Probes: []trace.ProbeResult{
			{From: a, RTT: ms(0.1), Annotation: "!X"}, {From: a, RTT: ms(0.2), Annotation: "!X"}, star}},
			" 5  198.18.0.2  0.100 ms !X  0.200 ms !X *\n"},
		{"one query, large time", trace.Hop{TTL: 255, Probes: []trace.ProbeResult{ok(b, ms(1234.5678))}},
			"255  198.18.9.2  1234.568 ms\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := hopLine(c.hop, netip.Addr.String, false); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
	// Without -n an address is "name (addr)"; one with no name shows the address twice.
	n := newNamer(context.Background(), true)
	n.names[a] = &lookup{done: make(chan struct{}), name: "r1.example"}
	close(n.names[a].done)
	n.names[b] = &lookup{done: make(chan struct{}), name: b.String()}
	close(n.names[b].done)
	h := trace.Hop{TTL: 1, Probes: []trace.ProbeResult{ok(a, ms(1)), ok(b, ms(2))}}
	if got, want := hopLine(h, n.label, false), " 1  r1.example (198.18.0.2)  1.000 ms 198.18.9.2 (198.18.9.2)  2.000 ms\n"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := newNamer(context.Background(), false).label(a); got != "198.18.0.2" {
		t.Errorf("-n label %q", got)
	}
}

// TestReportTable: mtr --report's layout, byte for byte, for the lines mtr 0.95 printed in a
// lab namespace (a 100% loss loses its '%' to the next field, as in mtr), plus the line of a
// hop answered from a second address.
func TestReportTable(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	a := netip.MustParseAddr("198.18.0.2")
	b := netip.MustParseAddr("198.18.9.2")
	dst := netip.MustParseAddr("198.18.1.2")
	start := time.Date(2026, 11, 24, 19, 28, 25, 0, time.UTC)
	rows := []trace.HopSummary{
		{TTL: 1, Sent: 3, Received: 1, Latest: a, Addrs: []netip.Addr{a}, Last: ms(0.1), Avg: ms(0.1), Best: ms(0.1), Worst: ms(0.1)},
		{TTL: 2, Sent: 2},
		{TTL: 3, Sent: 2, Received: 2, Latest: dst, Addrs: []netip.Addr{b, dst}, Last: ms(0.049), Avg: ms(0.0745),
			Best: ms(0.049), Worst: ms(0.1), StDev: ms(0.036)},
		{TTL: 12, Sent: 10, Received: 10, Latest: a, Addrs: []netip.Addr{a}, Last: ms(1234.5), Avg: ms(12.34),
			Best: ms(1), Worst: ms(99999.9), StDev: ms(7)},
	}
	want := "Start: 2026-11-24T19:28:25+0000\n" +
		"HOST: vm                          Loss%   Snt   Last   Avg  Best  Wrst StDev\n" +
		"  1.|-- 198.18.0.2                66.7%     3    0.1   0.1   0.1   0.1   0.0\n" +
		"  2.|-- ???                       100.0     2    0.0   0.0   0.0   0.0   0.0\n" +
		"  3.|-- 198.18.1.2                 0.0%     2    0.0   0.1   0.0   0.1   0.0\n" +
		"    |  `|-- 198.18.9.2\n" +
		// Times too wide for their field lose their tail to the next one, as in mtr.
		" 12.|-- 198.18.0.2                 0.0%    10  1234.  12.3   1.0 99999   7.0\n"
	if got := reportTable(start, "vm", rows, netip.Addr.String); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestHopLineMPLS: with -e the label stack follows the address, as traceroute -e prints it;
// without -e it is not shown.
func TestHopLineMPLS(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.2")
	h := trace.Hop{TTL: 3, Probes: []trace.ProbeResult{
		{From: a, RTT: time.Millisecond, MPLS: []icmp.MPLSLabel{{Label: 24006, TTL: 1}, {Label: 16, TC: 5, S: true, TTL: 1}}},
		{From: a, RTT: 2 * time.Millisecond},
	}}
	if got, want := hopLine(h, netip.Addr.String, true), " 3  198.18.0.2 <MPLS:L=24006,E=0,S=0,T=1/L=16,E=5,S=1,T=1>  1.000 ms  2.000 ms\n"; got != want {
		t.Errorf("-e:\n got %q\nwant %q", got, want)
	}
	if got, want := hopLine(h, netip.Addr.String, false), " 3  198.18.0.2  1.000 ms  2.000 ms\n"; got != want {
		t.Errorf("no -e:\n got %q\nwant %q", got, want)
	}
}

// TestHopLineInterfaceInfo: with -e RFC 5837 objects follow the address, one per object, with
// the fields the router sent, and a hostile interface name escaped.
func TestHopLineInterfaceInfo(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.2")
	h := trace.Hop{TTL: 2, Probes: []trace.ProbeResult{{From: a, RTT: time.Millisecond, Interfaces: []icmp.InterfaceInfo{
		{Role: 0, IfIndex: 7, HasIfIndex: true, Addr: netip.MustParseAddr("198.18.1.1"), Name: "ge-0/0/1", MTU: 1500, HasMTU: true},
		{Role: 2, Name: "x\x1b[2J"},
	}}}}
	want := " 2  198.18.0.2 <IF:role=in,index=7,addr=198.18.1.1,name=ge-0/0/1,mtu=1500> <IF:role=out,name=x\\x1b[2J>  1.000 ms\n"
	if got := hopLine(h, netip.Addr.String, true); got != want {
		t.Errorf("-e:\n got %q\nwant %q", got, want)
	}
	if got := hopLine(h, netip.Addr.String, false); strings.Contains(got, "IF:") {
		t.Errorf("no -e: %q", got)
	}
}
