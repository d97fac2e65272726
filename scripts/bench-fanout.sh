#!/usr/bin/env bash
# Many-target benchmark: gping against fping on the same lab, in one invocation.
#
# Builds its own two namespaces (host and target, one veth on 198.18.0.0/30), makes the rest of
# 198.18.0.0/15 local to the target so every address in it answers (131,000 targets), runs each tool on the same target lists, and
# prints wall time, CPU seconds, peak RSS and loss for each, with gping's ratio to fping. Needs
# root, iproute2, fping and GNU time; sends only inside its namespaces; deletes them on exit.
#
#   sudo bash scripts/bench-fanout.sh            # all cases
#   sudo HOSTS=1000 bash scripts/bench-fanout.sh # smaller
#   sudo CASES=flood bash scripts/bench-fanout.sh # one section: fanout, rate, flood or 100k
#
# Beside wall, CPU, RSS and loss, each many-target run prints the mean of the targets' average
# RTTs: the lab's veth answers in microseconds, so it shows what a tool's batching adds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
HOSTS=${HOSTS:-10000}

for tool in ip fping /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install iproute2 fping time)" >&2; exit 2; }
done

# shellcheck source=scripts/fanlab.sh
. scripts/fanlab.sh
CGO_ENABLED=0 go build -o "$tmp/gping" ./cmd/gping
fan_hosts "$HOSTS" "$tmp/hosts"

# measure NAME CMD...: runs CMD in the host namespace; prints wall, cpu, rss, loss.
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/time" timeout 120 ip netns exec "${ns}h" "$@" >"$tmp/out" 2>"$tmp/err" || true
	read -r wall user sys rss < <(tail -n 1 "$tmp/time")
	if grep -q 'not enough sequence numbers\|Command exited with non-zero status 124' "$tmp/err" "$tmp/time" 2>/dev/null; then
		printf '%-40s did not complete: %s\n' "$name" "$(head -c 200 "$tmp/err" | tr '\n' ' ')"
		echo "NA NA NA NA" >"$tmp/last"
		return
	fi
	local cpu
	cpu=$(echo "$user + $sys" | bc -l)
	# Loss from the per-target summaries both tools print (xmt/rcv/%loss).
	local lost
	lost=$( (grep -h 'xmt/rcv' "$tmp/out" "$tmp/err" || true) | awk -F'[=/ ,]+' '{for(i=1;i<=NF;i++) if($i=="%loss"){x=$(i+1); r=$(i+2); s+=x-r}} END{print s+0}')
	# Mean over targets of the per-target average RTT: how much of a batch's send time a tool
	# counts into its RTTs.
	local rtt
	rtt=$( (grep -h 'min/avg/max' "$tmp/out" "$tmp/err" || true) | awk -F'min/avg/max = ' '{split($2, a, "/"); s += a[2]; n++} END {if (n) printf "%.3f", s / n; else print "-"}')
	printf '%-40s wall %7.2f s  cpu %7.2f s  rss %7.1f MB  lost %s  mean rtt %s ms\n' "$name" "$wall" "$cpu" "$(echo "$rss/1024" | bc -l)" "$lost" "$rtt"
	echo "$wall $cpu $rss $lost" >"$tmp/last"
}

ratio() { # ratio A B -> A/B, or n/a when either did not complete
	if [ "$1" = NA ] || [ "$2" = NA ]; then echo n/a; return; fi
	echo "scale=2; $1 / $2" | bc -l
}

compare() { # compare LABEL FPING-ARGS -- GPING-ARGS
	local label=$1
	shift
	local fargs=() gargs=()
	while [ "$1" != "--" ]; do fargs+=("$1"); shift; done
	shift
	gargs=("$@")
	echo "== $label"
	measure "fping ${fargs[*]}" fping "${fargs[@]}" -f "$tmp/hosts"
	read -r fw fc fr fl <"$tmp/last"
	measure "gping ${gargs[*]}" "$tmp/gping" "${gargs[@]}" -f "$tmp/hosts"
	read -r gw gc gr gl <"$tmp/last"
	echo "   gping/fping: wall $(ratio "$gw" "$fw")x  cpu $(ratio "$gc" "$fc")x  rss $(ratio "$gr" "$fr")x"
}

CASES=${CASES:-fanout rate flood 100k}
has() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }

# flood LABEL ARGS...: iputils ping and gping flooding the lab namespace's own loopback.
flood() {
	local label=$1
	shift
	echo "== flood $label, 200,000 probes to 127.0.0.1"
	local tool w
	for tool in ping "$tmp/gping"; do
		/usr/bin/time -f "%e %U %S %M" -o "$tmp/time" ip netns exec "${ns}h" "$tool" "$@" -q -c 200000 127.0.0.1 >"$tmp/out" 2>&1 || true
		read -r w user sys rss < <(tail -n 1 "$tmp/time")
		printf '%-40s wall %7.2f s  cpu %7.2f s  rss %7.1f MB  %s/s  %s\n' "$(basename "$tool") $*" "$w" "$(echo "$user + $sys" | bc -l)" \
			"$(echo "$rss/1024" | bc -l)" "$(echo "200000 / $w" | bc)" "$(grep -o '[0-9]*% packet loss' "$tmp/out")"
	done
}

echo "gping vs fping, $HOSTS hosts on 198.18.0.0/15 ($(nproc) cores)"
if has flood; then
	flood "one in flight" -f
	flood "-l 16" -f -l 16
fi
if has rate; then
	# 200,000 probes per second for 10 s: each of 10,000 targets every 50 ms.
	# That rate gets one sender per core by default (--senders); --senders 1 shows one core's.
	echo "== sustained --rate 200000 on $HOSTS hosts (gping alone: fping cannot hold 2,000,000 probes)"
	for senders in default 1; do
		sargs=()
		[ "$senders" = default ] || sargs=(--senders "$senders")
		measure "gping -q -c 200 -p 50 -i 0 --rate 200000 ${sargs[*]}" "$tmp/gping" -q -c 200 -p 50 -i 0 --rate 200000 "${sargs[@]}" -f "$tmp/hosts"
		read -r gw _ _ _ <"$tmp/last"
		[ "$gw" = NA ] || echo "   $(echo "$HOSTS * 200 / $gw" | bc) probes/s; $(grep -o 'kernel dropped [0-9]* packets' "$tmp/err" || echo 'no kernel drops')"
	done
fi
has fanout || has 100k || exit 0
has fanout && compare "$HOSTS hosts x 3, full speed" -q -c 3 -p 10 -i 0 -- -q -c 3 -p 10 -i 0
has fanout && compare "$HOSTS hosts x 3, paced" -q -c 3 -p 1000 -i 0.1 -- -q -c 3 -p 1000 -i 0.1
# -t 500: fping's timeout in count mode is the period, here 1 ms, which a host's scheduling
# alone can exceed (a sender descheduled for 1.5 ms); this row is about the probes in flight.
has fanout && compare "$HOSTS hosts x 10 (over fping's 65,535 in flight)" -q -c 10 -p 1 -t 500 -i 0 -- -q -c 10 -p 1 -t 500 -i 0
if has fanout; then
	# Throughput mode: 500 hosts x 100, each kept at 4 probes in flight (fping has no such mode;
	# its nearest is its shortest period, -p 1).
	fan_hosts 500 "$tmp/hosts"
	compare "500 hosts x 100, throughput mode" -q -c 100 -p 1 -i 0 -- -q -c 100 --in-flight 4 -i 0
fi
has 100k || exit 0
echo "== 100,000 hosts x 1 (gping alone; fping for scale on the same list)"
HOSTS100K=${HOSTS100K:-100000}
fan_hosts "$HOSTS100K" "$tmp/hosts"
compare "$HOSTS100K hosts x 1" -q -c 1 -p 10 -i 0 -- -q -c 1 -p 10 -i 0
