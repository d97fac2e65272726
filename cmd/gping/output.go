package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/stats"
)

// formatRTT prints a round-trip time as iputils does in reply lines: three decimals below 1 ms,
// then fewer as the value grows, rounded rather than truncated.
func formatRTT(d time.Duration) string {
	us := d.Microseconds()
	switch {
	case us >= 100000-50:
		return strconv.FormatInt((us+500)/1000, 10)
	case us >= 10000-5:
		return fmt.Sprintf("%d.%01d", (us+50)/1000, ((us+50)%1000)/100)
	case us >= 1000:
		return fmt.Sprintf("%d.%02d", (us+5)/1000, ((us+5)%1000)/10)
	}
	return fmt.Sprintf("%d.%03d", us/1000, us%1000)
}

// formatLoss prints a percentage as C's %g does (six significant digits, no trailing zeros),
// which is what scripts parsing iputils' "packet loss" expect.
func formatLoss(p float64) string {
	return strconv.FormatFloat(p, 'g', 6, 64)
}

// describeError is iputils' text for an ICMP error, IPv4 and IPv6 wording as iputils prints them.
func describeError(r *probe.Result) string {
	if r.Errno != 0 && r.Kind == icmp.KindOther {
		if r.MTU > 0 {
			return fmt.Sprintf("local error: message too long, mtu=%d", r.MTU)
		}
		return "local error: " + r.Errno.Error()
	}
	if icmp.FamilyOf(r.Dst) == icmp.IPv6 {
		return describe6(r)
	}
	return describe4(r)
}

var unreach4 = [...]string{
	"Destination Net Unreachable",
	"Destination Host Unreachable",
	"Destination Protocol Unreachable",
	"Destination Port Unreachable",
	"Frag needed and DF set",
	"Source Route Failed",
	"Destination Net Unknown",
	"Destination Host Unknown",
	"Source Host Isolated",
	"Destination Net Prohibited",
	"Destination Host Prohibited",
	"Destination Net Unreachable for Type of Service",
	"Destination Host Unreachable for Type of Service",
	"Packet filtered",
	"Precedence Violation",
	"Precedence Cutoff",
}

func describe4(r *probe.Result) string {
	switch r.Kind {
	case icmp.KindDestinationUnreachable:
		if r.Code == 4 {
			return fmt.Sprintf("Frag needed and DF set (mtu = %d)", r.MTU)
		}
		if int(r.Code) < len(unreach4) {
			return unreach4[r.Code]
		}
		return fmt.Sprintf("Dest Unreachable, Bad Code: %d", r.Code)
	case icmp.KindTimeExceeded:
		switch r.Code {
		case 0:
			return "Time to live exceeded"
		case 1:
			return "Frag reassembly time exceeded"
		}
		return fmt.Sprintf("Time exceeded, Bad Code: %d", r.Code)
	case icmp.KindParameterProblem:
		return "Parameter problem"
	}
	return fmt.Sprintf("Bad ICMP type: %d", r.Type)
}

var unreach6 = [...]string{
	"No route",
	"Administratively prohibited",
	"Beyond scope of source address",
	"Address unreachable",
	"Port unreachable",
	"Source address failed ingress/egress policy",
	"Reject route to destination",
}

func describe6(r *probe.Result) string {
	switch r.Kind {
	case icmp.KindDestinationUnreachable:
		if int(r.Code) < len(unreach6) {
			return "Destination unreachable: " + unreach6[r.Code]
		}
		return fmt.Sprintf("Destination unreachable: Unknown code %d", r.Code)
	case icmp.KindPacketTooBig:
		return fmt.Sprintf("Packet too big: mtu=%d", r.MTU)
	case icmp.KindTimeExceeded:
		switch r.Code {
		case 0:
			return "Time exceeded: Hop limit"
		case 1:
			return "Time exceeded: Defragmentation failure"
		}
		return fmt.Sprintf("Time exceeded: code %d", r.Code)
	case icmp.KindParameterProblem:
		switch r.Code {
		case 0:
			return "Parameter problem: Wrong header field"
		case 1:
			return "Parameter problem: Unknown header"
		case 2:
			return "Parameter problem: Unknown option"
		}
		return fmt.Sprintf("Parameter problem: code %d", r.Code)
	}
	return fmt.Sprintf("Unknown icmp type: %d", r.Type)
}

// header is iputils' first line. IPv6 has its own shape ("PING host(addr) N data bytes").
func header(host, addr string, fam icmp.Family, size int) string {
	if fam == icmp.IPv6 {
		return fmt.Sprintf("PING %s(%s) %d data bytes", host, addr, size)
	}
	return fmt.Sprintf("PING %s (%s) %d(%d) bytes of data.", host, addr, size, size+8+20)
}

// summaryText is iputils' statistics block, with the percentile line only when asked for.
func summaryText(host string, s stats.Summary, elapsed time.Duration, percentiles bool, flood *floodFigures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n--- %s ping statistics ---\n", host)
	fmt.Fprintf(&b, "%d packets transmitted, %d received", s.Sent, s.Received)
	if s.Duplicates > 0 {
		fmt.Fprintf(&b, ", +%d duplicates", s.Duplicates)
	}
	if s.Corrupted > 0 {
		fmt.Fprintf(&b, ", +%d corrupted", s.Corrupted)
	}
	if s.Errors > 0 {
		fmt.Fprintf(&b, ", +%d errors", s.Errors)
	}
	if s.Sent > 0 {
		fmt.Fprintf(&b, ", %s%% packet loss, time %dms", formatLoss(s.LossPercent()), elapsed.Milliseconds())
	}
	b.WriteString("\n")
	comma := ""
	if s.Received > 0 {
		fmt.Fprintf(&b, "rtt min/avg/max/mdev = %s/%s/%s/%s ms",
			stats.FormatMS(s.Min), stats.FormatMS(s.Avg), stats.FormatMS(s.Max), stats.FormatMS(s.MDev))
		comma = ", "
	}
	if flood != nil && s.Received > 0 && s.Sent > 1 {
		ipg := elapsed / time.Duration(s.Sent-1)
		fmt.Fprintf(&b, "%sipg/ewma %s/%s ms", comma, stats.FormatMS(ipg), stats.FormatMS(flood.ewma()))
	}
	b.WriteString("\n")
	if percentiles && s.Received > 0 {
		fmt.Fprintf(&b, "rtt p50/p90/p99/jitter = %s/%s/%s/%s ms\n",
			stats.FormatMS(s.P50), stats.FormatMS(s.P90), stats.FormatMS(s.P99), stats.FormatMS(s.Jitter))
	}
	return b.String()
}

// floodFigures keeps iputils' smoothed RTT (ewma, weight 1/8) shown in flood mode and in the
// SIGQUIT status line.
type floodFigures struct{ rtt8 time.Duration }

func (f *floodFigures) add(rtt time.Duration) {
	if f.rtt8 == 0 {
		f.rtt8 = 8 * rtt
		return
	}
	f.rtt8 += rtt - f.rtt8/8
}

func (f *floodFigures) ewma() time.Duration { return f.rtt8 / 8 }

// statusLine is iputils' SIGQUIT line: counts, integer loss, and min/avg/ewma/max.
func statusLine(s stats.Summary, ewma time.Duration) string {
	loss := uint64(0)
	if s.Sent > 0 && s.Sent > s.Received {
		loss = (s.Sent - s.Received) * 100 / s.Sent
	}
	line := fmt.Sprintf("\r%d/%d packets, %d%% loss", s.Received, s.Sent, loss)
	if s.Received > 0 {
		line += fmt.Sprintf(", min/avg/ewma/max = %s/%s/%s/%s ms",
			stats.FormatMS(s.Min), stats.FormatMS(s.Avg), stats.FormatMS(ewma), stats.FormatMS(s.Max))
	}
	return line + "\n"
}
