//go:build !linux

package rawsock

import (
	"net"
	"net/netip"

	"github.com/gping/gping/icmp"
)

type tcpProbeSys struct{}

func routeSource(icmp.Family, netip.Addr, *Config) (netip.Addr, error) {
	return netip.Addr{}, unsupported("route source")
}

func listenTCPRaw(f icmp.Family, _ *Config) (*TCPRawConn, error) {
	netw := "ip4:tcp"
	if f == icmp.IPv6 {
		netw = "ip6:tcp"
	}
	return nil, &net.OpError{Op: "listen", Net: netw, Err: unsupported("listen")}
}

func reserveTCPPort(netip.Addr) (uint16, func() error, error) {
	return 0, nil, unsupported("reserve port")
}

func dialTCPProbe(icmp.Family, netip.AddrPort, int, *Config) (*TCPProbe, error) {
	return nil, unsupported("dial")
}

func (p *TCPProbe) wait(*Packet) error { return unsupported("wait") }

func (p *TCPProbe) close() error { return unsupported("close") }

func route(icmp.Family, netip.Addr, *Config) (netip.Addr, int, error) {
	return netip.Addr{}, 0, unsupported("route")
}
