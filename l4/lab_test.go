package l4_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/l4"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
)

func open(t *testing.T, ns *netlab.NS, f icmp.Family, cfg l4.Config) *l4.Prober {
	t.Helper()
	var p *l4.Prober
	if err := ns.Do(func() (err error) {
		p, err = l4.Open(f, &cfg)
		return err
	}); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// outcomes collects every outcome of a set of probes and lets a test wait for them.
type outcomes struct {
	mu      sync.Mutex
	got     map[uint64][]probe.Result
	done    chan struct{}
	arrived chan uint64 // the sequence of every outcome, in order
	want    int
	n       int
}

func newOutcomes(want int) *outcomes {
	return &outcomes{got: map[uint64][]probe.Result{}, done: make(chan struct{}), arrived: make(chan uint64, 64), want: want}
}

func (o *outcomes) add(r probe.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got[r.Seq] = append(o.got[r.Seq], r)
	select {
	case o.arrived <- r.Seq:
	default: // more outcomes than any test waits for: wait() reports them
	}
	if o.n++; o.n == o.want {
		close(o.done)
	}
}

func (o *outcomes) wait(t *testing.T) map[uint64][]probe.Result {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d outcomes", o.n, o.want)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got
}

// nftSetSize counts the elements of a set in table inet l4test.
func nftSetSize(t *testing.T, ns *netlab.NS, set string) int {
	t.Helper()
	out := ns.MustRun(t, "nft", "-j", "list", "set", "inet", "l4test", set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft output %q: %v", out, err)
	}
	for _, o := range doc.Nftables {
		if o.Set != nil {
			return len(o.Set.Elem)
		}
	}
	return 0
}

// TestFlowsOnWire: the first router records the ports of every probe that reaches it. Paris
// UDP probes share one destination port and TCP ones one source port; classic ones use a new
// port each; Flow moves a probe to another destination port.
func TestFlowsOnWire(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(2)
	c.Target.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	const probes = 8
	type tc struct {
		proto   l4.Protocol
		classic bool
		mode    rawsock.Mode
		flow    bool
		set     string
		want    int
	}
	for i, k := range []tc{
		{l4.UDP, false, rawsock.Privileged, false, "udpd", 1},
		{l4.UDP, false, rawsock.Unprivileged, false, "udpd", 1},
		{l4.UDP, true, rawsock.Unprivileged, false, "udpd", probes},
		{l4.UDP, false, rawsock.Unprivileged, true, "udpd", probes},
		{l4.TCP, false, rawsock.Privileged, false, "tcps", 1},
		{l4.TCP, true, rawsock.Privileged, false, "tcps", probes},
		{l4.TCP, false, rawsock.Unprivileged, false, "tcps", probes}, // connect(): always classic
	} {
		t.Run(fmt.Sprintf("%d/%s/classic=%v/%s/flow=%v", i, k.proto, k.classic, k.mode, k.flow), func(t *testing.T) {
			c.Routers[0].Nft(t, `
table inet l4test
delete table inet l4test
table inet l4test {
	set udpd { type inet_service; flags dynamic; }
	set tcps { type inet_service; flags dynamic; }
	chain pre {
		type filter hook prerouting priority -300;
		ip saddr 198.18.0.1 udp dport != 0 add @udpd { udp dport }
		ip saddr 198.18.0.1 tcp flags & (syn|ack) == syn add @tcps { tcp sport }
	}
}`)
			p := open(t, c.Host, icmp.IPv4, l4.Config{Protocol: k.proto, Classic: k.classic, Socket: rawsock.Config{Mode: k.mode}})
			o := newOutcomes(probes)
			for j := range probes {
				r := probe.Request{Dst: c.TargetAddr4, Size: 32, TTL: 1 + j%3, Timeout: 5 * time.Second, OnResult: o.add}
				if k.flow {
					r.Flow = uint16(j)
				}
				if _, err := p.Start(r); err != nil {
					t.Fatal(err)
				}
			}
			got := o.wait(t)
			for seq, rs := range got {
				if len(rs) != 1 || rs[0].Outcome != probe.Reply && rs[0].Outcome != probe.ICMPError {
					t.Errorf("probe %d: %+v, want one answer", seq, rs)
				}
			}
			if n := nftSetSize(t, c.Routers[0], k.set); n != k.want {
				t.Errorf("%d distinct ports in %s, want %d", n, k.set, k.want)
			}
		})
	}
}

// TestOutcomes: a probe to an address the target drops times out; Cancel ends a pending probe
// with Canceled (once, and reports false the second time); Close cancels the rest and makes
// Start fail. Every probe gets exactly one outcome.
func TestOutcomes(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(1)
	c.Target.Nft(t, `
table inet l4drop {
	chain in {
		type filter hook input priority 0;
		meta l4proto { udp, tcp } drop
	}
}`)
	for _, proto := range []l4.Protocol{l4.UDP, l4.TCP} {
		for _, mode := range []rawsock.Mode{rawsock.Privileged, rawsock.Unprivileged} {
			for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
				t.Run(fmt.Sprintf("%s/%s/%s", proto, mode, icmp.FamilyOf(dst)), func(t *testing.T) {
					p := open(t, c.Host, icmp.FamilyOf(dst), l4.Config{Protocol: proto, Socket: rawsock.Config{Mode: mode}})
					o := newOutcomes(3)
					start := func(timeout time.Duration) uint64 {
						seq, err := p.Start(probe.Request{Dst: dst, Size: 32, Timeout: timeout, OnResult: o.add})
						if err != nil {
							t.Fatal(err)
						}
						return seq
					}
					timedOut := start(50 * time.Millisecond)
					canceled := start(time.Hour)
					closed := start(time.Hour)
					if !p.Cancel(dst, canceled) || p.Cancel(dst, canceled) {
						t.Errorf("Cancel: want true once, then false")
					}
					// The timeout's outcome first, then Close for the last one.
					deadline := time.After(10 * time.Second)
					for seq := uint64(0); seq != timedOut; {
						select {
						case seq = <-o.arrived:
						case <-deadline:
							t.Fatal("no timeout")
						}
					}
					p.Close()
					got := o.wait(t)
					want := map[uint64]probe.Outcome{timedOut: probe.Timeout, canceled: probe.Canceled, closed: probe.Canceled}
					for seq, w := range want {
						if rs := got[seq]; len(rs) != 1 || rs[0].Outcome != w {
							t.Errorf("probe %d: %+v, want one %v", seq, rs, w)
						}
					}
					if _, err := p.Start(probe.Request{Dst: dst, Size: 32}); !errors.Is(err, probe.ErrClosed) {
						t.Errorf("Start after Close: %v, want ErrClosed", err)
					}
				})
			}
		}
	}
}
