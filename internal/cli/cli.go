// Package cli holds what gping's and gtrace's command lines share: usage errors that stay one
// printable line whatever the user typed, and the destination check before any lookup.
package cli

import (
	"fmt"
	"strconv"
	"unicode/utf8"

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
