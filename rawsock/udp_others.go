//go:build !linux

package rawsock

import (
	"net/netip"

	"github.com/gping/gping/icmp"
)

type udpSys struct{}

func listenUDP(icmp.Family, uint16, *Config) (*UDPConn, error) { return nil, unsupported("listen udp") }

func (c *UDPConn) writeTo([]byte, netip.AddrPort, *WriteOptions) error {
	return unsupported("write")
}

func (c *UDPConn) readPacket([]byte, *Packet) error { return unsupported("read") }

func (c *UDPConn) close() error { return unsupported("close") }
