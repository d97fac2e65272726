package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/cli"
	"github.com/gping/gping/internal/hostname"
	"github.com/gping/gping/probe"
	"github.com/gping/gping/rawsock"
	"github.com/gping/gping/stats"
)

// Exit codes of fping, used with more than one target.
const (
	fpExitOK          = 0
	fpExitUnreachable = 1
	fpExitUnknown     = 2
	fpExitUsage       = 3
	fpExitSystem      = 4
)

// iputilsValueFlags are the iputils short flags that take a value: the pre-scan in fpingMode
// must skip their values to count destinations right.
const iputilsValueFlags = "ciWwstQImMlp"

// fpingMode reports whether the command line asks for fping's behaviour: more than one
// destination, a CIDR, a range or "-" (stdin), fping's -g, or -f naming a file that exists
// (iputils' -f floods and takes no value; "gping -f hosts.txt" with such a file means fping's).
func fpingMode(args []string) bool {
	var dests []string
	flood := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			dests = append(dests, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			if a == "--generate" {
				return true
			}
			if !strings.Contains(a, "=") && (a == "--socket") {
				i++
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				switch {
				case a[j] == 'g':
					return true
				case a[j] == 'f':
					flood = true
				case strings.IndexByte(iputilsValueFlags, a[j]) >= 0:
					// The value is the rest of the word, or the next word. iputils' values
					// are numbers but for -I and -M; a word that is not one belongs to fping's
					// meaning of the letter (-s: statistics), so it stays a destination.
					if j == len(a)-1 && i+1 < len(args) {
						if isNumber(args[i+1]) || a[j] == 'I' || a[j] == 'M' {
							i++
						}
					}
					j = len(a)
				}
			}
		default:
			dests = append(dests, a)
		}
	}
	if len(dests) > 1 {
		return true
	}
	for _, d := range dests {
		if d == "-" || strings.Contains(d, "/") {
			return true
		}
		if _, isSet, _ := expandTarget(d); isSet {
			return true
		}
		if flood {
			if st, err := os.Stat(d); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
	}
	return false
}

// isNumber reports whether w reads as an iputils value: a decimal or fraction, or an integer in
// any base strtol takes (-Q 0x20).
func isNumber(w string) bool {
	if _, err := strconv.ParseFloat(w, 64); err == nil {
		return true
	}
	_, err := strconv.ParseInt(w, 0, 64)
	return err == nil
}

// maxSenders bounds --senders: more senders than cores only adds sockets.
const maxSenders = 64

// maxInFlight bounds --in-flight by what the 16-bit ICMP sequence tells apart per target.
const maxInFlight = 65535

// maxAutoTimeout caps the timeout that count and loop modes take from the period, as fping's
// AUTOTUNE_TIMEOUT_MAX does.
const maxAutoTimeout = 2 * time.Second

// senderRate is about what one sender (one core, one raw socket) sends per second in the lab of
// scripts/bench-fanout.sh, where each probe costs its sender the target's answer too.
const senderRate = 100_000

// sendersFor chooses how many goroutines send: --senders if given, else one per senderRate of
// --rate. Without a rate, sends run at full speed on one core, which costs the least CPU per
// probe.
func sendersFor(o *fpOptions, cpus int) int {
	n := o.senders
	if n == 0 {
		n = int(math.Ceil(o.rate / senderRate))
	}
	return max(1, min(n, cpus))
}

// fpOptions is the command line in fping's terms.
type fpOptions struct {
	count       int
	perProbe    bool // -C: print every RTT at the end
	quiet       bool
	stats       bool
	alive       bool
	unreachable bool
	elapsed     bool
	timestamps  bool
	interval    time.Duration
	period      time.Duration
	timeout     time.Duration
	retries     int
	backoff     float64
	size        int
	rate        float64
	senders     int           // 0: chosen from the rate
	inFlight    int           // throughput mode: probes kept in flight per target; 0: paced by -p
	loop        bool          // -l: probe until interrupted
	split       time.Duration // -Q: interval summaries this often; 0: none
	family      int
	file        string
	socket      rawsock.Mode
	words       []string
	help        string // -h: the usage to print, and nothing else to do
	version     bool   // -v
	reachable   int    // -x: the targets that must answer for exit 0; 0: all
	outage      bool   // -o: outage time in the summaries
	byAddr      bool   // -A: targets shown by address
	ttl         int    // -H; 0: the kernel's
	json        bool   // -J: fping's JSON lines on stdout
	sock        rawsock.Config
}

func parseFping(args []string) (*fpOptions, error) {
	o := &fpOptions{}
	fs := pflag.NewFlagSet("gping", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	count := fs.IntP("count", "c", 0, "probes per target")
	perProbe := fs.IntP("vcount", "C", 0, "probes per target, RTTs listed at the end")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no per-probe output")
	fs.BoolVarP(&o.stats, "stats", "s", false, "print totals at the end")
	fs.BoolVarP(&o.alive, "alive", "a", false, "show targets that are alive")
	fs.BoolVarP(&o.unreachable, "unreach", "u", false, "show targets that are unreachable")
	fs.BoolVarP(&o.elapsed, "elapsed", "e", false, "show elapsed time on return packets")
	fs.BoolVarP(&o.timestamps, "timestamp", "D", false, "print timestamp before each output line")
	interval := fs.Float64P("interval", "i", float64(probe.DefaultSweepInterval/time.Millisecond), "ms between any two sends")
	period := fs.Float64P("period", "p", float64(probe.DefaultSweepPeriod/time.Millisecond), "ms between probes to one target")
	timeout := fs.Float64P("timeout", "t", float64(probe.DefaultSweepTimeout/time.Millisecond), "ms to wait for a reply")
	fs.IntVarP(&o.retries, "retry", "r", probe.DefaultRetries, "retries in default mode")
	fs.Float64VarP(&o.backoff, "backoff", "B", probe.DefaultBackoff, "timeout factor per retry")
	fs.IntVarP(&o.size, "size", "b", probe.DefaultSize, "payload bytes")
	fs.Float64Var(&o.rate, "rate", 0, "cap on packets per second, all targets together")
	fs.IntVar(&o.senders, "senders", 0, "goroutines sending at once, each on its own raw socket")
	fs.IntVar(&o.inFlight, "in-flight", 0, "throughput mode: keep N probes in flight per target (with -c, -C or -l; not -p)")
	fs.StringVarP(&o.file, "file", "f", "", "read targets from a file (- for stdin)")
	fs.BoolP("generate", "g", false, "targets are CIDR prefixes or address ranges")
	fs.BoolP("ipv4", "4", false, "IPv4 only")
	fs.BoolP("ipv6", "6", false, "IPv6 only")
	sock := fs.String("socket", "auto", "socket kind: auto, raw or dgram")
	fs.BoolVarP(&o.loop, "loop", "l", false, "probe until interrupted, then print the summaries")
	squiet := fs.Float64P("squiet", "Q", 0, "like -q, and print each target's summary of the last SECS seconds every SECS")
	help := fs.BoolP("help", "h", false, "print this help and exit")
	fs.BoolVarP(&o.version, "version", "v", false, "print the version and exit")
	fs.IntVarP(&o.reachable, "reachable", "x", 0, "exit 0 when at least N targets answer, and say so")
	fs.BoolVarP(&o.outage, "outage", "o", false, "show the outage time (lost probes x period) in the summaries")
	fs.BoolVarP(&o.byAddr, "addr", "A", false, "show targets by address")
	fs.IntVarP(&o.ttl, "ttl", "H", 0, "IP time to live (hop limit) of the probes")
	tos := fs.StringP("tos", "O", "", "type of service (IPv4) or traffic class (IPv6) byte")
	fs.BoolP("dontfrag", "M", false, "set the Don't Fragment flag")
	src := fs.StringP("src", "S", "", "source address")
	fs.StringVarP(&o.sock.Interface, "iface", "I", "", "bind to this interface")
	fs.BoolVarP(&o.json, "json", "J", false, "JSON lines on stdout, as fping's (with -c, -C or -l)")
	fs.StringP("select-timeout", "T", "", "ignored, as fping ignores it")
	fs.MarkHidden("select-timeout")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if o.version {
		return o, nil
	}
	if *help {
		o.help = "Usage: gping [options] [targets...]\n\n" +
			"Given several targets, CIDR prefixes, address ranges, -g or -f FILE, gping is fping:\n" +
			"times are in milliseconds, exit 0 all alive, 1 some unreachable, 2 a name not found,\n" +
			"3 bad arguments, 4 system error.\n\n" + fs.FlagUsages()
		return o, nil
	}
	var err error
	if o.family, err = cli.Family(fs, "can't specify both -4 and -6"); err != nil {
		return nil, err
	}
	if fs.Changed("vcount") {
		o.count, o.perProbe = *perProbe, true
	} else if fs.Changed("count") {
		o.count = *count
	}
	if (fs.Changed("count") || fs.Changed("vcount")) && o.count < 1 {
		return nil, cli.BadArg("count must be at least 1")
	}
	if o.loop && o.count > 0 {
		return nil, cli.BadArg("specify only one of -c, -C and -l")
	}
	if fs.Changed("squiet") {
		if math.IsNaN(*squiet) || *squiet < 0.001 || *squiet > 86400 {
			return nil, cli.BadArg("invalid -Q value: %v (seconds, 0.001 to 86400)", *squiet)
		}
		o.split, o.quiet = time.Duration(*squiet*float64(time.Second)), true
	}
	ms := func(name string, v float64, lo float64) (time.Duration, error) {
		if math.IsNaN(v) || v < lo || v > 3.6e6 {
			return 0, cli.BadArg("invalid -%s value: %v", name, v)
		}
		return time.Duration(v * float64(time.Millisecond)), nil
	}
	if o.interval, err = ms("i", *interval, 0); err != nil {
		return nil, err
	}
	if o.interval == 0 {
		o.interval = -1 // no gap: probe.SweepConfig's "none"
	}
	if o.period, err = ms("p", *period, 0.001); err != nil {
		return nil, err
	}
	if o.timeout, err = ms("t", *timeout, 0.001); err != nil {
		return nil, err
	}
	if (o.count > 0 || o.loop) && !fs.Changed("timeout") {
		// fping: in count and loop modes the default timeout is the period, up to 2 s.
		o.timeout = min(o.period, maxAutoTimeout)
	}
	if o.retries < 0 || o.retries > 100 {
		return nil, cli.BadArg("invalid -r value: %d", o.retries)
	}
	if o.retries == 0 {
		o.retries = -1 // SweepConfig's "none"
	}
	if math.IsNaN(o.backoff) || o.backoff < 1 || o.backoff > 5 {
		return nil, cli.BadArg("invalid -B value: %v (1 to 5)", o.backoff)
	}
	if o.size < 0 || o.size > probe.MaxPayload6 {
		return nil, cli.BadArg("invalid -b value: %d", o.size)
	}
	if o.size == 0 {
		o.size = probe.EmptyPayload
	}
	if math.IsNaN(o.rate) || o.rate < 0 {
		return nil, cli.BadArg("invalid --rate value: %v", o.rate)
	}
	if o.senders < 0 || o.senders > maxSenders {
		return nil, cli.BadArg("invalid --senders value: %d (0 to %d)", o.senders, maxSenders)
	}
	switch {
	case o.inFlight < 0 || o.inFlight > maxInFlight:
		return nil, cli.BadArg("invalid --in-flight value: %d (1 to %d)", o.inFlight, maxInFlight)
	case o.inFlight > 0 && o.count == 0 && !o.loop:
		return nil, cli.BadArg("--in-flight needs -c, -C or -l")
	case o.inFlight > 0 && fs.Changed("period"):
		return nil, cli.BadArg("--in-flight and -p exclude each other: the window paces each target")
	}
	if o.socket, err = rawsock.ParseMode(*sock); err != nil {
		return nil, cli.BadArg("invalid --socket argument: '%s' (auto, raw or dgram)", *sock)
	}
	if o.json && o.count == 0 && !o.loop {
		return nil, cli.BadArg("option -J, --json requires -c, -C, or -l")
	}
	if fs.Changed("reachable") && (o.reachable < 1) {
		return nil, cli.BadArg("invalid -x value: %d", o.reachable)
	}
	if fs.Changed("ttl") && (o.ttl < 1 || o.ttl > 255) {
		return nil, cli.BadArg("ttl %d out of range", o.ttl)
	}
	if fs.Changed("tos") {
		v, err := strconv.ParseUint(*tos, 0, 8)
		if err != nil {
			return nil, cli.BadArg("invalid -O value: %s (0 to 255)", *tos)
		}
		o.sock.TOS = int(v)
	}
	if fs.Changed("dontfrag") {
		o.sock.PMTU = rawsock.PMTUDo
	}
	if fs.Changed("src") {
		if o.sock.Source, err = netip.ParseAddr(*src); err != nil {
			return nil, cli.BadArg("can't parse source address: %s", *src)
		}
	}
	o.sock.Mode = o.socket
	o.words = fs.Args()
	if fs.Changed("generate") && len(o.words) == 2 {
		// fping -g START END
		a, err1 := netip.ParseAddr(o.words[0])
		b, err2 := netip.ParseAddr(o.words[1])
		if err1 == nil && err2 == nil {
			o.words = []string{a.String() + "-" + b.String()}
		}
	}
	if len(o.words) == 0 && o.file == "" {
		return nil, cli.BadArg("usage error: no targets")
	}
	return o, nil
}

// fpRTT prints an RTT as fping: three decimals below 1 ms, then two, one, none.
func fpRTT(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64)
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

// fpingGCPercent is the collector's GOGC in fping mode, unless the environment sets one.
const fpingGCPercent = 50

// runFping is gping with fping's flags, output and exit codes.
func runFping(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	con := &console{out: newWriter(stdout), errOut: stderr, batch: true}
	defer func() {
		con.mu.Lock()
		con.out.Flush()
		con.mu.Unlock()
	}()
	o, err := parseFping(args)
	if err != nil {
		con.errorf("%v", err)
		return fpExitUsage
	}
	if o.help != "" {
		con.line(o.help)
		return fpExitOK
	}
	if o.version {
		con.line("gping: Version " + version + "\n")
		return fpExitOK
	}
	// The heap here is mostly per-target state that lives for the whole run, and by default the
	// collector lets the heap grow to twice that before it collects. Half that headroom cuts
	// peak RSS by a tenth (16.9 to 15.4 MB at 10,000 targets x 3, 80.6 to 71.9 MB at 100,000)
	// for no CPU the benchmarks can see: marking is small beside the kernel's work per probe.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(fpingGCPercent)
	}
	words := o.words
	if o.file != "" {
		more, err := readTargets(o.file, stdin)
		if err != nil {
			con.errorf("%v", err)
			return fpExitUsage
		}
		words = append(words, more...)
	}
	for i, w := range words {
		if w == "-" {
			more, err := readTargets("-", stdin)
			if err != nil {
				con.errorf("%v", err)
				return fpExitUsage
			}
			words = append(append(words[:i:i], more...), words[i+1:]...)
			break
		}
	}
	hosts, err := resolveHosts(ctx, words, o.family)
	if err != nil {
		con.errorf("%v", err)
		return fpExitUsage
	}
	dsts := make([]netip.Addr, 0, len(hosts))
	idx := make([]int32, 0, len(hosts)) // dsts[k] is hosts[idx[k]]
	width := 0
	unknown := false
	for i, h := range hosts {
		if h.err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", hostname.Escape(h.name), strings.TrimPrefix(h.err.Error(), h.name+": "))
			unknown = true
			continue
		}
		if o.byAddr {
			hosts[i].name = h.addr.String()
		}
		dsts = append(dsts, h.addr)
		idx = append(idx, int32(i))
		width = max(width, len(hosts[i].name))
	}
	if len(dsts) == 0 {
		return fpExitUnknown
	}

	senders := sendersFor(o, runtime.NumCPU())
	sock := o.sock
	sock.RecvBuffer = 4 << 20
	e := probe.New(&probe.Config{Senders: senders, Socket: sock})
	defer e.Close()
	for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
		for _, d := range dsts {
			if icmp.FamilyOf(d) == f {
				if err := e.Open(f); err != nil {
					con.errorf("%v", err)
					return fpExitSystem
				}
				break
			}
		}
	}
	if err := rawsock.DropPrivileges(); err != nil {
		con.errorf("warning: %v", err)
	}
	// Several senders need as many Ps (main runs on one): the sends of each spend most of
	// their time in the kernel, on the caller's core. Datagram sockets send alone.
	if senders > 1 && (e.Mode(icmp.IPv4) == rawsock.Privileged || e.Mode(icmp.IPv6) == rawsock.Privileged) {
		runtime.GOMAXPROCS(senders)
	}

	name := func(k int) string { return hosts[idx[k]].name }
	pad := func(k int) string { return fmt.Sprintf("%-*s", width, name(k)) }
	stamp := func() string {
		if !o.timestamps {
			return ""
		}
		if o.json {
			return fmt.Sprintf(`"timestamp": "%.5f", `, float64(time.Now().UnixNano())/1e9)
		}
		return fmt.Sprintf("[%.5f] ", float64(time.Now().UnixNano())/1e9)
	}
	// jname is target k's name as a JSON string.
	jname := func(k int) string { return jsonString(name(k)) }
	// Per-target running figures for the reply lines (fping prints the average and loss so far),
	// and the -C lists, the only per-probe storage: one block for all targets (target k's are
	// rtts[k*count:(k+1)*count]), -1 for no reply, and only with -C. mu guards runs, as -Q's
	// summaries are printed from a goroutine of their own.
	type running struct {
		sent, recv int
		sum        time.Duration
		// -Q: the sent count at the last summary, and the replies since.
		splitSent, splitRecv int
		splitMin, splitMax   time.Duration
		splitSum             time.Duration
	}
	var mu sync.Mutex
	runs := make([]running, len(dsts))
	var rtts []time.Duration
	if o.perProbe {
		rtts = make([]time.Duration, len(dsts)*o.count)
		for j := range rtts {
			rtts[j] = -1
		}
	}
	aliveSeen := make([]bool, len(dsts))
	counting := o.count > 0 || o.loop
	// outage is -o's figure: the time the lost probes stood for, one period each; -1: not shown.
	outage := func(s stats.Summary) time.Duration {
		if !o.outage {
			return -1
		}
		return time.Duration(fpLost(s.Sent, s.Received)) * o.period
	}
	// fping's switches: verbose is its default chatter ("is alive", "is unreachable", send
	// errors), which -q, -a, -u and -x silence; perRecv is a line per reply or timeout, which
	// count mode prints when verbose and loop mode unless -Q; neither mode lists -a or -u.
	verbose := !o.quiet && !o.alive && !o.unreachable && o.reachable == 0
	perRecv := o.count > 0 && verbose || o.loop && o.split == 0
	listAlive, listUnreachable := o.alive, o.unreachable
	if counting {
		verbose, listAlive, listUnreachable = false, false, false
	}
	start := time.Now()
	cfg := &probe.SweepConfig{
		Count: o.count, Loop: o.loop, Retries: o.retries, Backoff: o.backoff, Interval: o.interval, Rate: o.rate,
		Period: o.period, Window: o.inFlight, Timeout: o.timeout, Size: o.size,
		TTL: o.ttl,
		OnSendError: func(k int, err error) {
			// A failed send counts as sent, in -Q's intervals too.
			mu.Lock()
			runs[k].sent++
			mu.Unlock()
			if verbose {
				con.errorf0(fmt.Sprintf("%s: error while sending ping: %s", name(k), syscallText(err)))
			}
		},
	}
	// Lines are buffered while outcomes come in a burst and written when the sweep waits, so a
	// reader of the output (a script, a pipe) gets each line without delay, as fping's
	// line-buffered stdout gives it, in one write per burst instead of one per line.
	cfg.OnWait = func() {
		con.mu.Lock()
		con.out.Flush()
		con.mu.Unlock()
	}
	// timedOut is the line of probe n of target k, which ended without a reply.
	timedOut := func(k, n int, run *running) string {
		if o.json {
			return fmt.Sprintf(`{"timeout": {%s"host": %s, "seq": %d}}`+"\n", stamp(), jname(k), n)
		}
		avg := "NaN"
		if run.recv > 0 {
			avg = fpRTT(run.sum / time.Duration(run.recv))
		}
		return fmt.Sprintf("%s%s : [%d], timed out (%s avg, %d%% loss)\n", stamp(), pad(k), n, avg, fpLossPct(run.sent, run.recv))
	}
	// fping counts a probe as sent when it goes out; the reply line's loss uses that count.
	cfg.OnResult = func(k, n int, r probe.Result) {
		mu.Lock()
		defer mu.Unlock()
		run := &runs[k]
		if n >= 0 {
			run.sent = max(run.sent, n+1)
		}
		switch r.Outcome {
		case probe.Reply:
			run.recv++
			run.sum += r.RTT
			if run.splitRecv == 0 || r.RTT < run.splitMin {
				run.splitMin = r.RTT
			}
			run.splitMax = max(run.splitMax, r.RTT)
			run.splitRecv++
			run.splitSum += r.RTT
			if rtts != nil && n >= 0 && n < o.count {
				rtts[k*o.count+n] = r.RTT
			}
			if !counting {
				if !aliveSeen[k] && (verbose || listAlive) {
					switch {
					case listAlive:
						con.line(stamp() + name(k) + "\n")
					case o.elapsed:
						con.line(fmt.Sprintf("%s%s is alive (%s ms)\n", stamp(), name(k), fpRTT(r.RTT)))
					default:
						con.line(fmt.Sprintf("%s%s is alive\n", stamp(), name(k)))
					}
				}
			} else if perRecv && o.json {
				con.line(fmt.Sprintf(`{"resp": {%s"host": %s, "seq": %d, "size": %d, "rtt": %s}}`+"\n", stamp(), jname(k), n, r.Size, fpRTT(r.RTT)))
			} else if perRecv {
				con.line(fmt.Sprintf("%s%s : [%d], %d bytes, %s ms (%s avg, %d%% loss)\n", stamp(), pad(k), n, r.Size,
					fpRTT(r.RTT), fpRTT(run.sum/time.Duration(run.recv)), fpLossPct(run.sent, run.recv)))
			}
			aliveSeen[k] = true
		case probe.ICMPError:
			// Only -q and -Q silence these lines (fping 5.1 prints none for ICMPv6 errors;
			// gping does).
			if !o.quiet {
				con.errorf0(fmt.Sprintf("%s from %s for ICMP Echo sent to %s", fpICMPText(&r), r.From, name(k)))
			}
			// fping waits out the timeout of a probe that drew an error: it ends timed out.
			if perRecv && n >= 0 {
				con.line(timedOut(k, n, run))
			}
		case probe.Timeout:
			if perRecv && n >= 0 {
				con.line(timedOut(k, n, run))
			}
		case probe.Duplicate:
			if perRecv {
				con.line(fmt.Sprintf("%s%s : duplicate for [%d], %d bytes, %s ms\n", stamp(), pad(k), n, r.Size, fpRTT(r.RTT)))
			}
		}
	}
	// -Q: every o.split, each target's figures since the last summary, to stderr as fping does.
	stopSplits := func() {}
	if o.split > 0 {
		tick := time.NewTicker(o.split)
		quit, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-quit:
					return
				case now := <-tick.C:
					var b strings.Builder
					if !o.json {
						b.WriteString(now.Format("[15:04:05]") + "\n")
					}
					mu.Lock()
					for k := range runs {
						run := &runs[k]
						s := stats.Summary{Sent: uint64(run.sent - run.splitSent), Received: uint64(run.splitRecv), Min: run.splitMin, Max: run.splitMax}
						if run.splitRecv > 0 {
							s.Avg = run.splitSum / time.Duration(run.splitRecv)
						}
						if o.json {
							b.WriteString(fpSummaryJSON("intSum", fmt.Sprintf(`"time": %d,`, now.Unix()), jname(k), s, outage(s)) + "\n")
						} else {
							b.WriteString(fpSummaryLine(pad(k), s, outage(s)) + "\n")
						}
						run.splitSent, run.splitRecv, run.splitMin, run.splitMax, run.splitSum = run.sent, 0, 0, 0, 0
					}
					mu.Unlock()
					con.mu.Lock()
					if o.json {
						con.out.WriteString(b.String())
					} else {
						con.out.Flush() // reply lines before the summary that counts them
						io.WriteString(stderr, b.String())
					}
					con.mu.Unlock()
				}
			}
		}()
		stopSplits = func() {
			tick.Stop()
			close(quit)
			<-done
		}
	}
	results, err := e.Sweep(ctx, dsts, cfg)
	stopSplits()
	elapsed := time.Since(start)
	if results == nil {
		con.errorf("%v", err)
		return fpExitSystem
	}

	unreachable := 0
	for k, r := range results {
		if !r.Alive {
			unreachable++
			if verbose || listUnreachable {
				if listUnreachable {
					con.line(name(k) + "\n")
				} else {
					con.line(name(k) + " is unreachable\n")
				}
			}
		}
	}
	con.mu.Lock()
	con.out.Flush()
	// The summary block goes out in a few large writes, not one write per target; with -J, as
	// JSON lines on stdout.
	sum := newWriter(stderr)
	if o.json {
		sum = con.out
	}
	if counting {
		if perRecv && !o.json {
			fmt.Fprintln(sum)
		}
		for k, r := range results {
			if o.perProbe && o.json {
				vals := make([]string, o.count)
				for j, d := range rtts[k*o.count : (k+1)*o.count] {
					vals[j] = "null"
					if d >= 0 {
						vals[j] = fpRTT(d)
					}
				}
				fmt.Fprintf(sum, `{"vSum": {"host": %s, "values": [%s]}}`+"\n", jname(k), strings.Join(vals, ", "))
				continue
			}
			if o.perProbe {
				var b strings.Builder
				fmt.Fprintf(&b, "%s :", pad(k))
				for _, d := range rtts[k*o.count : (k+1)*o.count] {
					if d < 0 {
						b.WriteString(" -")
					} else {
						b.WriteString(" " + fpRTT(d))
					}
				}
				fmt.Fprintln(sum, b.String())
				continue
			}
			s := r.Summary
			// fping leaves out of an interrupted run the probes still waiting for their answer.
			s.Sent -= s.InFlight()
			if o.json {
				fmt.Fprintln(sum, fpSummaryJSON("summary", "", jname(k), s, outage(s)))
				continue
			}
			fmt.Fprintln(sum, fpSummaryLine(pad(k), s, outage(s)))
		}
	}
	if o.stats {
		t := fpTotalsOf(len(hosts), len(hosts)-len(dsts), results, e.Counters(), elapsed)
		if o.json {
			fmt.Fprintln(sum, t.json())
		} else {
			fmt.Fprint(sum, t.text())
		}
	}
	sum.Flush()
	con.mu.Unlock()
	con.warnCounters(e.Counters())
	if o.reachable > 0 {
		// fping's -x overrides the exit code, unknown names included.
		n := len(dsts) - unreachable
		verdict, code := "Enough", fpExitOK
		if n < o.reachable {
			verdict, code = "Not enough", fpExitUnreachable
		}
		con.line(fmt.Sprintf("%s hosts reachable (required: %d, reachable: %d)\n", verdict, o.reachable, n))
		return code
	}
	switch {
	case unknown:
		return fpExitUnknown
	case unreachable > 0:
		return fpExitUnreachable
	}
	return fpExitOK
}

// fpLost is the probes of sent that no reply answered (duplicates can make recv exceed sent).
func fpLost[T int | uint64](sent, recv T) T { return sent - min(recv, sent) }

// fpLossPct is fping's loss figure: whole percent of sent, 0 when nothing was sent.
func fpLossPct[T int | uint64](sent, recv T) T {
	if sent <= 0 {
		return 0
	}
	return fpLost(sent, recv) * 100 / sent
}

// fpSummaryLine is fping's per-target -c summary, with -o's outage unless it is negative.
func fpSummaryLine(name string, s stats.Summary, outage time.Duration) string {
	line := fmt.Sprintf("%s : xmt/rcv/%%loss = %d/%d/%d%%", name, s.Sent, s.Received, fpLossPct(s.Sent, s.Received))
	if outage >= 0 {
		line += fmt.Sprintf(", outage(ms) = %d", outage.Milliseconds())
	}
	if s.Received > 0 {
		line += fmt.Sprintf(", min/avg/max = %s/%s/%s", fpRTT(s.Min), fpRTT(s.Avg), fpRTT(s.Max))
	}
	return line
}

// fpTotals are the figures of fping's -s block.
type fpTotals struct {
	targets, alive, unreachable, unknown int
	timeouts, sent, replies, other       uint64
	min, avg, max, elapsed               time.Duration
}

func fpTotalsOf(targets, unknown int, results []probe.SweepResult, c probe.Counters, elapsed time.Duration) fpTotals {
	t := fpTotals{targets: targets, unknown: unknown, sent: c.Sent, replies: c.Replies, other: c.Errors, elapsed: elapsed}
	var sum time.Duration
	var received uint64
	for _, r := range results {
		s := r.Summary
		if r.Alive {
			t.alive++
		}
		if s.Received > 0 {
			if received == 0 || s.Min < t.min {
				t.min = s.Min
			}
			t.max = max(t.max, s.Max)
			sum += s.Avg * time.Duration(s.Received)
			received += s.Received
		}
		t.timeouts += s.Lost
	}
	t.unreachable = len(results) - t.alive
	if received > 0 {
		t.avg = sum / time.Duration(received)
	}
	return t
}

// text is fping's -s block.
func (t fpTotals) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n %7d targets\n %7d alive\n %7d unreachable\n %7d unknown addresses\n\n",
		t.targets, t.alive, t.unreachable, t.unknown)
	fmt.Fprintf(&b, " %7d timeouts (waiting for response)\n %7d ICMP Echos sent\n %7d ICMP Echo Replies received\n %7d other ICMP received\n\n",
		t.timeouts, t.sent, t.replies, t.other)
	fmt.Fprintf(&b, " %s ms (min round trip time)\n %s ms (avg round trip time)\n %s ms (max round trip time)\n",
		fpRTT(t.min), fpRTT(t.avg), fpRTT(t.max))
	fmt.Fprintf(&b, " %12.3f sec (elapsed real time)\n\n", t.elapsed.Seconds())
	return b.String()
}

// json is fping's -s block with -J: one line.
func (t fpTotals) json() string {
	return fmt.Sprintf(`{"stats": {"targets": %d, "alive": %d, "unreachable": %d, "unknownAddresses": %d, `+
		`"timeouts": %d, "icmpEchosSent": %d, "icmpEchoRepliesReceived": %d, "otherIcmpReceived": %d, `+
		`"rttMin": %s, "rttAvg": %s, "rttMax": %s, "elapsed": %.3f}}`,
		t.targets, t.alive, t.unreachable, t.unknown, t.timeouts, t.sent, t.replies, t.other,
		fpRTT(t.min), fpRTT(t.avg), fpRTT(t.max), t.elapsed.Seconds())
}

// fpSummaryJSON is a per-target summary with -J: kind is "summary" or "intSum" (-Q's, whose
// extra field comes first), name a JSON string.
func fpSummaryJSON(kind, extra, name string, s stats.Summary, outage time.Duration) string {
	line := fmt.Sprintf(`{"%s": {%s"host": %s, "xmt": %d, "rcv": %d, "loss": %d`, kind, extra, name, s.Sent, s.Received, fpLossPct(s.Sent, s.Received))
	if outage >= 0 {
		line += fmt.Sprintf(`, "outage(ms)": %d`, outage.Milliseconds())
	}
	if s.Received > 0 {
		line += fmt.Sprintf(`, "rttMin": %s, "rttAvg": %s, "rttMax": %s`, fpRTT(s.Min), fpRTT(s.Avg), fpRTT(s.Max))
	}
	return line + "}}"
}

// jsonString is s as a JSON string. fping prints names as they are; a name can hold a quote.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// fpICMPText is fping's name for an ICMP error.
func fpICMPText(r *probe.Result) string {
	if icmp.FamilyOf(r.Dst) == icmp.IPv6 {
		switch r.Kind {
		case icmp.KindDestinationUnreachable:
			return fmt.Sprintf("ICMPv6 Destination Unreachable (code %d)", r.Code)
		case icmp.KindTimeExceeded:
			return "ICMPv6 Time Exceeded"
		case icmp.KindPacketTooBig:
			return "ICMPv6 Packet Too Big"
		}
		return fmt.Sprintf("ICMPv6 type %d code %d", r.Type, r.Code)
	}
	switch r.Kind {
	case icmp.KindDestinationUnreachable:
		if int(r.Code) < len(fpUnreach4) {
			return fpUnreach4[r.Code]
		}
		return "ICMP Unreachable (Invalid Code)"
	case icmp.KindTimeExceeded:
		return "ICMP Time Exceeded"
	case icmp.KindParameterProblem:
		return "ICMP Parameter Problem"
	}
	return fmt.Sprintf("ICMP type %d code %d", r.Type, r.Code)
}

var fpUnreach4 = [...]string{
	"ICMP Network Unreachable",
	"ICMP Host Unreachable",
	"ICMP Protocol Unreachable",
	"ICMP Port Unreachable",
	"ICMP Unreachable (Fragmentation Needed)",
	"ICMP Unreachable (Source Route Failed)",
	"ICMP Unreachable (Destination Network Unknown)",
	"ICMP Unreachable (Destination Host Unknown)",
	"ICMP Unreachable (Source Host Isolated)",
	"ICMP Unreachable (Communication with Network Prohibited)",
	"ICMP Unreachable (Communication with Host Prohibited)",
	"ICMP Unreachable (Network Unreachable For Type Of Service)",
	"ICMP Unreachable (Host Unreachable For Type Of Service)",
	"ICMP Unreachable (Communication Administratively Prohibited)",
	"ICMP Unreachable (Host Precedence Violation)",
	"ICMP Unreachable (Precedence cutoff in effect)",
}
