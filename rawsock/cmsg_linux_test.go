//go:build linux

package rawsock

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// appendCmsg appends one control message laid out as the kernel's put_cmsg does.
func appendCmsg[T any](b []byte, level, typ int32, v *T) []byte {
	n := int(unsafe.Sizeof(*v))
	msg := make([]byte, unix.CmsgSpace(n))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&msg[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(n))
	copy(msg[unix.CmsgLen(0):], unsafe.Slice((*byte)(unsafe.Pointer(v)), n))
	return append(b, msg...)
}

func TestPutCmsgIntMatchesLibrary(t *testing.T) {
	for _, tc := range []struct{ level, typ, v int32 }{
		{unix.IPPROTO_IP, unix.IP_TTL, 1},
		{unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, 255},
	} {
		b := make([]byte, 64)
		n := putCmsgInt(b, tc.level, tc.typ, tc.v)
		msgs, err := unix.ParseSocketControlMessage(b[:n])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("ParseSocketControlMessage: %v, %d messages", err, len(msgs))
		}
		m := msgs[0]
		if m.Header.Level != tc.level || m.Header.Type != tc.typ || len(m.Data) != 4 ||
			int32(binary.NativeEndian.Uint32(m.Data)) != tc.v {
			t.Errorf("putCmsgInt(%d, %d, %d) decodes as %+v % x", tc.level, tc.typ, tc.v, m.Header, m.Data)
		}
		var p Packet
		parseCmsgs(b[:n], &p)
		if p.TTL != int(tc.v) {
			t.Errorf("round trip: TTL = %d, want %d", p.TTL, tc.v)
		}
	}
}

func TestParseCmsgs(t *testing.T) {
	ts := unix.NsecToTimespec(time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC).UnixNano())
	ttl := int32(57)
	drops := uint32(3)
	pi4 := unix.Inet4Pktinfo{Ifindex: 4, Spec_dst: [4]byte{198, 18, 0, 9}, Addr: [4]byte{198, 18, 0, 2}}
	pi6 := unix.Inet6Pktinfo{Addr: netip.MustParseAddr("2001:db8::2").As16(), Ifindex: 5}
	type recvErr4 struct {
		ee unix.SockExtendedErr
		sa unix.RawSockaddrInet4
	}
	type recvErr6 struct {
		ee unix.SockExtendedErr
		sa unix.RawSockaddrInet6
	}
	e4 := recvErr4{
		ee: unix.SockExtendedErr{Errno: uint32(syscall.EHOSTUNREACH), Origin: unix.SO_EE_ORIGIN_ICMP, Type: 11, Code: 0},
		sa: unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{198, 18, 0, 1}},
	}
	e6 := recvErr6{
		ee: unix.SockExtendedErr{Errno: uint32(syscall.EMSGSIZE), Origin: unix.SO_EE_ORIGIN_ICMP6, Type: 2, Info: 1280},
		sa: unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("fe80::1").As16(), Scope_id: 7},
	}
	local := recvErr4{ee: unix.SockExtendedErr{Errno: uint32(syscall.EMSGSIZE), Origin: unix.SO_EE_ORIGIN_LOCAL, Info: 1500}}

	var oob4, oob6, oobLocal []byte
	oob4 = appendCmsg(oob4, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, &ts)
	oob4 = appendCmsg(oob4, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, &drops)
	oob4 = appendCmsg(oob4, unix.IPPROTO_IP, unix.IP_TTL, &ttl)
	oob4 = appendCmsg(oob4, unix.IPPROTO_IP, unix.IP_PKTINFO, &pi4)
	oob4 = appendCmsg(oob4, unix.IPPROTO_IP, unix.IP_RECVERR, &e4)
	oob6 = appendCmsg(oob6, unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, &ttl)
	oob6 = appendCmsg(oob6, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, &pi6)
	oob6 = appendCmsg(oob6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, &e6)
	oobLocal = appendCmsg(oobLocal, unix.IPPROTO_IP, unix.IP_RECVERR, &local)

	for _, tc := range []struct {
		name  string
		oob   []byte
		want  Packet
		isErr bool
	}{
		{"ipv4", oob4, Packet{
			Time: time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC), Dropped: 3, TTL: 57,
			Dst: netip.MustParseAddr("198.18.0.2"), IfIndex: 4,
			ext: ExtendedErr{Errno: syscall.EHOSTUNREACH, Origin: OriginICMP, Type: 11, Offender: netip.MustParseAddr("198.18.0.1")},
		}, true},
		{"ipv6", oob6, Packet{
			TTL: 57, Dst: netip.MustParseAddr("2001:db8::2"), IfIndex: 5,
			ext: ExtendedErr{Errno: syscall.EMSGSIZE, Origin: OriginICMP6, Type: 2, Info: 1280, Offender: netip.MustParseAddr("fe80::1%7")},
		}, true},
		{"local error", oobLocal, Packet{TTL: -1, ext: ExtendedErr{Errno: syscall.EMSGSIZE, Origin: OriginLocal, Info: 1500}}, true},
		{"empty", nil, Packet{TTL: -1}, false},
	} {
		p := Packet{TTL: -1}
		isErr := parseCmsgs(tc.oob, &p)
		if isErr != tc.isErr {
			t.Errorf("%s: isErr = %v, want %v", tc.name, isErr, tc.isErr)
		}
		if !p.Time.Equal(tc.want.Time) || p.Dropped != tc.want.Dropped || p.TTL != tc.want.TTL ||
			p.Dst != tc.want.Dst || p.IfIndex != tc.want.IfIndex || p.ext != tc.want.ext {
			t.Errorf("%s: got  %+v\nwant %+v", tc.name, p, tc.want)
		}
	}
}

// TestParseCmsgsTruncated: every prefix of valid control data, and garbage lengths, parse
// without panicking and without reading past the end.
func TestParseCmsgsTruncated(t *testing.T) {
	ttl := int32(9)
	var oob []byte
	oob = appendCmsg(oob, unix.IPPROTO_IP, unix.IP_TTL, &ttl)
	oob = appendCmsg(oob, unix.IPPROTO_IP, unix.IP_TTL, &ttl)
	for i := range oob {
		var p Packet
		parseCmsgs(oob[:i], &p)
		if complete := i >= unix.CmsgLen(4); (p.TTL == 9) != complete {
			t.Errorf("prefix of %d bytes: TTL = %d, want 9 only once the first message is complete", i, p.TTL)
		}
	}
	bad := make([]byte, 32)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&bad[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TTL
	binary.NativeEndian.PutUint32(bad[unix.CmsgLen(0):], 9)
	for _, l := range []int{0, 1, unix.SizeofCmsghdr - 1, 33, 1 << 20} {
		h.SetLen(l)
		var p Packet
		parseCmsgs(bad, &p)
		if p.TTL != 0 {
			t.Errorf("cmsg_len %d in 32 bytes: parsed TTL %d, want the message rejected", l, p.TTL)
		}
	}
}
