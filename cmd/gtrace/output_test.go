package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

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
			if got := hopLine(c.hop, netip.Addr.String); got != c.want {
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
	if got, want := hopLine(h, n.label), " 1  r1.example (198.18.0.2)  1.000 ms 198.18.9.2 (198.18.9.2)  2.000 ms\n"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := newNamer(context.Background(), false).label(a); got != "198.18.0.2" {
		t.Errorf("-n label %q", got)
	}
}
