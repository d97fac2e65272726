// Package cli holds what gping's and gtrace's command lines share: usage errors that stay one
// printable line whatever the user typed, and the destination check before any lookup.
package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/gping/gping/internal/hostname"
)

// UsageError is a command-line problem: the command prints it as one line and exits with its
// usage status.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// BadArg builds a UsageError. Arguments are the user's bytes: control characters and anything
// outside printable ASCII are escaped so that the message stays one line and cannot drive the
// terminal.
func BadArg(format string, a ...any) error {
	return &UsageError{Escape(fmt.Sprintf(format, a...))}
}

// Escape escapes control characters, invalid UTF-8 and anything outside printable ASCII as Go
// source would, leaving the rest as it is.
func Escape(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r < 0x20 || r >= 0x7f:
			q := strconv.QuoteRuneToASCII(r)
			b = append(b, q[1:len(q)-1]...)
		default:
			b = utf8.AppendRune(b, r)
		}
		i += n
	}
	return string(b)
}

// CheckHost refuses, as a usage error, a destination no resolver should be asked about (see
// hostname.Check); missing is the message for an empty one.
func CheckHost(h, missing string) error {
	if h == "" {
		return BadArg("%s", missing)
	}
	if err := hostname.Check(h); err != nil {
		return BadArg("%v", err)
	}
	return nil
}

// Parse parses args with fs, turning pflag's errors into one-line usage errors.
func Parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return BadArg("%s", strings.TrimPrefix(err.Error(), "pflag: "))
	}
	return nil
}

// Family reads the -4 and -6 flags (registered as "ipv4" and "ipv6"): 0 for neither, 4 or 6,
// and conflict as the usage error when both are set.
func Family(fs *pflag.FlagSet, conflict string) (int, error) {
	v4, _ := fs.GetBool("ipv4")
	v6, _ := fs.GetBool("ipv6")
	switch {
	case v4 && v6:
		return 0, BadArg("%s", conflict)
	case v4:
		return 4, nil
	case v6:
		return 6, nil
	}
	return 0, nil
}
