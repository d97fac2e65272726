package main

import (
	"strings"
	"testing"

	"github.com/gping/gping/internal/cli"
)

// FuzzParseOptions: any command line (arguments separated by NUL in the input) is either
// refused with a usage error or yields options inside their documented ranges; it never
// panics.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{
		"-c\x003\x00127.0.0.1",
		"-qnD\x00-i0.2\x00-W\x001e-3\x00::1",
		"-s\x0065527\x00-t\x00255\x00-Q\x000x10\x00host",
		"-w\x00NaN\x00h",
		"-i\x00-0\x00h",
		"--socket=dgram\x00-M\x00probe\x00h",
		"--\x00-rf",
		"-I\x00fe80::1%eth0\x00fe80::2%eth0",
		"-c\x009223372036854775808\x00h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		o, err := parseOptions(strings.Split(in, "\x00"))
		if err != nil {
			if _, ok := err.(*cli.UsageError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if strings.ContainsRune(err.Error(), '\n') {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if o.help || o.version {
			return
		}
		if o.count < 0 || o.size < 0 || o.size > 65527 || o.ttl < 0 || o.ttl > 255 || o.tos < 0 || o.tos > 255 ||
			o.interval < 0 || o.timeout < 0 || o.deadline < 0 || o.preload < 0 {
			t.Fatalf("out of range: %+v", o)
		}
		if cli.CheckHost(o.host, "usage error: Destination address required") != nil {
			t.Fatalf("accepted host %q", o.host)
		}
	})
}
