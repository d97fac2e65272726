// Package l4 sends UDP (RFC 768) and TCP SYN (RFC 9293) probes with a TTL of the caller's
// choice and matches each to the answer it causes: an ICMP or ICMPv6 error from a router on
// the way (RFC 792, RFC 4443), or the destination's own answer (ICMP port unreachable for UDP,
// SYN-ACK or RST for TCP). It is the transport of gtrace's -U and -T methods; *Prober has the
// Start and Cancel methods of *probe.Engine, with the same Request and Result, so a trace runs
// on either.
//
// # Flows
//
// Routers that balance equal-cost paths hash UDP and TCP on the addresses, the protocol and
// both ports. By default every probe of a Prober keeps all of those fixed (Paris traceroute),
// and probes are told apart by fields outside the hash: UDP by a token and sequence number in
// the payload, TCP by the sequence number. Config.Classic varies a port per probe instead, as
// traceroute does (UDP: destination port Port+n; TCP: a new source port), so that probes may
// take different paths. Request.Flow, if not zero, is added to the UDP destination port, which
// moves a probe to another flow on purpose (multipath discovery).
//
// # Privilege
//
// Unprivileged (no capability needed): UDP probes go through one UDP socket whose ICMP errors
// come back on its error queue (IP_RECVERR), TCP probes are non-blocking connect() calls, one
// socket each, as traceroute's tcpconn method does; a connect from a fixed source port cannot
// have two probes in flight, so unprivileged TCP probes are always classic. Privileged
// (CAP_NET_RAW): errors are read from a raw ICMP socket, which also delivers RFC 4884
// extensions (MPLS labels), and TCP SYNs are built here and sent through a raw TCP socket
// from one reserved port. Auto is Privileged when raw sockets are allowed.
package l4

import (
	"errors"
	"fmt"

	"github.com/gping/gping/rawsock"
)

// Protocol is the transport protocol of the probes.
type Protocol uint8

const (
	UDP Protocol = iota + 1
	TCP
)

func (p Protocol) String() string {
	switch p {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// Default destination ports: traceroute's.
const (
	DefaultUDPPort = 33434
	DefaultTCPPort = 80
)

// ErrConfig is wrapped by the errors of Open for a configuration it cannot use.
var ErrConfig = errors.New("l4: invalid configuration")

// Config configures a Prober. Open only reads it.
type Config struct {
	Protocol Protocol // UDP or TCP; 0 means UDP
	// Port is the destination port: the first of the sequence with Classic UDP; 0 means
	// DefaultUDPPort or DefaultTCPPort.
	Port    uint16
	Classic bool
	// Socket: Mode chooses how errors are received (see the package doc); Source, Interface,
	// TOS, Mark and PMTU apply to the probes.
	Socket rawsock.Config
}
