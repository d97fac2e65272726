package rawsock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// capNetRawBit is CAP_NET_RAW's bit in the first 32-bit word of the capability sets.
const capNetRawBit = 1 << unix.CAP_NET_RAW

func capGet() (unix.CapUserHeader, [2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return hdr, data, err
}

// RawAllowed reports whether this process may open raw ICMP sockets: it is root or holds
// CAP_NET_RAW, effective or merely permitted (Listen raises a permitted one). Front ends use it
// for iputils' rule that only privileged users may flood or use intervals under 2 ms.
func RawAllowed() bool {
	if os.Geteuid() == 0 {
		return true
	}
	_, data, err := capGet()
	return err == nil && (data[0].Effective|data[0].Permitted)&capNetRawBit != 0
}

// raiseNetRaw moves CAP_NET_RAW from the permitted to the effective set when it is only
// permitted. A binary given `setcap cap_net_raw+p` (no effective bit) therefore works where the
// capability is allowed, and can still be executed where it is not: with `+ep`, exec fails in a
// container started without NET_RAW.
func raiseNetRaw() {
	hdr, data, err := capGet()
	if err != nil || data[0].Permitted&capNetRawBit == 0 || data[0].Effective&capNetRawBit != 0 {
		return
	}
	data[0].Effective |= capNetRawBit
	_ = unix.Capset(&hdr, &data[0]) // best effort: socket() reports the outcome
}

// DropPrivileges gives up every privilege the process holds, for good: a setuid binary returns
// to the real user and group, and the capability sets (effective, permitted, inheritable and
// ambient) are emptied on every thread, with no_new_privs set so that nothing executed later can
// regain any. Open sockets stay usable. Programs call it once their sockets are open; the
// library never calls it by itself.
//
// Capabilities belong to each thread, and the Go runtime runs several, so they are dropped with
// syscall.AllThreadsSyscall, which a binary linked with cgo cannot use: there the error wraps
// errors.ErrUnsupported unless the process held no capability anyway. Build with
// CGO_ENABLED=0, as the Dockerfile does.
func DropPrivileges() error {
	if gid, egid := os.Getgid(), os.Getegid(); gid != egid {
		if err := syscall.Setresgid(gid, gid, gid); err != nil {
			return os.NewSyscallError("setresgid", err)
		}
	}
	if uid, euid := os.Getuid(), os.Geteuid(); uid != euid {
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			return os.NewSyscallError("setresuid", err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&none[0])), 0)
	if errno == syscall.ENOTSUP {
		if _, data, err := capGet(); err == nil && data[0] == none[0] && data[1] == none[1] {
			return nil // nothing to drop
		}
		return fmt.Errorf("rawsock: dropping capabilities on every thread: %w (binary built with cgo; build with CGO_ENABLED=0)", errors.ErrUnsupported)
	}
	if errno != 0 {
		return os.NewSyscallError("capset", errno)
	}
	// No PR_CAP_AMBIENT_CLEAR_ALL: the kernel drops from the ambient set every capability
	// dropped from the permitted or inheritable set (capabilities(7)), so it is empty now, and
	// each AllThreadsSyscall stops the world (about a quarter of a millisecond of every
	// gtrace run).
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
	}
	return nil
}
