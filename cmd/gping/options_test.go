package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gping/gping/rawsock"
)

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"-c3", "-i", "0.2", "-W", "1.5", "-w", "4", "-s", "100", "-t", "7", "-Q", "0x10", "-qnD", "-O", "-4", "-M", "do", "-I", "eth0", "--socket=dgram", "--percentiles", "host.example"})
	if err != nil {
		t.Fatal(err)
	}
	want := options{count: 3, interval: 200 * time.Millisecond, intervalSet: true, timeout: 1500 * time.Millisecond,
		deadline: 4 * time.Second, size: 100, ttl: 7, tos: 16, quiet: true, numeric: true, timestamps: true,
		outstanding: true, family: 4, pmtu: rawsock.PMTUDo, iface: "eth0", socket: rawsock.Unprivileged,
		percentiles: true, host: "host.example"}
	if *o != want {
		t.Fatalf("got  %+v\nwant %+v", *o, want)
	}
	// Options after the destination, as getopt permutes them in iputils.
	o, err = parseOptions([]string{"127.0.0.1", "-c", "2", "-I", "198.18.0.1"})
	if err != nil || o.count != 2 || o.host != "127.0.0.1" || o.source.String() != "198.18.0.1" {
		t.Fatalf("got %+v, %v", o, err)
	}
	// Defaults are iputils'.
	o, err = parseOptions([]string{"h"})
	if err != nil || o.count != 0 || o.interval != time.Second || o.size != 56 || o.ttl != 0 {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	// -f without -i means no fixed interval.
	if o, err = parseOptions([]string{"-f", "h"}); err != nil || o.interval != 0 {
		t.Fatalf("flood %+v, %v", o, err)
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "Destination address required"},
		{[]string{"-Z", "h"}, "unknown shorthand flag: 'Z'"},
		{[]string{"-c", "0", "h"}, "'0': out of range: 1 <= value"},
		{[]string{"-c", "-1", "h"}, "'-1': out of range"},
		{[]string{"-c", "x", "h"}, "invalid argument: 'x'"},
		{[]string{"-s", "65528", "h"}, "out of range: 0 <= value <= 65527"},
		{[]string{"-t", "0", "h"}, "out of range: 1 <= value <= 255"},
		{[]string{"-t", "256", "h"}, "out of range: 1 <= value <= 255"},
		{[]string{"-i", "-1", "h"}, "bad interval value"},
		{[]string{"-i", "abc", "h"}, "bad interval value"},
		{[]string{"-W", "0", "h"}, "bad linger time"},
		{[]string{"-M", "maybe", "h"}, "invalid -M argument"},
		{[]string{"--socket", "tcp", "h"}, "invalid --socket argument"},
		{[]string{"-4", "-6", "h"}, "only one -4 or -6"},
		{[]string{"a", "b"}, "only one destination"},
		{[]string{"--", "-rf"}, "starts with '-'"},
		{[]string{strings.Repeat("a.", 127) + "aa"}, "longer than 253 bytes"},
		{[]string{"a..b"}, "bad label"},
		{[]string{"a\x1b[31mb"}, "bad character"},
		{[]string{"$(reboot)"}, "bad character"},
	} {
		_, err := parseOptions(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseOptions(%q) = %v, want error containing %q", c.args, err, c.want)
		}
	}
}

// TestRunBadInput: every input error is one line on stderr, nothing on stdout, exit 2.
func TestRunBadInput(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"fe80::1"}, &out, &errOut, nil); code != exitError || !strings.Contains(errOut.String(), "fe80::1%IFNAME") {
		t.Errorf("link-local without zone: exit %d, stderr %q: want a hint naming the zone", code, errOut.String())
	}
	for _, args := range [][]string{
		{"-c", "0", "127.0.0.1"},
		{"-4", "::1"},
		{"-6", "127.0.0.1"},
		{"-s", "65508", "127.0.0.1"},
		{"fe80::1"},
		{"-t", "300", "127.0.0.1"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut, nil)
		if code != exitError || out.Len() != 0 || strings.Count(errOut.String(), "\n") != 1 || !strings.HasPrefix(errOut.String(), "gping: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one stderr line", args, code, out.String(), errOut.String())
		}
	}
}

func TestFormatRTT(t *testing.T) {
	// Expected strings follow iputils' four ranges and its rounding.
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{42 * time.Microsecond, "0.042"},
		{999 * time.Microsecond, "0.999"},
		{1234 * time.Microsecond, "1.23"},
		{1235 * time.Microsecond, "1.24"},
		{9994 * time.Microsecond, "9.99"},
		{9995 * time.Microsecond, "10.0"},
		{12345 * time.Microsecond, "12.3"},
		{99949 * time.Microsecond, "99.9"},
		{99950 * time.Microsecond, "100"},
		{123456 * time.Microsecond, "123"},
		{1500 * time.Nanosecond, "0.001"},
	} {
		if got := formatRTT(c.d); got != c.want {
			t.Errorf("formatRTT(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestFormatLoss(t *testing.T) {
	for _, c := range []struct {
		p    float64
		want string
	}{{0, "0"}, {100, "100"}, {100.0 / 3, "33.3333"}, {50, "50"}, {200.0 / 3, "66.6667"}, {0.1, "0.1"}} {
		if got := formatLoss(c.p); got != c.want {
			t.Errorf("formatLoss(%v) = %q, want %q", c.p, got, c.want)
		}
	}
}

func TestStatusLine(t *testing.T) {
	var f floodFigures
	for _, d := range []time.Duration{800, 1600, 800} {
		f.add(d * time.Microsecond)
	}
	// ewma: 800 -> 800+(1600-800)/8=900 -> 900+(800-900)/8=887.5
	if got := f.ewma(); got != 887500*time.Nanosecond {
		t.Fatalf("ewma = %v", got)
	}
}
