package cli

import (
	"errors"
	"strings"
	"testing"
)

func TestBadArgStaysOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "bad value: 'plain'",
		"new\nline":     `bad value: 'new\nline'`,
		"esc\x1b[2J":    `bad value: 'esc\x1b[2J'`,
		"caf\u00e9":     `bad value: 'caf\u00e9'`,
		"raw\xffbyte":   `bad value: 'raw\xffbyte'`,
		"tab\there\x7f": `bad value: 'tab\there\x7f'`,
	} {
		err := BadArg("bad value: '%s'", in)
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != want || strings.ContainsAny(err.Error(), "\n\x1b\x7f") {
			t.Errorf("BadArg(%q) = %q, want %q", in, err, want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	if err := CheckHost("", "destination required"); err == nil || err.Error() != "destination required" {
		t.Errorf("empty: %v", err)
	}
	if err := CheckHost("-oProxyCommand=x", "m"); err == nil || !strings.Contains(err.Error(), "starts with '-'") {
		t.Errorf("option-like: %v", err)
	}
	if err := CheckHost("host.example", "m"); err != nil {
		t.Errorf("good name: %v", err)
	}
}
