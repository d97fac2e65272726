//go:build linux

package rawsock

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
)

// ICMP error types a ping or traceroute needs besides the echo reply (RFC 792, RFC 4443).
const (
	icmp4DestUnreachable  = 3
	icmp4TimeExceeded     = 11
	icmp4ParameterProblem = 12

	icmp6DestUnreachable  = 1
	icmp6PacketTooBig     = 2
	icmp6TimeExceeded     = 3
	icmp6ParameterProblem = 4
)

// passTypes lists the ICMP types a raw socket of family f lets through to user space. Every
// raw ICMP socket receives every ICMP packet of the host, our own outgoing echo requests
// included, so filtering in the kernel saves a wakeup and a copy per foreign packet.
func passTypes(f icmp.Family) []uint8 {
	if f == icmp.IPv6 {
		return []uint8{f.EchoReplyType(), icmp6DestUnreachable, icmp6PacketTooBig, icmp6TimeExceeded, icmp6ParameterProblem}
	}
	return []uint8{f.EchoReplyType(), icmp4DestUnreachable, icmp4TimeExceeded, icmp4ParameterProblem}
}

// BUG(rawsock): ICMP_FILTER only covers IPv4 types 0..31, so raw IPv4 sockets still receive
// the rare higher types (such as RFC 8335 extended echo, 42 and 43); callers drop them when
// parsing.

// icmp4FilterMask is the ICMP_FILTER value (raw(7)): a set bit BLOCKS that type. The kernel
// only filters types 0..31; higher ones always pass.
func icmp4FilterMask() uint32 {
	mask := ^uint32(0)
	for _, t := range passTypes(icmp.IPv4) {
		mask &^= 1 << t
	}
	return mask
}

// icmp6Filter is the ICMP6_FILTER value (RFC 3542 section 3.2): a set bit blocks that type.
func icmp6Filter() unix.ICMPv6Filter {
	f := icmp6BlockAll()
	for _, t := range passTypes(icmp.IPv6) {
		f.Data[t>>5] &^= 1 << (t & 31)
	}
	return f
}

// icmp6BlockAll is an ICMP6_FILTER value that blocks every type.
func icmp6BlockAll() unix.ICMPv6Filter {
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = ^uint32(0)
	}
	return f
}

// setFilter installs the kernel ICMP type filter on a raw socket.
func setFilter(fd int, f icmp.Family) error {
	if f == icmp.IPv6 {
		flt := icmp6Filter()
		return os.NewSyscallError("setsockopt(ICMP6_FILTER)",
			unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &flt))
	}
	return os.NewSyscallError("setsockopt(ICMP_FILTER)",
		unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, int(int32(icmp4FilterMask()))))
}

// setDropAll makes a raw socket take in nothing: the ICMP type filter blocks every type it
// covers, which spares the kernel the copy of each packet for this socket, and a one-instruction
// socket filter drops what it does not cover (IPv4 types above 31).
func setDropAll(fd int, f icmp.Family) error {
	if f == icmp.IPv6 {
		flt := icmp6BlockAll()
		if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &flt); err != nil {
			return os.NewSyscallError("setsockopt(ICMP6_FILTER)", err)
		}
	} else if err := unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, -1); err != nil {
		return os.NewSyscallError("setsockopt(ICMP_FILTER)", err)
	}
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]}
	return os.NewSyscallError("setsockopt(SO_ATTACH_FILTER)", unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog))
}
