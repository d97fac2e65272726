//go:build linux

package rawsock

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

type netnsSys struct {
	f        *os.File
	dev, ino uint64
}

const threadNetNS = "/proc/thread-self/ns/net"

func nsID(f *os.File) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, 0, os.NewSyscallError("fstat", err)
	}
	return st.Dev, st.Ino, nil
}

func currentNetNS() (*NetNS, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Open(threadNetNS)
	if err != nil {
		return nil, fmt.Errorf("rawsock: network namespace: %w", err)
	}
	n := &NetNS{}
	n.sys.f = f
	if n.sys.dev, n.sys.ino, err = nsID(f); err != nil {
		f.Close()
		return nil, err
	}
	return n, nil
}

func (n *NetNS) close() error { return n.sys.f.Close() }

// here reports whether the calling (locked) thread is in n.
func (n *NetNS) here() (bool, *os.File, error) {
	f, err := os.Open(threadNetNS)
	if err != nil {
		return false, nil, fmt.Errorf("rawsock: network namespace: %w", err)
	}
	dev, ino, err := nsID(f)
	if err != nil {
		f.Close()
		return false, nil, err
	}
	return dev == n.sys.dev && ino == n.sys.ino, f, nil
}

func (n *NetNS) do(fn func() error) error {
	runtime.LockOSThread()
	same, cur, err := n.here()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	cur.Close()
	if same {
		defer runtime.UnlockOSThread()
		return fn()
	}
	runtime.UnlockOSThread()
	// A thread of its own, as it may not be able to switch back: then it stays locked, and
	// the runtime ends it with its goroutine instead of reusing it in the wrong namespace.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		same, orig, err := n.here()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if !same {
			if err := unix.Setns(int(n.sys.f.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				errc <- fmt.Errorf("rawsock: enter network namespace: %w", os.NewSyscallError("setns", err))
				return
			}
		}
		ferr := fn()
		if !same {
			if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
				errc <- errors.Join(ferr, fmt.Errorf("rawsock: leave network namespace: %w", os.NewSyscallError("setns", err)))
				return
			}
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
