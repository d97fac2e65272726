package main

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/rawsock"
	"github.com/gping/gping/trace"
)

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"-6", "-I", "-f", "2", "-m", "40", "-q", "5", "-w", "1.5,2,0", "-N", "4",
		"-n", "-s", "2001:db8::1", "-i", "eth0", "-t", "16", "-z", "20", "--socket=dgram", "host.example", "120"})
	if err != nil {
		t.Fatal(err)
	}
	want := options{family: 6, first: 2, max: 40, queries: 5, parallel: 4, wait: 1500 * time.Millisecond,
		here: 2, near: trace.NoFactor, count: 10, interval: time.Second,
		sendwait: 20 * time.Millisecond, numeric: true, source: netip.MustParseAddr("2001:db8::1"),
		iface: "eth0", tos: 16, socket: rawsock.Unprivileged, host: "host.example", packetLen: 120}
	if *o != want {
		t.Fatalf("got  %+v\nwant %+v", *o, want)
	}
	// Defaults: traceroute's, but 32 hops; options may follow the host, as getopt permutes.
	o, err = parseOptions([]string{"198.18.0.1", "-z", "0.5"})
	if err != nil || o.first != 1 || o.max != trace.DefaultMax || o.queries != 3 || o.parallel != 16 ||
		o.wait != 5*time.Second || o.sendwait != 500*time.Millisecond || o.packetLen != 0 || o.host != "198.18.0.1" ||
		o.here != 3 || o.near != 10 || o.report {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	// -w MAX alone keeps the factors; --report sends one query per hop and round unless -q
	// says otherwise.
	o, err = parseOptions([]string{"-w", "2", "--report", "-c", "0", "--interval", "0.25", "h"})
	if err != nil || o.wait != 2*time.Second || o.here != 3 || o.near != 10 || !o.report || o.count != 0 ||
		o.interval != 250*time.Millisecond || o.queries != 1 {
		t.Fatalf("report options %+v, %v", o, err)
	}
	o, err = parseOptions([]string{"--report", "-q", "3", "h"})
	if err != nil || o.queries != 3 || o.count != 10 {
		t.Fatalf("report -q 3: %+v, %v", o, err)
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "missing argument"},
		{[]string{"-f", "5", "-m", "4", "h"}, "first hop 5 is beyond max hops 4"},
		{[]string{"-m", "256", "h"}, "-m argument '256' out of range 1..255"},
		{[]string{"-f", "0", "h"}, "-f argument '0' out of range"},
		{[]string{"-q", "0", "h"}, "-q argument '0' out of range 1..10"},
		{[]string{"-q", "11", "h"}, "-q argument '11' out of range 1..10"},
		{[]string{"-q", "x", "h"}, "invalid -q argument: 'x'"},
		{[]string{"-m", "99999999999999999999", "h"}, "out of range"},
		{[]string{"-N", "0", "h"}, "-N argument '0' out of range"},
		{[]string{"-w", "0", "h"}, "bad wait specification"},
		{[]string{"-w", "-1", "h"}, "bad wait specification"},
		{[]string{"-w", "5,x", "h"}, "bad wait specification"},
		{[]string{"-w", "5,3,-1", "h"}, "bad wait specification"},
		{[]string{"-w", "5,3,10,1", "h"}, "bad wait specification"},
		{[]string{"-c", "3", "h"}, "-c needs --report"},
		{[]string{"--report", "-c", "-1", "h"}, "-c argument '-1' out of range"},
		{[]string{"--report", "--interval", "x", "h"}, "bad interval"},
		{[]string{"-z", "x", "h"}, "bad sendwait"},
		{[]string{"-t", "256", "h"}, "-t argument '256' out of range 0..255"},
		{[]string{"-s", "nope", "h"}, "invalid source address"},
		{[]string{"--socket", "tcp", "h"}, "invalid --socket argument"},
		{[]string{"-4", "-6", "h"}, "only one -4 or -6"},
		{[]string{"-U", "-T", "h"}, "only one of -I, -U or -T"},
		{[]string{"-p", "80", "h"}, "-p needs -U or -T"},
		{[]string{"--confidence", "99", "h"}, "--confidence needs --multipath"},
		{[]string{"--multipath", "--confidence", "100", "h"}, "between 0 and 100"},
		{[]string{"--multipath", "--classic", "h"}, "--multipath cannot be combined"},
		{[]string{"-T", "--mtu", "h"}, "--mtu needs -I or -U"},
		{[]string{"-U", "-p", "0", "h"}, "-p argument '0' out of range 1..65535"},
		{[]string{"-Y", "h"}, "unknown shorthand flag: 'Y'"},
		{[]string{"h", "65001"}, "packetlen argument '65001' out of range"},
		{[]string{"h", "60", "x"}, "extra argument 'x'"},
		{[]string{"--", "-rf"}, "starts with '-'"},
		{[]string{"a..b"}, "bad label"},
		{[]string{"a;b"}, "bad character"},
	} {
		_, err := parseOptions(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
}

// TestRunBadInput: every input error is one line on stderr, nothing on stdout, and exit 2,
// before any socket is opened.
func TestRunBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-m", "300", "127.0.0.1"},
		{"-f", "9", "-m", "3", "127.0.0.1"},
		{"-q", "20", "127.0.0.1"},
		{"-6", "127.0.0.1"},
		{"-4", "::1"},
		{"-s", "::1", "127.0.0.1"},
		{"no-such-host.invalid"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut)
		if code != exitError || out.Len() != 0 || strings.Count(errOut.String(), "\n") != 1 ||
			!strings.HasPrefix(errOut.String(), "gtrace: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"-h", "--version"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{arg}, &out, &errOut); code != 0 || out.Len() == 0 || errOut.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, out.String(), errOut.String())
		}
	}
}
