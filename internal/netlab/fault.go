package netlab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// faultTable declares the nftables table the fault methods add rules to:
// filter chains on input, forward and output that accept by default.
// Declaring it again is a no-op ("add" semantics), so every fault call can
// start with it and no state is kept about whether it exists yet.
const faultTable = `table inet gpinglab {
	chain input { type filter hook input priority filter; policy accept; }
	chain forward { type filter hook forward priority filter; policy accept; }
	chain output { type filter hook output priority filter; policy accept; }
}
`

// ndTypes are the ICMPv6 neighbour discovery messages (RFC 4861) that
// DropPercent spares: losing them would add multi-second resolution stalls on
// top of the requested loss rate.
const ndTypes = "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }"

// DropPercent drops percent (0..100) of the ICMP, ICMPv6, UDP and TCP packets
// the namespace receives, forwards or sends, each independently at random
// (nft "numgen random mod 100 < percent"). Neighbour discovery is spared;
// ARP is not IP and never affected. Calls add up.
func (n *NS) DropPercent(t testing.TB, percent int) {
	t.Helper()
	if percent < 0 || percent > 100 {
		t.Fatalf("netlab: DropPercent(%d): want 0..100", percent)
	}
	if percent == 0 {
		return
	}
	// numgen yields 0..99 and nft rejects the always-true "< 100".
	random := fmt.Sprintf(" numgen random mod 100 < %d", percent)
	if percent == 100 {
		random = ""
	}
	var rules []string
	for _, chain := range []string{"input", "forward", "output"} {
		rules = append(rules,
			fmt.Sprintf("%s meta l4proto { icmp, udp, tcp }%s drop", chain, random),
			fmt.Sprintf("%s meta l4proto ipv6-icmp icmpv6 type != %s%s drop", chain, ndTypes, random))
	}
	n.addRules(t, rules...)
}

// RejectAdminProhibited makes the namespace, as a router, refuse to forward
// packets to dst, answering with ICMP Destination Unreachable code 13
// (communication administratively prohibited) or ICMPv6 Destination
// Unreachable code 1 (administratively prohibited), which ping prints as
// "Packet filtered" and "Administratively prohibited".
func (n *NS) RejectAdminProhibited(t testing.TB, dst netip.Prefix) {
	t.Helper()
	if !dst.IsValid() {
		t.Fatalf("netlab: RejectAdminProhibited: invalid prefix %v", dst)
	}
	dst = netip.PrefixFrom(dst.Addr().Unmap(), dst.Bits()).Masked()
	if dst.Addr().Is4() {
		n.addRules(t, fmt.Sprintf("forward ip daddr %s reject with icmp type admin-prohibited", dst))
	} else {
		n.addRules(t, fmt.Sprintf("forward ip6 daddr %s reject with icmpv6 type admin-prohibited", dst))
	}
}

// NoTimeExceeded makes the namespace a silent router: it drops the ICMP and
// ICMPv6 Time Exceeded messages it would send, while still decrementing the
// TTL and discarding expired packets, as many real routers do.
func (n *NS) NoTimeExceeded(t testing.TB) {
	t.Helper()
	n.addRules(t,
		"output icmp type time-exceeded drop",
		"output icmpv6 type time-exceeded drop")
}

// NoEchoReply makes the namespace ignore echo requests of both families
// (net.ipv4.icmp_echo_ignore_all=1, net.ipv6.icmp.echo_ignore_all=1).
func (n *NS) NoEchoReply(t testing.TB) {
	t.Helper()
	err := n.writeSysctls([]sysctlKV{
		{"net.ipv4.icmp_echo_ignore_all", "1"},
		{"net.ipv6.icmp.echo_ignore_all", "1"},
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// RateLimitICMPErrors restores the kernel's ICMP error rate limiting in the
// namespace, which Chain disables in its routers. The values are those of a
// fresh namespace on the running kernel, read when the Lab was created. On
// Linux 6.18 they are net.ipv4.icmp_ratelimit=1000 (ms per message and
// destination, burst 6), icmp_msgs_per_sec=1000, icmp_msgs_burst=50,
// icmp_ratemask=6168 (Destination Unreachable, Source Quench, Time Exceeded,
// Parameter Problem), net.ipv6.icmp.ratelimit=100 (1000 on older kernels)
// and net.ipv6.icmp.ratemask=0-1,3-127 (every error but Packet Too Big).
func (n *NS) RateLimitICMPErrors(t testing.TB) {
	t.Helper()
	if err := n.writeSysctls(n.lab.icmp); err != nil {
		t.Fatalf("%v", err)
	}
}

// Nft loads ruleset into the namespace with "nft -f -". The fault methods
// use the table "inet gpinglab"; rulesets may add to it or make their own.
func (n *NS) Nft(t testing.TB, ruleset string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		unavailable(t, "%v", err)
	}
	if _, err := n.runInput(ruleset, "nft", "-f", "-"); err != nil {
		t.Fatalf("%v", err)
	}
}

// addRules appends rules ("CHAIN expression...") to the fault table in one
// nft transaction.
func (n *NS) addRules(t testing.TB, rules ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(faultTable)
	for _, r := range rules {
		fmt.Fprintf(&b, "add rule inet gpinglab %s\n", r)
	}
	n.Nft(t, b.String())
}
