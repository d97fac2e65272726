#!/usr/bin/env bash
# Traceroute benchmark: gtrace against traceroute -I, traceroute -U, tracepath, mtr and scamper
# on the same paths, in one invocation.
#
# Builds its own lab with ip netns: a host, a chain of N routers and a target, links numbered
# as internal/netlab numbers them (link i is 198.18.i.0/30 and 2001:db8:0:i::/64, the router
# facing the host with .2 / ::2). Routers forward with ICMP rate limits off, except in the
# rate-limited cases, which restore the kernel defaults (icmp_ratelimit=1000,
# icmp_msgs_per_sec=1000, icmp_msgs_burst=50, default ratemasks) and wait for every router's
# token bucket to refill before each tool. The silent router drops its outgoing Time Exceeded
# with nftables. For each tool it prints wall time, the ratio to gtrace's, how many hops it
# got right of N+1 (a silent hop is right when it shows no address) and how many "*" (mtr's
# "???") it printed; fast runs are the median of REPEAT (7) runs. Needs root, iproute2 and nft;
# missing tools are skipped with a note.
# Sends only inside its namespaces and deletes them on exit.
#
#   sudo bash scripts/bench-trace.sh
#   sudo CASES=diamond bash scripts/bench-trace.sh   # only the ECMP diamond (or CASES=chains)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

for tool in ip nft python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

tmp=$(mktemp -d)
p=gtb$$
nodes=()
cleanup() {
	for n in "${nodes[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$tmp/gtrace" ./cmd/gtrace

# chain N: builds ${p}h -- ${p}r1 .. ${p}rN -- ${p}t, replacing any chain built before.
chain() {
	local n=$1 i j
	for x in "${nodes[@]}"; do ip netns del "$x" 2>/dev/null || true; done
	nodes=("${p}h")
	for ((i = 1; i <= n; i++)); do nodes+=("${p}r$i"); done
	nodes+=("${p}t")
	for x in "${nodes[@]}"; do ip netns add "$x"; ip -n "$x" link set lo up; done
	local last=$((n + 1))
	for ((i = 0; i < last; i++)); do # link i joins node i and node i+1
		ip link add "${p}l${i}a" netns "${nodes[i]}" type veth peer name "${p}l${i}b" netns "${nodes[i + 1]}"
	done
	for ((i = 0; i <= last; i++)); do
		{
			if ((i > 0)); then
				echo "addr add 198.18.$((i - 1)).2/30 dev ${p}l$((i - 1))b"
				echo "addr add 2001:db8:0:$(printf %x $((i - 1)))::2/64 dev ${p}l$((i - 1))b nodad"
				echo "link set ${p}l$((i - 1))b up"
			fi
			if ((i < last)); then
				echo "addr add 198.18.$i.1/30 dev ${p}l${i}a"
				echo "addr add 2001:db8:0:$(printf %x "$i")::1/64 dev ${p}l${i}a nodad"
				echo "link set ${p}l${i}a up"
			fi
			if ((i == 0)); then
				echo "route add default via 198.18.0.2"
				echo "route add ::/0 via 2001:db8::2"
			elif ((i == last)); then
				echo "route add default via 198.18.$((i - 1)).1"
				echo "route add ::/0 via 2001:db8:0:$(printf %x $((i - 1)))::1"
			else
				for ((j = 0; j < i - 1; j++)); do
					echo "route add 198.18.$j.0/30 via 198.18.$((i - 1)).1"
					echo "route add 2001:db8:0:$(printf %x "$j")::/64 via 2001:db8:0:$(printf %x $((i - 1)))::1"
				done
				for ((j = i + 1; j <= n; j++)); do
					echo "route add 198.18.$j.0/30 via 198.18.$i.2"
					echo "route add 2001:db8:0:$(printf %x "$j")::/64 via 2001:db8:0:$(printf %x "$i")::2"
				done
			fi
		} | ip -n "${nodes[i]}" -batch -
	done
	for ((i = 1; i <= n; i++)); do
		ip netns exec "${nodes[i]}" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	done
	ratelimits off
	# Resolve every neighbour before anything is timed.
	ip netns exec "${p}h" ping -c 2 -i 0.2 -W 2 "198.18.$n.2" >/dev/null || echo "warning: IPv4 path not up" >&2
	ip netns exec "${p}h" ping -6 -c 2 -i 0.2 -W 2 "2001:db8:0:$(printf %x "$n")::2" >/dev/null ||
		echo "warning: IPv6 path not up" >&2
}

# ratelimits off|on: the ICMP error rate limits of the routers and of the target (whose port
# unreachables answer UDP probes).
ratelimits() {
	local i
	for ((i = 1; i < ${#nodes[@]}; i++)); do
		if [ "$1" = off ]; then
			ip netns exec "${nodes[i]}" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_ratemask=0 \
				net.ipv6.icmp.ratelimit=0
			ip netns exec "${nodes[i]}" sh -c 'echo > /proc/sys/net/ipv6/icmp/ratemask'
		else
			ip netns exec "${nodes[i]}" sysctl -qw net.ipv4.icmp_ratelimit=1000 net.ipv4.icmp_msgs_per_sec=1000 \
				net.ipv4.icmp_msgs_burst=50 net.ipv4.icmp_ratemask=6168 net.ipv6.icmp.ratelimit=100
			ip netns exec "${nodes[i]}" sh -c 'echo 0-1,3-127 > /proc/sys/net/ipv6/icmp/ratemask'
		fi
	done
}

silence() { # silence K: router K sends no Time Exceeded
	ip netns exec "${p}r$1" nft -f - <<EOT
table inet gtb {
	chain output {
		type filter hook output priority filter; policy accept;
		icmp type time-exceeded drop
		icmpv6 type time-exceeded drop
	}
}
EOT
}

# score N FAMILY SILENT FILE: "right stars" from a tool's output.
score() {
	python3 - "$@" <<'PY'
import ipaddress, re, sys
n, fam, silent, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
def want(k):  # address of hop k (1-based): router k faces the host with .2 of link k-1
    i = k - 1
    return f"198.18.{i}.2" if fam == "4" else str(ipaddress.ip_address(f"2001:db8:0:{i:x}::2"))
addrs, stars = {}, 0
ip = re.compile(r"(?<![\w:.])(\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f:]*:[0-9a-f]+)(?![\w:.])")
for line in open(path, errors="replace"):
    m = re.match(r"^\s*(\d+)(\.\|--|:|\s)", line)
    if not m or "[LOCALHOST]" in line:
        continue
    k = int(m.group(1))
    rest = line[m.end():]
    addrs.setdefault(k, set()).update(a for a in ip.findall(rest) if not a.startswith("0.0") and a.count(":") != 1)
    stars += rest.count("*") + rest.count("???")
right = 0
for k in range(1, n + 2):
    got = addrs.get(k)
    if got is None:
        continue
    if k == silent and not got or k != silent and got == {want(k)}:
        right += 1
print(right, stars)
PY
}

gtwall=1
declare -A walls
# measure LABEL N FAMILY SILENT REFILL CMD...: runs CMD in the host namespace and prints a row.
measure() {
	local label=$1 n=$2 fam=$3 silent=$4 refill=$5
	shift 5
	if ! command -v "$1" >/dev/null && [ ! -x "$1" ]; then
		printf '  %-34s skipped: %s not installed\n' "$label" "$1"
		return
	fi
	# Runs of a few milliseconds are timed REPEAT times and the median is shown; a run that
	# needs fresh token buckets (Linux refills 6 tokens in 6 s) is timed once, after a refill.
	local runs=${REPEAT:-7} t0 t1 wall i
	[ "$refill" = yes ] && runs=1
	local times=()
	for ((i = 0; i < runs; i++)); do
		[ "$refill" = yes ] && sleep 6.5
		t0=$(date +%s.%N)
		timeout 120 ip netns exec "${p}h" "$@" >"$tmp/out" 2>&1 || true
		t1=$(date +%s.%N)
		times+=("$(echo "$t1 - $t0" | bc -l)")
		# A slow tool (mtr, scamper) is not worth repeating.
		if (($(echo "${times[-1]} > 0.5" | bc -l))); then break; fi
	done
	wall=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	[ "$label" = gtrace ] && gtwall=$wall
	walls[$label]=$wall
	read -r right stars < <(score "$n" "$fam" "$silent" "$tmp/out")
	printf '  %-34s wall %7.3f s  x%7.2f  hops right %2d/%d  stars %3d\n' "$label" "$wall" \
		"$(echo "$wall / $gtwall" | bc -l)" "$right" $((n + 1)) "$stars"
}

# run LABEL N FAMILY SILENT REFILL QUERIES: every tool on the current chain.
run() {
	local label=$1 n=$2 fam=$3 silent=$4 refill=$5 q=$6 dst
	if [ "$fam" = 4 ]; then dst=198.18.$n.2; else dst=2001:db8:0:$(printf %x "$n")::2; fi
	echo "== $label: $n routers, IPv$fam, -q $q, destination $dst"
	measure gtrace "$n" "$fam" "$silent" "$refill" "$tmp/gtrace" -n -q "$q" "$dst"
	measure "traceroute -I" "$n" "$fam" "$silent" "$refill" traceroute -"$fam" -I -n -q "$q" -m 32 "$dst"
	measure "traceroute -U" "$n" "$fam" "$silent" "$refill" traceroute -"$fam" -U -n -q "$q" -m 32 "$dst"
	measure "tracepath" "$n" "$fam" "$silent" "$refill" tracepath -"$fam" -n -m 32 "$dst"
	measure "mtr -r -c 1" "$n" "$fam" "$silent" "$refill" mtr -"$fam" -r -c 1 -n -m 32 "$dst"
	measure "scamper trace" "$n" "$fam" "$silent" "$refill" scamper -O text -c "trace -P icmp-paris -q $q -m 32" -i "$dst"
	measure "gtrace -U" "$n" "$fam" "$silent" "$refill" "$tmp/gtrace" -U -n -q "$q" "$dst"
	measure "gtrace -T" "$n" "$fam" "$silent" "$refill" "$tmp/gtrace" -T -n -q "$q" "$dst"
	measure "traceroute -T" "$n" "$fam" "$silent" "$refill" traceroute -"$fam" -T -n -q "$q" -m 32 "$dst"
	local m line="  gtrace / traceroute, same method:"
	for m in I U T; do
		if [ -n "${walls[traceroute -$m]:-}" ]; then
			local g=${walls[gtrace -$m]:-${walls[gtrace]}}
			[ "$m" = I ] && g=${walls[gtrace]}
			line+=$(printf '  -%s x%.2f' "$m" "$(echo "$g / ${walls[traceroute -$m]}" | bc -l)")
		fi
	done
	echo "$line"
	walls=()
}

# diamond: Host - A - {B1, B2} - C - Target, A balancing on the five-tuple (netlab.Diamond's
# plan: link k, 0..5 = h-a, a-b1, a-b2, b1-c, b2-c, c-t, is 198.18.k.0/30 and 2001:db8:0:k::/64).
diamond() {
	local x k
	for x in "${nodes[@]}"; do ip netns del "$x" 2>/dev/null || true; done
	nodes=("${p}h" "${p}a" "${p}b1" "${p}b2" "${p}c" "${p}t")
	for x in "${nodes[@]}"; do ip netns add "$x"; ip -n "$x" link set lo up; done
	local left=(0 1 1 2 3 4) right=(1 2 3 4 4 5)
	for k in 0 1 2 3 4 5; do
		local l=${nodes[${left[k]}]} r=${nodes[${right[k]}]}
		ip link add "${p}d${k}a" netns "$l" type veth peer name "${p}d${k}b" netns "$r"
		ip -n "$l" addr add "198.18.$k.1/30" dev "${p}d${k}a"
		ip -n "$l" addr add "2001:db8:0:$k::1/64" dev "${p}d${k}a" nodad
		ip -n "$r" addr add "198.18.$k.2/30" dev "${p}d${k}b"
		ip -n "$r" addr add "2001:db8:0:$k::2/64" dev "${p}d${k}b" nodad
		ip -n "$l" link set "${p}d${k}a" up
		ip -n "$r" link set "${p}d${k}b" up
	done
	r4() { ip -n "$1" route add "$2" via "$3"; }
	r4 "${p}h" default 198.18.0.2; ip -n "${p}h" route add ::/0 via 2001:db8::2
	r4 "${p}t" default 198.18.5.1; ip -n "${p}t" route add ::/0 via 2001:db8:0:5::1
	ip -n "${p}a" route add 198.18.5.0/30 nexthop via 198.18.1.2 nexthop via 198.18.2.2
	ip -n "${p}a" route add 2001:db8:0:5::/64 nexthop via 2001:db8:0:1::2 nexthop via 2001:db8:0:2::2
	r4 "${p}a" 198.18.3.0/30 198.18.1.2; r4 "${p}a" 198.18.4.0/30 198.18.2.2
	for k in 0 2; do r4 "${p}b1" "198.18.$k.0/30" 198.18.1.1; ip -n "${p}b1" route add "2001:db8:0:$k::/64" via 2001:db8:0:1::1; done
	r4 "${p}b1" 198.18.5.0/30 198.18.3.2; ip -n "${p}b1" route add 2001:db8:0:5::/64 via 2001:db8:0:3::2
	for k in 0 1; do r4 "${p}b2" "198.18.$k.0/30" 198.18.2.1; ip -n "${p}b2" route add "2001:db8:0:$k::/64" via 2001:db8:0:2::1; done
	r4 "${p}b2" 198.18.5.0/30 198.18.4.2; ip -n "${p}b2" route add 2001:db8:0:5::/64 via 2001:db8:0:4::2
	for k in 0 1; do r4 "${p}c" "198.18.$k.0/30" 198.18.3.1; ip -n "${p}c" route add "2001:db8:0:$k::/64" via 2001:db8:0:3::1; done
	r4 "${p}c" 198.18.2.0/30 198.18.4.1; ip -n "${p}c" route add 2001:db8:0:2::/64 via 2001:db8:0:4::1
	for x in a b1 b2 c; do
		ip netns exec "${p}$x" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	done
	ip netns exec "${p}a" sysctl -qw net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
	ratelimits off
	ip netns exec "${p}h" ping -c 2 -i 0.2 -W 2 198.18.5.2 >/dev/null || echo "warning: diamond not up" >&2
}

# branches LABEL CMD...: wall time and how many of the two second hops a tool names.
branches() {
	local label=$1
	shift
	if ! command -v "$1" >/dev/null && [ ! -x "$1" ]; then
		printf '  %-34s skipped: %s not installed\n' "$label" "$1"
		return
	fi
	local t0 t1
	t0=$(date +%s.%N)
	timeout 120 ip netns exec "${p}h" "$@" >"$tmp/out" 2>&1 || true
	t1=$(date +%s.%N)
	local n=0 a
	for a in 198.18.1.2 198.18.2.2; do grep -qw "$a" "$tmp/out" && n=$((n + 1)); done
	printf '  %-34s wall %7.3f s  branches found %d/2\n' "$label" "$(echo "$t1 - $t0" | bc -l)" "$n"
}

echo "gtrace vs traceroute, tracepath, mtr, scamper ($(nproc) cores, $(uname -r))"
CASES=${CASES:-diamond chains}
if [[ " $CASES " == *" diamond "* ]]; then
diamond
echo "== ECMP diamond: A balances UDP/TCP flows over B1 and B2, IPv4, destination 198.18.5.2"
for i in 1 2 3; do
	branches "gtrace -U --multipath (run $i)" "$tmp/gtrace" -n -U --multipath 198.18.5.2
done
branches "scamper tracelb" scamper -O text -c "tracelb -P udp-dport" -i 198.18.5.2
branches "gtrace -U (Paris, -q 10)" "$tmp/gtrace" -n -U -q 10 198.18.5.2
branches "gtrace -U --classic -q 10" "$tmp/gtrace" -n -U --classic -q 10 198.18.5.2
branches "traceroute -U -q 10" traceroute -U -n -q 10 198.18.5.2
branches "traceroute (default UDP) -q 10" traceroute -n -q 10 198.18.5.2
fi
[[ " $CASES " == *" chains "* ]] || exit 0
for n in 10 31; do
	chain "$n"
	run "unlimited" "$n" 4 0 no 3
	run "unlimited" "$n" 6 0 no 3
	silence 5
	run "silent router 5" "$n" 4 5 no 3
	chain "$n"
	ratelimits on
	run "kernel-default rate limits" "$n" 4 0 yes 10
done
