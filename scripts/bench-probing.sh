#!/usr/bin/env bash
# The library against pro-bing: 1,000 hosts (HOSTS) x 3 through gping's engine (one engine, a
# Ping per host) and through pro-bing v0.9.1 (a Pinger per host, raw sockets, as its users
# write it), in one process, on the lab of scripts/fanlab.sh. Needs root, iproute2, Go and the
# Go module proxy (pro-bing is fetched into bench/vsprobing's own module, not the project's).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
HOSTS=${HOSTS:-1000}
# shellcheck source=scripts/fanlab.sh
. scripts/fanlab.sh
(cd bench/vsprobing && CGO_ENABLED=0 go build -o "$tmp/vsprobing" .)
fan_hosts "$HOSTS" "$tmp/hosts"
echo "gping engine vs pro-bing, $HOSTS hosts x 3 (100 ms apart), $(nproc) cores"
timeout 300 ip netns exec "${ns}h" "$tmp/vsprobing" -f "$tmp/hosts" -c 3 -i 100ms -t 2s
