package rawsock

import (
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzParseCmsgs feeds arbitrary control data, the kernel's side of the error-queue form, to
// the decoder: it must never panic, and an extended error always comes with its fields.
func FuzzParseCmsgs(f *testing.F) {
	ttl := int32(64)
	type recvErr4 struct {
		ee unix.SockExtendedErr
		sa unix.RawSockaddrInet4
	}
	type recvErr6 struct {
		ee unix.SockExtendedErr
		sa unix.RawSockaddrInet6
	}
	e4 := recvErr4{
		ee: unix.SockExtendedErr{Errno: uint32(syscall.EHOSTUNREACH), Origin: unix.SO_EE_ORIGIN_ICMP, Type: 11, Code: 1},
		sa: unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{198, 18, 0, 1}},
	}
	e6 := recvErr6{
		ee: unix.SockExtendedErr{Errno: uint32(syscall.EMSGSIZE), Origin: unix.SO_EE_ORIGIN_ICMP6, Type: 2, Info: 1280},
		sa: unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("2001:db8::1").As16()},
	}
	pi4 := unix.Inet4Pktinfo{Ifindex: 4, Addr: [4]byte{198, 18, 0, 2}}
	var a, b []byte
	a = appendCmsg(a, unix.IPPROTO_IP, unix.IP_TTL, &ttl)
	a = appendCmsg(a, unix.IPPROTO_IP, unix.IP_PKTINFO, &pi4)
	a = appendCmsg(a, unix.IPPROTO_IP, unix.IP_RECVERR, &e4)
	b = appendCmsg(b, unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, &ttl)
	b = appendCmsg(b, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, &e6)
	f.Add(a)
	f.Add(b)
	f.Add(a[:len(a)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		p := Packet{TTL: -1}
		isErr := parseCmsgs(oob, &p)
		if !isErr && p.ext != (ExtendedErr{}) {
			t.Fatalf("extended error fields set without an error: %+v", p.ext)
		}
		if p.Dst.IsValid() && !p.Dst.Is4() && !p.Dst.Is6() {
			t.Fatalf("bad address %v", p.Dst)
		}
	})
}

// FuzzStripIPv4 feeds arbitrary raw-socket input to the IPv4 header stripper: the ICMP message
// it returns always lies inside the input, after a header of at least 20 bytes.
func FuzzStripIPv4(f *testing.F) {
	hdr := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1}
	f.Add(append(hdr, 0, 0, 0xff, 0xff, 0, 1, 0, 1))
	f.Add(append([]byte{0x4f}, hdr[1:]...))
	f.Add(hdr[:19])
	f.Fuzz(func(t *testing.T, in []byte) {
		var p Packet
		out, err := stripIPv4(in, &p)
		if err != nil {
			return
		}
		ihl := len(in) - len(out)
		if ihl < 20 || ihl%4 != 0 || ihl > 60 || &in[len(in)-1] != lastOr(out, &in[len(in)-1]) {
			t.Fatalf("header of %d bytes from %d-byte input", ihl, len(in))
		}
		if p.TTL != int(in[8]) {
			t.Fatalf("TTL %d, header says %d", p.TTL, in[8])
		}
	})
}

func lastOr(b []byte, def *byte) *byte {
	if len(b) == 0 {
		return def
	}
	return &b[len(b)-1]
}
