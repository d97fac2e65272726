// Package rawsock opens ICMP sockets that bypass the transport layer, for IPv4 (ICMP, RFC 792)
// and IPv6 (ICMPv6, RFC 4443), and moves single ICMP messages through them with their
// per-packet metadata: kernel receive timestamp, TTL / hop limit (RFC 791, RFC 8200), local
// destination address and interface (RFC 3542 IPV6_PKTINFO, Linux IP_PKTINFO) and queued ICMP
// errors. It is the only package of gping that makes system calls; Linux is implemented,
// other systems return errors wrapping errors.ErrUnsupported.
//
// # Two kinds of socket, and the privilege model
//
// A raw socket (Privileged, SOCK_RAW) needs CAP_NET_RAW (root, or `setcap cap_net_raw+p` on
// the binary). It receives a copy of every ICMP packet that reaches the host, so this package
// installs the kernel ICMP type filter (ICMP_FILTER, raw(7); ICMP6_FILTER, RFC 3542 section
// 3.2) to pass only echo replies and the errors a traceroute needs: our own outgoing echo
// requests and foreign traffic never reach user space. The caller chooses the echo
// identifier and must match replies on it.
//
// A datagram ("ping") socket (Unprivileged, SOCK_DGRAM with IPPROTO_ICMP / IPPROTO_ICMPV6)
// needs no capability, only that one of the caller's groups lies in the sysctl
// net.ipv4.ping_group_range (which governs IPv6 ping sockets too). The kernel assigns the echo
// identifier (Conn.ID), rewrites it into every request, and hands the socket only the replies
// and errors that belong to it. ICMP errors arrive on the socket error queue (IP_RECVERR,
// ip(7)); ReadPacket returns them as packets with Packet.Err set.
//
// Auto tries the datagram socket first and falls back to a raw socket, as iputils ping does:
// it needs the least privilege, and because the kernel demultiplexes replies by identifier we
// never parse other processes' traffic nor steal their replies. When neither can be opened
// Listen says so with both remedies in the message.
//
// Every socket is non-blocking and close-on-exec and is owned by an *os.File, so reads and
// writes wait in the Go runtime poller rather than in a thread; Close wakes a blocked
// ReadPacket. Sockets belong to the network namespace of the thread that calls Listen.
//
// WriteTo and ReadPacket do not allocate: control messages and socket addresses are encoded
// and decoded in buffers owned by the Conn.
//
// # UDP and TCP probes
//
// Traceroute's other methods need sockets of other protocols. UDPConn is a UDP socket (RFC 768)
// with a TTL per datagram whose ICMP errors, when it is opened Unprivileged, come back on its
// error queue. TCPRawConn (CAP_NET_RAW) sends SYNs the caller builds (RFC 9293; for IPv6 the
// kernel fills in the checksum, IPV6_CHECKSUM of RFC 3542) and sees every TCP segment that
// arrives; TCPProbe is one unprivileged connect() with its own TTL and error queue.
// RouteSource and RouteMTU ask the kernel about the route to a destination without sending.
// NetNS lets a caller that creates sockets after setup (one per connect) create them in the
// network namespace it was set up in.
package rawsock
