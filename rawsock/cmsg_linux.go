//go:build linux

package rawsock

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Control messages are decoded by hand: unix.ParseSocketControlMessage allocates a slice per
// call, and ReadPacket must not allocate.

// cmsgAlign rounds n up to the kernel's CMSG_ALIGN (the size of a long).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// decode copies the start of b into *dst. Copying instead of casting a pointer into b keeps
// the code correct on strict-alignment architectures.
func decode[T any](dst *T, b []byte) bool {
	n := int(unsafe.Sizeof(*dst))
	if len(b) < n {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(dst)), n), b)
	return true
}

// putCmsgInt writes one control message carrying a C int into b and returns its space.
func putCmsgInt(b []byte, level, typ int32, v int32) int {
	var h unix.Cmsghdr
	h.Level = level
	h.Type = typ
	h.SetLen(unix.CmsgLen(4))
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
	binary.NativeEndian.PutUint32(b[cmsgAlign(unix.SizeofCmsghdr):], uint32(v))
	return unix.CmsgSpace(4)
}

// parseCmsgs fills in p from the control messages in oob. It reports whether an extended
// error (IP_RECVERR / IPV6_RECVERR) was present.
func parseCmsgs(oob []byte, p *Packet) (isErr bool) {
	hdr := cmsgAlign(unix.SizeofCmsghdr)
	for len(oob) >= hdr {
		var h unix.Cmsghdr
		decode(&h, oob)
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return isErr
		}
		data := oob[hdr:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS:
			var ts unix.Timespec
			if decode(&ts, data) {
				p.Time = time.Unix(int64(ts.Sec), int64(ts.Nsec))
			}
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL:
			if len(data) >= 4 {
				p.Dropped = binary.NativeEndian.Uint32(data)
			}
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL,
			h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT:
			if len(data) >= 4 {
				p.TTL = int(int32(binary.NativeEndian.Uint32(data)))
			}
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO:
			var pi unix.Inet4Pktinfo
			if decode(&pi, data) {
				p.Dst = netip.AddrFrom4(pi.Addr)
				p.IfIndex = int(pi.Ifindex)
			}
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO:
			var pi unix.Inet6Pktinfo
			if decode(&pi, data) {
				p.Dst = addrFrom16(pi.Addr, pi.Ifindex)
				p.IfIndex = int(pi.Ifindex)
			}
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_RECVERR,
			h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_RECVERR:
			var ee unix.SockExtendedErr
			if decode(&ee, data) {
				p.ext = ExtendedErr{
					Errno:    syscall.Errno(ee.Errno),
					Origin:   ee.Origin,
					Type:     ee.Type,
					Code:     ee.Code,
					Info:     ee.Info,
					Offender: sockaddrAddr(data[unsafe.Sizeof(ee):]),
				}
				isErr = true
			}
		}
		next := cmsgAlign(l)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return isErr
}

// sockaddrAddr decodes the address of a struct sockaddr_in or sockaddr_in6 in b; the zero
// Addr when b holds neither (SO_EE_OFFENDER is AF_UNSPEC for local errors).
func sockaddrAddr(b []byte) netip.Addr {
	if len(b) < 2 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		var sa unix.RawSockaddrInet4
		if decode(&sa, b) {
			return netip.AddrFrom4(sa.Addr)
		}
	case unix.AF_INET6:
		var sa unix.RawSockaddrInet6
		if decode(&sa, b) {
			return addrFrom16(sa.Addr, sa.Scope_id)
		}
	}
	return netip.Addr{}
}

// addrFrom16 builds an IPv6 address, with the interface index as its zone when the address
// needs one. strconv and netip intern small indexes, so this only allocates the first time a
// zone is seen (and for indexes of 100 and more).
func addrFrom16(a [16]byte, scope uint32) netip.Addr {
	addr := netip.AddrFrom16(a)
	if scope != 0 && (addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast()) {
		addr = addr.WithZone(strconv.FormatUint(uint64(scope), 10))
	}
	return addr
}
