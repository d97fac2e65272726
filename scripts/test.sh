#!/usr/bin/env bash
# The whole test suite: lint, unit tests, namespace integration suites (as root), and a bounded
# fuzz run of every parser. On a fresh Debian machine run it as root: it installs the packages the
# lab needs. Set GPING_REQUIRE_LAB=1 (CI does) to turn a skipped integration suite into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

need=()
for tool in ip:iproute2 nft:nftables ping:iputils-ping setpriv:util-linux setcap:libcap2-bin fping:fping traceroute:traceroute; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing: ${need[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	else
		echo "missing ${need[*]}: the namespace suites will skip (run as root to install them)" >&2
	fi
fi

STATICCHECK_VERSION=2026.2.2
if ! command -v staticcheck >/dev/null || ! staticcheck -version 2>/dev/null | grep -q "$STATICCHECK_VERSION"; then
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed: $bad"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
staticcheck ./...
echo "== non-Linux build"
GOOS=darwin go build ./... && GOOS=freebsd go build ./...

echo "== go test -race"
testlog=$(mktemp)
set +e
go test -race -count=1 -timeout 20m ./... 2>&1 | tee "$testlog"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c '^ok' "$testlog" || true)
failed=$(grep -cE '^(FAIL|--- FAIL)' "$testlog" || true)
rm -f "$testlog"
if [ "$status" -ne 0 ]; then
	echo "packages: $passed passed, $failed failed"
	exit "$status"
fi

echo "== soak: 10^6 probes, memory and goroutines flat (without -race, which would swamp it)"
go test -count=1 -run '^TestSoak$' -v ./probe/ | grep -E '^(=== RUN|--- |\s+soak_test|ok|FAIL)'

# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when a -fuzztime duration ends mid-execution (go.dev/issue/75804, fixed in
# 1.27). 400,000 executions take 10-25 s per target here.
echo "== fuzz (bounded): every Fuzz target of every package, FUZZTIME each"
FUZZTIME=${FUZZTIME:-400000x}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "-- $pkg $target"
		log=$(mktemp)
		if ! go test -run='^$' -fuzz="^$target\$" -fuzztime="$FUZZTIME" "$pkg" >"$log" 2>&1; then
			cat "$log"
			exit 1
		fi
		grep 'execs:' "$log" | tail -n 1
		rm -f "$log"
	done
done
echo "all checks passed"
echo "packages: $passed passed, 0 failed"
