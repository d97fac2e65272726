//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a locked OS thread switched into the namespace (setns(2)
// with CLONE_NEWNET), then switches the thread back and unlocks it. Sockets
// created in fn belong to the namespace for their whole life, so they may be
// used after Do returns; goroutines started by fn run in the host namespace.
//
// fn runs on a goroutine of its own: should switching back fail, that
// goroutine exits with its thread still locked, and the runtime then
// destroys the thread instead of reusing it in the wrong namespace. A panic
// in fn is re-raised in the caller; runtime.Goexit in fn (t.FailNow) ends the
// caller's goroutine too. Do returns fn's error unchanged, an error from entering
// the namespace, or fn's error joined with one from leaving it.
func (n *NS) Do(fn func() error) error {
	target, err := os.Open(n.Path())
	if err != nil {
		return fmt.Errorf("netlab: enter %s: %w", n.name, err)
	}
	defer target.Close()

	type result struct {
		err      error
		panicked bool
		panicVal any
		goexit   bool
	}
	done := make(chan result, 1)
	go func() {
		res := result{goexit: true}
		defer func() { done <- res }()
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res = result{err: fmt.Errorf("netlab: enter %s: %w", n.name, err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res = result{err: fmt.Errorf("netlab: enter %s: %w", n.name, os.NewSyscallError("setns", err))}
			return
		}
		defer func() {
			if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
				res.err = errors.Join(res.err, fmt.Errorf("netlab: leave %s: %w", n.name, os.NewSyscallError("setns", err)))
				return // stay locked: the thread dies with this goroutine
			}
			runtime.UnlockOSThread()
		}()
		func() {
			defer func() {
				if p := recover(); p != nil {
					res.panicked, res.panicVal = true, p
				}
			}()
			res.err = fn()
		}()
		res.goexit = false
	}()
	res := <-done
	switch {
	case res.panicked:
		panic(res.panicVal)
	case res.goexit:
		runtime.Goexit()
	}
	return res.err
}
