package main

import (
	"errors"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gping/gping/internal/cli"
	"github.com/gping/gping/rawsock"
	"github.com/gping/gping/trace"
)

// maxPacketLen is traceroute's limit on the packet length argument.
const maxPacketLen = 65000

// --report defaults: mtr's -c 10 and -i 1.
const (
	defaultCount    = 10
	defaultInterval = time.Second
)

// method is the probe protocol: -I, -U or -T.
type method uint8

const (
	methodICMP method = iota
	methodUDP
	methodTCP
)

// options are gtrace's parsed command line, in Debian traceroute's terms.
type options struct {
	family   int // 0, 4 or 6
	first    int
	max      int
	queries  int
	parallel int
	wait     time.Duration
	here     float64 // -w's HERE; trace.NoFactor when 0 was given
	near     float64 // -w's NEAR; likewise
	sendwait time.Duration
	numeric  bool
	source   netip.Addr
	iface    string
	tos      int
	socket   rawsock.Mode
	host     string
	// packetLen is the optional second argument, the whole packet's length; 0: the default.
	packetLen int
	help      bool
	version   bool
	// report is --report: count rounds (0: until interrupted), their starts interval apart.
	report     bool
	classic    bool // --classic: no Paris flow
	method     method
	port       uint16  // -p; 0: the method's default
	mtu        bool    // --mtu: path MTU discovery
	multipath  bool    // --multipath: MDA
	confidence float64 // --confidence, as a probability of missing an interface; 0: default
	extensions bool    // -e: show ICMP extensions (MPLS label stacks)
	count      int
	interval   time.Duration
}

func parseInt(flag, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		var ne *strconv.NumError
		if !errors.As(err, &ne) || !errors.Is(ne.Err, strconv.ErrRange) {
			return 0, cli.BadArg("invalid %s argument: '%s'", flag, v)
		}
		n = math.MaxInt
	}
	if n < lo || n > hi {
		return 0, cli.BadArg("%s argument '%s' out of range %d..%d", flag, v, lo, hi)
	}
	return n, nil
}

// parseSeconds reads a non-negative fractional number of seconds.
func parseSeconds(v string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > math.MaxInt32 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func newFlagSet(o *options, raw map[string]*string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("gtrace", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	str := func(name, short, usage string) {
		raw[name] = fs.StringP(name, short, "", usage)
	}
	fs.BoolP("ipv4", "4", false, "use IPv4")
	fs.BoolP("ipv6", "6", false, "use IPv6")
	fs.BoolP("icmp", "I", false, "use ICMP ECHO for tracerouting (the default)")
	fs.BoolP("udp", "U", false, "use UDP datagrams for tracerouting")
	fs.BoolP("tcp", "T", false, "use TCP SYN for tracerouting")
	str("port", "p", "destination port")
	str("first", "f", "start from the first_ttl hop")
	str("max-hops", "m", "set the max number of hops")
	str("queries", "q", "set the number of probes per each hop")
	str("wait", "w", "wait for a probe no more than MAX seconds")
	str("sim-queries", "N", "set the number of probes to be tried simultaneously")
	fs.BoolVarP(&o.numeric, "numeric", "n", false, "do not resolve IP addresses to their domain names")
	str("source", "s", "use source src_addr for outgoing packets")
	str("interface", "i", "specify a network interface to operate with")
	str("tos", "t", "set the TOS (IPv4 type of service) or TC (IPv6 traffic class) value")
	str("sendwait", "z", "minimal time interval between probes")
	str("socket", "", "socket kind: auto, raw or dgram")
	fs.BoolVar(&o.mtu, "mtu", false, "discover the path MTU")
	fs.BoolVar(&o.multipath, "multipath", false, "find every path through load balancers (MDA)")
	str("confidence", "", "--multipath's confidence in percent")
	fs.BoolVar(&o.report, "report", false, "mtr-style report of repeated rounds")
	fs.BoolVar(&o.classic, "classic", false, "let the ICMP checksum vary per probe (no Paris flow)")
	fs.BoolVarP(&o.extensions, "extensions", "e", false, "show ICMP extensions (RFC 4950 MPLS labels, RFC 5837 interfaces)")
	str("report-cycles", "c", "number of rounds of --report")
	str("interval", "", "seconds between the starts of --report rounds")
	fs.BoolVarP(&o.help, "help", "h", false, "print help and exit")
	fs.BoolVarP(&o.version, "version", "V", false, "print version and exit")
	return fs
}

// parseOptions parses gtrace's arguments. The host is checked for shape here; resolving it is
// the caller's job.
func parseOptions(args []string) (*options, error) {
	o := &options{max: trace.DefaultMax, queries: trace.DefaultQueries, parallel: trace.DefaultParallel,
		wait: trace.DefaultWait, here: trace.DefaultHere, near: trace.DefaultNear, first: 1,
		count: defaultCount, interval: defaultInterval}
	raw := map[string]*string{}
	fs := newFlagSet(o, raw)
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if o.help || o.version {
		return o, nil
	}
	var err error
	if o.family, err = cli.Family(fs, "only one -4 or -6 option may be specified"); err != nil {
		return nil, err
	}
	set := func(name string) (string, bool) {
		return *raw[name], fs.Lookup(name).Changed
	}
	methods := 0
	for i, name := range []string{"icmp", "udp", "tcp"} {
		if fs.Lookup(name).Changed {
			methods++
			o.method = method(i)
		}
	}
	if methods > 1 {
		return nil, cli.BadArg("only one of -I, -U or -T may be specified")
	}
	if v, ok := set("port"); ok {
		if o.method == methodICMP {
			return nil, cli.BadArg("-p needs -U or -T (ICMP has no ports)")
		}
		n, err := parseInt("-p", v, 1, 65535)
		if err != nil {
			return nil, err
		}
		o.port = uint16(n)
	}
	if v, ok := set("first"); ok {
		if o.first, err = parseInt("-f", v, 1, trace.MaxTTL); err != nil {
			return nil, err
		}
	}
	if v, ok := set("max-hops"); ok {
		if o.max, err = parseInt("-m", v, 1, trace.MaxTTL); err != nil {
			return nil, err
		}
	}
	if o.first > o.max {
		return nil, cli.BadArg("first hop %d is beyond max hops %d", o.first, o.max)
	}
	if v, ok := set("queries"); ok {
		if o.queries, err = parseInt("-q", v, 1, trace.MaxQueries); err != nil {
			return nil, err
		}
	}
	if v, ok := set("sim-queries"); ok {
		if o.parallel, err = parseInt("-N", v, 1, 1<<16); err != nil {
			return nil, err
		}
	}
	if v, ok := set("wait"); ok {
		// traceroute's MAX,HERE,NEAR; a factor of 0 turns that rule off.
		parts := strings.Split(v, ",")
		d, ok := parseSeconds(parts[0])
		if !ok || d <= 0 || len(parts) > 3 {
			return nil, cli.BadArg("bad wait specification '%s'", v)
		}
		o.wait = d
		for i, f := range []*float64{&o.here, &o.near} {
			if len(parts) <= i+1 {
				break
			}
			x, err := strconv.ParseFloat(parts[i+1], 64)
			if err != nil || math.IsNaN(x) || x < 0 || x > 1e6 {
				return nil, cli.BadArg("bad wait specification '%s'", v)
			}
			*f = x
			if x == 0 {
				*f = trace.NoFactor
			}
		}
	}
	if v, ok := set("sendwait"); ok {
		// traceroute: a value above 10 is milliseconds, else seconds.
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > math.MaxInt32 {
			return nil, cli.BadArg("bad sendwait '%s'", v)
		}
		if f > 10 {
			o.sendwait = time.Duration(f * float64(time.Millisecond))
		} else {
			o.sendwait = time.Duration(f * float64(time.Second))
		}
	}
	if v, ok := set("source"); ok {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return nil, cli.BadArg("invalid source address '%s'", v)
		}
		o.source = a.Unmap()
	}
	if v, ok := set("interface"); ok {
		if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t") {
			return nil, cli.BadArg("invalid interface name '%s'", v)
		}
		o.iface = v
	}
	if v, ok := set("tos"); ok {
		if o.tos, err = parseInt("-t", v, 0, 255); err != nil {
			return nil, err
		}
	}
	if v, ok := set("socket"); ok {
		m, err := rawsock.ParseMode(v)
		if err != nil {
			return nil, cli.BadArg("invalid --socket argument: '%s' (auto, raw or dgram)", v)
		}
		o.socket = m
	}
	if v, ok := set("report-cycles"); ok {
		if !o.report {
			return nil, cli.BadArg("-c needs --report")
		}
		if o.count, err = parseInt("-c", v, 0, math.MaxInt32); err != nil {
			return nil, err
		}
	}
	if v, ok := set("interval"); ok {
		d, ok := parseSeconds(v)
		if !ok {
			return nil, cli.BadArg("bad interval '%s'", v)
		}
		o.interval = d
	}
	if o.mtu && o.method == methodTCP {
		return nil, cli.BadArg("--mtu needs -I or -U (TCP SYNs carry no payload)")
	}
	if o.mtu && o.report {
		return nil, cli.BadArg("--mtu and --report cannot be combined")
	}
	if v, ok := set("confidence"); ok {
		pct, err := strconv.ParseFloat(v, 64)
		if err != nil || !(pct > 0 && pct < 100) || !o.multipath {
			return nil, cli.BadArg("--confidence needs --multipath and a percentage between 0 and 100, not '%s'", v)
		}
		o.confidence = 1 - pct/100
	}
	if o.multipath && (o.mtu || o.report || o.classic) {
		return nil, cli.BadArg("--multipath cannot be combined with --mtu, --report or --classic")
	}
	if o.mtu && !fs.Lookup("sim-queries").Changed {
		o.parallel = 1 // as traceroute --mtu: see trace.Config.MTU
	}
	if o.report && !fs.Lookup("queries").Changed {
		o.queries = 1 // one probe per hop per round, as mtr sends
	}
	rest := fs.Args()
	switch len(rest) {
	case 0:
		return nil, cli.BadArg("specify \"host\" missing argument")
	case 1:
	case 2:
		if o.packetLen, err = parseInt("packetlen", rest[1], 0, maxPacketLen); err != nil {
			return nil, err
		}
	default:
		return nil, cli.BadArg("extra argument '%s'", rest[2])
	}
	o.host = rest[0]
	if err := cli.CheckHost(o.host, "specify \"host\" missing argument"); err != nil {
		return nil, err
	}
	return o, nil
}

const usageText = `
Usage:
  gtrace [ -46eIUTn ] [ -p port ] [ -f first_ttl ] [ -i device ] [ -m max_ttl ] [ -N squeries ] [ -q nqueries ]
         [ -s src_addr ] [ -t tos ] [ -w MAX,HERE,NEAR ] [ -z sendwait ] [ --socket kind ]
         [ --classic ] [ --mtu ] [ --multipath [ --confidence pct ] ]
         [ --report [ -c count ] [ --interval secs ] ] host [ packetlen ]
Options:
  -4                          Use IPv4
  -6                          Use IPv6
  -I  --icmp                  Use ICMP ECHO for tracerouting (the default)
  -U  --udp                   Use UDP datagrams, to port 33434 (or -p); with --classic the
                              port increases with each probe, as traceroute's default
  -T  --tcp                   Use TCP SYN, to port 80 (or -p); unprivileged, through
                              connect(), one source port per probe
  -p port  --port=port        Destination port of -U (the first one with --classic) or -T
  -f first_ttl  --first=first_ttl
                              Start from the first_ttl hop (instead from 1)
  -i device  --interface=device
                              Specify a network interface to operate with
  -m max_ttl  --max-hops=max_ttl
                              Set the max number of hops (max TTL to be reached). Default is 32
  -N squeries  --sim-queries=squeries
                              Set the number of probes to be tried simultaneously (default is 16)
  -n                          Do not resolve IP addresses to their domain names
  -q nqueries  --queries=nqueries
                              Set the number of probes per each hop. Default is 3 (at most 10)
  -s src_addr  --source=src_addr
                              Use source src_addr for outgoing packets
  -t tos  --tos=tos           Set the TOS (IPv4 type of service) or TC (IPv6 traffic class) value
  -w MAX,HERE,NEAR  --wait=MAX,HERE,NEAR
                              Wait for a probe no more than HERE (default 3) times longer
                              than a response from the same hop, or no more than NEAR
                              (default 10) times than some next hop, or MAX (default 5.0)
                              seconds; 0 turns HERE or NEAR off. An unanswered probe is
                              retried once within MAX when its hop may be rate limiting
  -z sendwait  --sendwait=sendwait
                              Minimal time interval between probes (default 0); above 10 it is
                              milliseconds, else seconds
  --socket kind               auto (default: ping socket, else raw), raw or dgram
  --mtu                       Discover the MTU along the path: probes go unfragmented at the
                              route's MTU (or packetlen) and shrink to what routers report;
                              the new MTU is printed once as F=NUM at the first probe that
                              needed it. Implies -N 1 unless -N is given
  --multipath                 Find every path through routers that balance flows (MDA,
                              Paris traceroute): each hop gets flows on new ports until
                              the chance of a missed interface is under 5%; prints every
                              interface of a hop with its best RTT. Use with -U or -T
                              (Linux routers hash ICMP echo on addresses only)
  --confidence pct            Confidence of --multipath that no interface was missed, per
                              hop (default 95; 99 sends about 1.5 times the flows)
  -e  --extensions            Show ICMP extensions: MPLS label stacks (RFC 4950) and
                              interface information (RFC 5837); raw sockets only
  --classic                   Let each probe's flow vary, as traceroute does (ICMP: the
                              checksum; UDP: the port); by default all probes of a trace
                              share one flow (Paris traceroute), so load-balancing routers
                              send them down one path
  --report                    Trace the path in rounds, then print mtr's report table; one
                              probe per hop per round unless -q is given, no retries, so
                              that Loss% is the probes' own loss
  -c count  --report-cycles=count
                              Rounds of --report (default 10); 0: until interrupted
  --interval secs             Seconds between the starts of rounds (default 1)
  -V  --version               Print version info and exit
  -h  --help                  Read this help and exit

Arguments:
      host          The host to traceroute to
      packetlen     The full packet length (default is the length of an IP
                    header plus 40). Can be ignored or increased to a minimal
                    allowed value

Exit status: 0 if the destination answered, 1 if it was not reached, 2 on errors.
`
