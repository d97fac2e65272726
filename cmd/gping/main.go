// Command gping is ping(8) on gping's engine: iputils' flags, output and exit codes, with raw or
// unprivileged ICMP sockets chosen automatically. Given more than one destination (or a CIDR
// prefix, an address range, "-" for stdin, or fping's -f FILE / -g), it behaves as fping(8)
// instead, probing every target over one socket per family.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	// SIGQUIT is taken over so that it prints the status line instead of a goroutine dump.
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	status := make(chan struct{}, 1)
	go func() {
		interrupted := false
		for s := range sigs {
			if s == syscall.SIGQUIT {
				select {
				case status <- struct{}{}:
				default:
				}
				continue
			}
			if interrupted {
				// A second interrupt means the user does not want to wait for the summary.
				os.Exit(130)
			}
			interrupted = true
			cancel()
		}
	}()
	// The kernel does most of the work of a probe (on loopback or a veth, the answer is made and
	// queued to our socket inside our own send call), so the program's part is a serial job:
	// send a batch, read the batch of answers. On one P the hand-offs between the sender and the
	// reader are goroutine switches; with more, an idle P's thread sleeps in epoll and is woken
	// by nearly every packet the socket sees. Measured: a flood (-f, 200,000 probes to
	// loopback) takes 1.8 s on one P and 2.1 s on two; 10,000 targets x 3 at full speed take
	// 0.40 s of CPU on one P and 0.58 s on two. Only fping mode's several senders (--senders,
	// or a --rate beyond one core) take more.
	runtime.GOMAXPROCS(1)
	if fpingMode(os.Args[1:]) {
		// More than one destination: fping's flags, output and exit codes.
		os.Exit(runFping(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, status))
}
