package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gping/gping/trace"
)

// mtr's report layout (ui/report.c): the fields start at column 33 whatever the length of
// the host name before them, which they overwrite; each is written at a fixed advance even
// when it prints longer, so a 100.0% loss loses its '%' to the next field.
const reportHostCols = 33

// reportField is one of mtr's default report fields, "LS NABWV".
type reportField struct {
	title   string
	advance int
	value   func(trace.HopSummary) string
}

func msField(f func(trace.HopSummary) time.Duration) func(trace.HopSummary) string {
	return func(s trace.HopSummary) string {
		return fmt.Sprintf(" %5.1f", float64(f(s).Microseconds())/1000)
	}
}

var reportFields = [...]reportField{
	{"Loss%", 6, func(s trace.HopSummary) string { return fmt.Sprintf(" %4.1f%%", s.LossPercent()) }},
	{"Snt", 6, func(s trace.HopSummary) string { return fmt.Sprintf(" %5d", s.Sent) }},
	{" ", 1, func(trace.HopSummary) string { return " " }},
	{"Last", 6, msField(func(s trace.HopSummary) time.Duration { return s.Last })},
	{"Avg", 6, msField(func(s trace.HopSummary) time.Duration { return s.Avg })},
	{"Best", 6, msField(func(s trace.HopSummary) time.Duration { return s.Best })},
	{"Wrst", 6, msField(func(s trace.HopSummary) time.Duration { return s.Worst })},
	{"StDev", 6, msField(func(s trace.HopSummary) time.Duration { return s.StDev })},
}

// putAt writes s at column pos of line, cutting off whatever was there from pos on, as mtr's
// snprintf(buf + len, ...) does.
func putAt(line string, pos int, s string) string {
	for len(line) < pos {
		line += " "
	}
	return line[:pos] + s
}

// reportTable is mtr --report's output for rows: the start time, the header with the local
// host name, one line per hop, and one more line for each further address a hop answered
// from. name renders the hop's address as mtr does (the name, or the address with -n).
func reportTable(start time.Time, hostname string, rows []trace.HopSummary, name func(netip.Addr) string) string {
	out := "Start: " + start.Format("2006-01-02T15:04:05-0700") + "\n"
	line := fmt.Sprintf("HOST: %-*s", reportHostCols, hostname)
	pos := reportHostCols
	for _, f := range reportFields {
		line = putAt(line, pos, fmt.Sprintf("%*s", f.advance, f.title))
		pos += f.advance
	}
	out += line + "\n"
	for _, r := range rows {
		host := "???"
		if r.Latest.IsValid() {
			host = name(r.Latest)
		}
		line := fmt.Sprintf(" %2d.|-- %-*s", r.TTL, reportHostCols, host)
		pos := reportHostCols
		for _, f := range reportFields {
			line = putAt(line, pos, f.value(r))
			pos += f.advance
		}
		out += line + "\n"
		first := true
		for _, a := range r.Addrs {
			if a == r.Latest {
				continue
			}
			if first {
				out += "    |  `|-- " + a.String() + "\n"
			} else {
				out += "    |   |-- " + a.String() + "\n"
			}
			first = false
		}
	}
	return out
}

// report runs rounds of traces of dst, each round's start interval after the one before,
// count of them (0: until ctx ends), and writes mtr's report table of them. It returns the
// exit code: 0 when the destination answered in some round.
func report(ctx context.Context, o *options, e trace.Prober, dst netip.Addr, cfg trace.Config,
	hostname string, names *namer, stdout, stderr io.Writer) int {
	// No retries: Loss% is the share of probes lost, as in mtr, not of queries lost twice.
	cfg.RetryAfter = cfg.Wait
	var tally trace.Tally
	start := time.Now()
	reached := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var failed error
rounds:
	for round := 0; o.count == 0 || round < o.count; round++ {
		roundStart := time.Now()
		res, err := trace.Run(ctx, e, dst, &cfg, tally.Add)
		reached = reached || res.Reached
		switch {
		case err != nil && ctx.Err() != nil:
			break rounds
		case err != nil:
			failed = err
			break rounds
		}
		if o.count != 0 && round == o.count-1 {
			break
		}
		if wait := time.Until(roundStart.Add(o.interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break rounds
			}
		}
	}
	rows := tally.Hops(dst)
	for _, r := range rows {
		names.start(r.Latest)
	}
	fmt.Fprint(stdout, reportTable(start, hostname, rows, names.name))
	switch {
	case failed != nil:
		fmt.Fprintf(stderr, "gtrace: %v\n", failed)
		return exitError
	case reached:
		return exitReached
	}
	return exitNotReached
}
