package hostname

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"host.example", "a-b.c", "127.0.0.1", "::1", "fe80::1%eth0", "x.", strings.Repeat("a", 63)} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-rf", "a..b", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "aa", "a\x1b[31mb", "$(reboot)", "a b", "a/b"} {
		if err := Check(bad); !errors.Is(err, ErrInvalid) || strings.ContainsAny(err.Error(), "\x1b\n") {
			t.Errorf("Check(%q) = %v, want ErrInvalid with nothing raw", bad, err)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"host.example":        "host.example",
		"evil\x1b[2J\a.lab":   `evil\x1b[2J\a.lab`,
		"caf\u00e9.example":   `caf\u00e9.example`,
		"\x9b31m.csi.example": `\x9b31m.csi.example`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResolveLiterals: literals never reach a resolver.
func TestResolveLiterals(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		host   string
		family int
		want   string
		err    string
	}{
		{"127.0.0.1", 0, "127.0.0.1", ""},
		{"::ffff:127.0.0.1", 4, "127.0.0.1", ""},
		{"::1", 6, "::1", ""},
		{"::1", 4, "", "Address family"},
		{"127.0.0.1", 6, "", "Address family"},
		{"fe80::1", 0, "", "%IFNAME"},
		{"fe80::1%lo", 6, "fe80::1%lo", ""},
		{"0.0.0.0", 0, "", "not a destination"},
	} {
		a, numeric, err := Resolve(ctx, c.host, c.family)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Resolve(%q, %d) = %v, %v; want error with %q", c.host, c.family, a, err, c.err)
			}
		case err != nil || !numeric || a.String() != c.want:
			t.Errorf("Resolve(%q, %d) = %v, %v, %v; want %s", c.host, c.family, a, numeric, err, c.want)
		}
	}
}
