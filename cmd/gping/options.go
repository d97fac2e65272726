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
)

// minUserInterval is iputils' floor on the interval for users without privilege, so that an
// unprivileged user cannot flood a network.
const minUserInterval = 2 * time.Millisecond

// options are gping's parsed command line, in iputils ping's terms.
type options struct {
	count       int
	interval    time.Duration
	intervalSet bool
	timeout     time.Duration // -W
	deadline    time.Duration // -w
	size        int
	ttl         int
	tos         int
	iface       string
	source      netip.Addr
	mark        uint32
	pmtu        rawsock.PMTU
	preload     int
	quiet       bool
	numeric     bool
	family      int // 0, 4 or 6
	timestamps  bool
	outstanding bool
	flood       bool
	audible     bool
	percentiles bool
	socket      rawsock.Mode
	help        bool
	version     bool
	host        string
}

func outOfRange(v string, lo, hi int64) error {
	return cli.BadArg("invalid argument: '%s': out of range: %d <= value <= %d", v, lo, hi)
}

func parseInt(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, outOfRange(v, lo, hi)
		}
		return 0, cli.BadArg("invalid argument: '%s'", v)
	}
	if n < lo || n > hi {
		return 0, outOfRange(v, lo, hi)
	}
	return n, nil
}

// parseSeconds reads iputils' fractional seconds ("0.2", "1", "1e-3").
func parseSeconds(flag, v string, max float64) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > max {
		return 0, cli.BadArg("bad %s value: '%s'", flag, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func newFlagSet(o *options, raw map[string]*string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("gping", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	str := func(name, short, usage string) {
		raw[name] = fs.StringP(name, short, "", usage)
	}
	str("count", "c", "stop after <count> replies")
	str("interval", "i", "seconds between sending each packet")
	str("timeout", "W", "time to wait for response, seconds")
	str("deadline", "w", "reply wait <deadline> in seconds")
	str("size", "s", "use <size> as number of data bytes to be sent")
	str("ttl", "t", "define time to live")
	str("tos", "Q", "use quality of service <tclass> bits")
	str("interface", "I", "either interface name or address")
	str("mark", "m", "tag the packets going out")
	str("pmtudisc", "M", "define mtu discovery, can be one of <do|dont|want|probe>")
	str("preload", "l", "send <preload> number of packages while waiting replies")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "quiet output")
	fs.BoolVarP(&o.numeric, "numeric", "n", false, "no dns name resolution")
	fs.BoolP("ipv4", "4", false, "use IPv4")
	fs.BoolP("ipv6", "6", false, "use IPv6")
	fs.BoolVarP(&o.timestamps, "timestamps", "D", false, "print timestamps")
	fs.BoolVarP(&o.outstanding, "outstanding", "O", false, "report outstanding replies")
	fs.BoolVarP(&o.flood, "flood", "f", false, "flood ping")
	fs.BoolVarP(&o.audible, "audible", "a", false, "use audible ping")
	fs.BoolVar(&o.percentiles, "percentiles", false, "add rtt percentiles and jitter to the summary")
	str("socket", "", "socket kind: auto, raw or dgram")
	fs.BoolVarP(&o.help, "help", "h", false, "print help and exit")
	fs.BoolVarP(&o.version, "version", "V", false, "print version and exit")
	return fs
}

// parseOptions parses gping's arguments. The host is checked for shape here; resolving it is
// the caller's job.
func parseOptions(args []string) (*options, error) {
	o := &options{interval: time.Second, size: 56}
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
		f := fs.Lookup(name)
		return *raw[name], f != nil && f.Changed
	}
	if v, ok := set("count"); ok {
		n, err := parseInt(v, 1, math.MaxInt64)
		if err != nil {
			return nil, err
		}
		o.count = int(min(n, math.MaxInt))
	}
	if v, ok := set("interval"); ok {
		d, err := parseSeconds("interval", v, float64(math.MaxInt32)/1000)
		if err != nil {
			return nil, err
		}
		o.interval, o.intervalSet = d, true
	}
	if v, ok := set("timeout"); ok {
		d, err := parseSeconds("linger time", v, float64(math.MaxInt32)/1000)
		if err != nil {
			return nil, err
		}
		if d == 0 {
			return nil, cli.BadArg("bad linger time: '%s'", v)
		}
		o.timeout = d
	}
	if v, ok := set("deadline"); ok {
		n, err := parseSeconds("wait time", v, math.MaxInt32)
		if err != nil {
			return nil, err
		}
		o.deadline = n
	}
	if v, ok := set("size"); ok {
		n, err := parseInt(v, 0, 65527)
		if err != nil {
			return nil, err
		}
		o.size = int(n)
	}
	if v, ok := set("ttl"); ok {
		n, err := parseInt(v, 1, 255)
		if err != nil {
			return nil, err
		}
		o.ttl = int(n)
	}
	if v, ok := set("tos"); ok {
		n, err := parseInt(v, 0, 255)
		if err != nil {
			return nil, err
		}
		o.tos = int(n)
	}
	if v, ok := set("mark"); ok {
		n, err := parseInt(v, 0, math.MaxUint32)
		if err != nil {
			return nil, err
		}
		o.mark = uint32(n)
	}
	if v, ok := set("preload"); ok {
		n, err := parseInt(v, 1, 65536)
		if err != nil {
			return nil, err
		}
		o.preload = int(n)
	}
	if v, ok := set("interface"); ok {
		if a, err := netip.ParseAddr(v); err == nil {
			o.source = a
		} else if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t") {
			return nil, cli.BadArg("invalid argument: '%s': not an interface name or address", v)
		} else {
			o.iface = v
		}
	}
	if v, ok := set("pmtudisc"); ok {
		switch v {
		case "do":
			o.pmtu = rawsock.PMTUDo
		case "dont":
			o.pmtu = rawsock.PMTUDont
		case "want":
			o.pmtu = rawsock.PMTUWant
		case "probe":
			o.pmtu = rawsock.PMTUProbe
		default:
			return nil, cli.BadArg("invalid -M argument: %s", v)
		}
	}
	if v, ok := set("socket"); ok {
		m, err := rawsock.ParseMode(v)
		if err != nil {
			return nil, cli.BadArg("invalid --socket argument: '%s' (auto, raw or dgram)", v)
		}
		o.socket = m
	}
	if o.flood && !o.intervalSet {
		o.interval = 0
	}
	rest := fs.Args()
	switch len(rest) {
	case 0:
		return nil, cli.BadArg("usage error: Destination address required")
	case 1:
	default:
		return nil, cli.BadArg("usage error: only one destination may be given (got '%s')", strings.Join(rest, " "))
	}
	o.host = rest[0]
	if err := cli.CheckHost(o.host, "usage error: Destination address required"); err != nil {
		return nil, err
	}
	return o, nil
}

const usageText = `
Usage
  gping [options] <destination>

Options:
  <destination>      dns name or ip address
  -a                 use audible ping
  -c <count>         stop after <count> replies
  -D                 print timestamps
  -f                 flood ping
  -h                 print help and exit
  -I <interface>     either interface name or address
  -i <interval>      seconds between sending each packet
  -l <preload>       send <preload> number of packages while waiting replies
  -m <mark>          tag the packets going out
  -M <pmtud opt>     define mtu discovery, can be one of <do|dont|want|probe>
  -n                 no dns name resolution
  -O                 report outstanding replies
  -q                 quiet output
  -Q <tclass>        use quality of service <tclass> bits
  -s <size>          use <size> as number of data bytes to be sent
  -t <ttl>           define time to live
  -V                 print version and exit
  -w <deadline>      reply wait <deadline> in seconds
  -W <timeout>       time to wait for response
  -4                 use IPv4
  -6                 use IPv6
  --percentiles      add rtt percentiles and jitter to the statistics
  --socket <kind>    auto (default: ping socket, else raw), raw or dgram

Exit status: 0 if a reply arrived, 1 if none did (or fewer than -c by -w), 2 on errors.
`
