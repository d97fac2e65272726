package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/gping/gping/internal/cli"
	"github.com/gping/gping/internal/hostname"
)

// maxTargets bounds what a CIDR, range or file may expand to, so that a typo such as
// 2001:db8::/64 is an error and not an attempt to allocate 2^64 targets.
const maxTargets = 1 << 20

// resolveWorkers bounds concurrent name lookups.
const resolveWorkers = 64

// expandTarget turns one target word into addresses: a CIDR prefix (IPv4 without its network
// and broadcast addresses below /31, as fping -g), an address range "A-B", or nil for anything
// else (an address or a name, resolved later).
func expandTarget(w string) ([]netip.Addr, bool, error) {
	if p, err := netip.ParsePrefix(w); err == nil {
		p = p.Masked()
		hostBits := p.Addr().BitLen() - p.Bits()
		if hostBits > 20 {
			return nil, true, fmt.Errorf("%s: prefix too large (more than %d addresses)", w, maxTargets)
		}
		first := p.Addr()
		n := 1 << hostBits
		if p.Addr().Is4() && p.Bits() < 31 {
			first, n = first.Next(), n-2
		}
		out := make([]netip.Addr, 0, n)
		for a := first; len(out) < n; a = a.Next() {
			out = append(out, a)
		}
		return out, true, nil
	}
	if lo, hi, ok := strings.Cut(w, "-"); ok {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 == nil && err2 == nil {
			out, err := addrRange(a, b)
			return out, true, err
		}
	}
	return nil, false, nil
}

func addrRange(a, b netip.Addr) ([]netip.Addr, error) {
	if a.Is4() != b.Is4() || b.Less(a) {
		return nil, fmt.Errorf("%s-%s: not a range", a, b)
	}
	n := new(big.Int).Sub(new(big.Int).SetBytes(b.AsSlice()), new(big.Int).SetBytes(a.AsSlice()))
	if !n.IsInt64() || n.Int64() >= maxTargets {
		return nil, fmt.Errorf("%s-%s: range too large (more than %d addresses)", a, b, maxTargets)
	}
	out := make([]netip.Addr, 0, n.Int64()+1)
	for x := a; ; x = x.Next() {
		out = append(out, x)
		if x == b {
			return out, nil
		}
	}
}

// readTargets reads target words from a file (or stdin for "-"): one per line, blank lines and
// '#' comments skipped, as fping -f.
func readTargets(name string, stdin io.Reader) ([]string, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var words []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, w := range strings.Fields(line) {
			if len(words) >= maxTargets {
				return nil, fmt.Errorf("%s: more than %d targets", name, maxTargets)
			}
			words = append(words, w)
		}
	}
	return words, sc.Err()
}

// host is one target as the user named it, and its address once resolved.
type host struct {
	name string
	addr netip.Addr
	err  error // resolution failed
}

// resolveHosts expands and resolves words concurrently, with a bound on lookups in flight,
// keeping the input order.
func resolveHosts(ctx context.Context, words []string, family int) ([]host, error) {
	hosts := make([]host, 0, len(words)) // a word is one host but for CIDRs and ranges
	for _, w := range words {
		addrs, isSet, err := expandTarget(w)
		if err != nil {
			return nil, err
		}
		if isSet {
			for _, a := range addrs {
				hosts = append(hosts, host{name: a.String(), addr: a})
			}
		} else if a, err := netip.ParseAddr(w); err == nil && a.Zone() == "" && !a.IsUnspecified() {
			// A plain address needs no lookup (nor a goroutine).
			hosts = append(hosts, host{name: w, addr: a.Unmap()})
		} else {
			hosts = append(hosts, host{name: w})
		}
		if len(hosts) > maxTargets {
			return nil, fmt.Errorf("more than %d targets", maxTargets)
		}
	}
	sem := make(chan struct{}, resolveWorkers)
	var wg sync.WaitGroup
	for i := range hosts {
		h := &hosts[i]
		if h.addr.IsValid() {
			continue
		}
		if err := cli.CheckHost(h.name, "usage error: Destination address required"); err != nil {
			h.err = err
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			h.addr, _, h.err = hostname.Resolve(ctx, h.name, family)
		}()
	}
	wg.Wait()
	for i := range hosts {
		h := &hosts[i]
		if h.err == nil && (family == 4 && !h.addr.Is4() || family == 6 && h.addr.Is4()) {
			h.err = fmt.Errorf("%s: Address family for hostname not supported", h.name)
		}
	}
	return hosts, nil
}
