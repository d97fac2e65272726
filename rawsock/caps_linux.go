package rawsock

import (
	"os"

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
