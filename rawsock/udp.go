package rawsock

import (
	"net/netip"

	"github.com/gping/gping/icmp"
)

// UDPConn is a UDP socket for traceroute probes (RFC 768): it sends datagrams with a TTL of the
// caller's choice per packet and, when it was opened Unprivileged, returns the ICMP errors they
// cause from the socket error queue (IP_RECVERR / IPV6_RECVERR). UDP sockets need no privilege.
//
// An Unprivileged UDPConn is how an unprivileged process traces with UDP: the kernel matches
// each ICMP error to the socket by the quoted ports and queues it with the offender's address,
// the error's type and code, and the quoted UDP payload (not the UDP header: see ReadPacket).
// A Privileged UDPConn leaves IP_RECVERR off, so the kernel drops those errors; the caller
// reads them, with their full quotes and RFC 4884 extensions, from a raw ICMP Conn instead.
//
// It is safe for concurrent use: one goroutine may read while any number write.
type UDPConn struct {
	family icmp.Family
	mode   Mode
	local  netip.AddrPort
	sys    udpSys
}

// ListenUDP opens a UDP socket of family f bound to cfg.Source (zero: any) and port (0: an
// ephemeral port). cfg may be nil. cfg.Mode chooses whether ICMP errors are queued (see
// UDPConn); Auto means Unprivileged. Interface, TOS, Mark, PMTU and RecvBuffer apply as for
// Listen.
func ListenUDP(f icmp.Family, port uint16, cfg *Config) (*UDPConn, error) {
	if f != icmp.IPv4 && f != icmp.IPv6 {
		return nil, ErrInvalidFamily
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Source.IsValid() && !familyMatches(f, cfg.Source) {
		return nil, ErrInvalidAddr
	}
	return listenUDP(f, port, cfg)
}

// Family reports the socket's address family.
func (c *UDPConn) Family() icmp.Family { return c.family }

// Mode reports whether ICMP errors are queued (Unprivileged) or left to a raw socket
// (Privileged).
func (c *UDPConn) Mode() Mode { return c.mode }

// LocalAddrPort is the address and port the socket is bound to.
func (c *UDPConn) LocalAddrPort() netip.AddrPort { return c.local }

// WriteTo sends payload in one UDP datagram to dst. opt may be nil; its TTL applies to this
// datagram only. A send that fails on the pending error of an earlier datagram's ICMP error is
// retried (the error itself waits on the error queue), as Conn.WriteTo does.
func (c *UDPConn) WriteTo(payload []byte, dst netip.AddrPort, opt *WriteOptions) error {
	return c.writeTo(payload, dst, opt)
}

// ReadPacket blocks until a datagram or a queued error arrives, or the UDPConn is closed.
// A datagram's Data is its payload and Src its sender. For a queued error, Err is set, Src is
// the offender, Dst the original destination, and Data the part of the original payload that
// the ICMP error quoted: Linux hands over the quote from after the UDP header, so a router that
// quotes only the 8 octets RFC 792 requires leaves Data empty.
func (c *UDPConn) ReadPacket(buf []byte, p *Packet) error { return c.readPacket(buf, p) }

// Close closes the socket and unblocks ReadPacket, which then returns an error wrapping
// net.ErrClosed.
func (c *UDPConn) Close() error { return c.close() }
