# Sourced by the bench scripts: a two-namespace lab in which every address of 198.18.0.0/15
# (but the 198.18.0.0/30 link) answers pings. Sets $ns, $tmp and fan_hosts; deletes all on exit.
tmp=$(mktemp -d)
ns=gpb$$
fanlab_cleanup() {
	ip netns del "${ns}h" 2>/dev/null || true
	ip netns del "${ns}t" 2>/dev/null || true
	rm -rf "$tmp"
}
trap fanlab_cleanup EXIT

ip netns add "${ns}h"
ip netns add "${ns}t"
ip -n "${ns}h" link set lo up
ip -n "${ns}t" link set lo up
ip link add "${ns}a" netns "${ns}h" type veth peer name "${ns}b" netns "${ns}t"
ip -n "${ns}h" addr add 198.18.0.1/30 dev "${ns}a"
ip -n "${ns}t" addr add 198.18.0.2/30 dev "${ns}b"
ip -n "${ns}h" link set "${ns}a" up
ip -n "${ns}t" link set "${ns}b" up
ip -n "${ns}h" route add 198.18.0.0/15 via 198.18.0.2
# Every address of the fan answers: the prefix is local to the target.
ip -n "${ns}t" route add local 198.18.0.0/15 dev lo
# The target answers as fast as it is asked.
ip netns exec "${ns}t" sysctl -qw net.ipv4.icmp_ratelimit=0
# Make sure the neighbour entry exists before timing anything.
ip netns exec "${ns}h" ping -c 1 -W 1 198.18.0.2 >/dev/null

# fan_hosts N FILE: the first N addresses of the fan, one per line.
fan_hosts() {
	python3 - "$1" >"$2" <<'PY'
import ipaddress, sys
base = int(ipaddress.IPv4Address("198.18.1.0"))
for i in range(int(sys.argv[1])):
    print(ipaddress.IPv4Address(base + i))
PY
}
