// Command gtrace is traceroute(8) with ICMP echo probes on gping's engine: Debian traceroute's
// flags, output and conventions, with all TTLs probed in parallel, retries against ICMP rate
// limits, and raw or unprivileged ICMP sockets chosen automatically.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
