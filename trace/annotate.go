package trace

import (
	"strconv"
	"syscall"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
)

// unreach4 maps IPv4 Destination Unreachable codes (RFC 792, RFC 1122, RFC 1812) to
// traceroute's marks. Port unreachable means the destination was reached and has no mark.
var unreach4 = map[uint8]string{
	0: "!N", 6: "!N", 8: "!N", 11: "!N", // net, net unknown, source isolated, net for TOS
	1: "!H", 7: "!H", 12: "!H", // host, host unknown, host for TOS
	9: "!X", 10: "!X", 13: "!X", // net / host / communication administratively prohibited
	2:  "!P", // protocol
	3:  "",   // port
	5:  "!S", // source route failed
	14: "!V", // host precedence violation
	15: "!C", // precedence cutoff
}

// unreach6 maps ICMPv6 Destination Unreachable codes (RFC 4443 section 3.1) likewise.
var unreach6 = map[uint8]string{
	0: "!N",          // no route
	1: "!X",          // administratively prohibited
	2: "!H", 3: "!H", // beyond scope, address unreachable
	4: "", // port
}

// annotate returns traceroute's mark for an answer and whether the answer ends the trace.
// Only Time Exceeded in transit lets the trace go on: every other ICMP error means the probe
// will not get further, so traceroute stops after that hop, and so do we.
func annotate(r *probe.Result) (mark string, final bool) {
	switch r.Outcome {
	case probe.Reply:
		return "", true
	case probe.ICMPError:
	default:
		return "", false
	}
	if r.Kind == icmp.KindOther && r.Errno != 0 {
		// An error the local kernel raised itself (from the socket error queue).
		if r.Errno == syscall.EMSGSIZE && r.MTU > 0 {
			return "!F-" + strconv.Itoa(r.MTU), true
		}
		return "!<" + strconv.Itoa(int(r.Errno)) + ">", true
	}
	v6 := icmp.FamilyOf(r.Dst) == icmp.IPv6
	switch r.Kind {
	case icmp.KindTimeExceeded:
		if r.Code == 0 {
			return "", false
		}
	case icmp.KindPacketTooBig:
		return "!F-" + strconv.Itoa(r.MTU), true
	case icmp.KindDestinationUnreachable:
		if !v6 && r.Code == 4 {
			return "!F-" + strconv.Itoa(r.MTU), true
		}
		table := unreach4
		if v6 {
			table = unreach6
		}
		if m, ok := table[r.Code]; ok {
			return m, true
		}
		return "!<" + strconv.Itoa(int(r.Code)) + ">", true
	}
	return "!<" + strconv.Itoa(int(r.Type)) + "-" + strconv.Itoa(int(r.Code)) + ">", true
}
