// Package hostname holds what gping and gtrace do alike with the names users type and the
// names DNS returns: refuse hostile ones before any lookup, resolve with a bound on time, and
// escape whatever is printed. It is shared by the commands only; the library takes netip.Addr.
package hostname

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Timeout bounds every lookup, forward and reverse.
const Timeout = 5 * time.Second

// ErrInvalid is wrapped by Check's errors.
var ErrInvalid = errors.New("invalid host name")

// Check refuses names no resolver should be asked about: option-like words (argument injection
// through wrappers), names longer than DNS allows, labels that are empty or too long, and bytes
// outside the printable ASCII a host name can hold. Address literals pass.
func Check(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	switch {
	case h == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case strings.HasPrefix(h, "-"):
		return fmt.Errorf("%s: %w: starts with '-'", Escape(h), ErrInvalid)
	case len(h) > 253:
		return fmt.Errorf("%s...: %w: longer than 253 bytes", Escape(h[:32]), ErrInvalid)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%s: %w: bad label", Escape(h), ErrInvalid)
		}
		for _, c := range []byte(label) {
			if c <= ' ' || c >= 0x7f || strings.IndexByte("\"'`$;&|<>()\\/", c) >= 0 {
				return fmt.Errorf("%s: %w: bad character", Escape(h), ErrInvalid)
			}
		}
	}
	return nil
}

// Escape makes a name safe to print: control and non-ASCII bytes are escaped as in Go source.
func Escape(s string) string {
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// Resolve turns a destination into one address as iputils and traceroute do: a literal is
// taken as it is (and refused if it contradicts family 4 or 6; an IPv6 link-local address
// needs a zone); a name is looked up within Timeout, keeping the first address of the wanted
// family (0: either). numeric reports a literal. Errors use getaddrinfo's words, which scripts
// match.
func Resolve(ctx context.Context, host string, family int) (addr netip.Addr, numeric bool, err error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if family == 4 && !a.Is4() || family == 6 && a.Is4() {
			return netip.Addr{}, true, fmt.Errorf("%s: Address family for hostname not supported", host)
		}
		if a.Is6() && a.Zone() == "" && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
			return netip.Addr{}, true, fmt.Errorf("%s: link-local address needs a zone: %s%%IFNAME", host, host)
		}
		if a.IsUnspecified() {
			return netip.Addr{}, true, fmt.Errorf("%s: not a destination address", host)
		}
		return a, true, nil
	}
	network := "ip"
	switch family {
	case 4:
		network = "ip4"
	case 6:
		network = "ip6"
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil || len(addrs) == 0 {
		// Only a definite "no such name" is EAI_NONAME; a resolver that cannot be reached or
		// did not answer is EAI_AGAIN.
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && !dnsErr.IsNotFound {
			return netip.Addr{}, false, fmt.Errorf("%s: Temporary failure in name resolution", Escape(host))
		}
		return netip.Addr{}, false, fmt.Errorf("%s: Name or service not known", Escape(host))
	}
	return addrs[0].Unmap(), false, nil
}

// Reverse returns the name of a, escaped for printing, or "" when it has none or the lookup
// fails within Timeout.
func Reverse(ctx context.Context, a netip.Addr) string {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, a.String())
	if err != nil || len(names) == 0 {
		return ""
	}
	return Escape(strings.TrimSuffix(names[0], "."))
}
