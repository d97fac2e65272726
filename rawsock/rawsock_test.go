package rawsock

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gping/gping/icmp"
)

func TestModeStringParseRoundTrip(t *testing.T) {
	for _, m := range []Mode{Auto, Privileged, Unprivileged} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	for in, want := range map[string]Mode{"AUTO": Auto, "privileged": Privileged, "unprivileged": Unprivileged, "Datagram": Unprivileged} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("icmp"); !errors.Is(err, ErrInvalidMode) {
		t.Errorf("ParseMode(icmp) error = %v, want ErrInvalidMode", err)
	}
	if s := Mode(9).String(); s != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", s)
	}
}

func TestErrPermissionIsOSPermission(t *testing.T) {
	if !errors.Is(ErrPermission, os.ErrPermission) {
		t.Fatal("errors.Is(ErrPermission, os.ErrPermission) = false")
	}
}

func TestPermissionErrorMessage(t *testing.T) {
	dgram := &os.SyscallError{Syscall: "socket", Err: syscall.EACCES}
	raw := &os.SyscallError{Syscall: "socket", Err: syscall.EPERM}
	for _, tc := range []struct {
		name       string
		dgram, raw error
		want, not  []string
	}{
		{"auto", dgram, raw, []string{"setcap cap_net_raw+p", `ping_group_range="0 2147483647"`, "IPv4"}, nil},
		{"raw only", nil, raw, []string{"setcap cap_net_raw+p"}, []string{"ping_group_range"}},
		{"dgram only", dgram, nil, []string{"ping_group_range"}, []string{"setcap"}},
	} {
		err := newPermissionError(icmp.IPv4, tc.dgram, tc.raw)
		for _, target := range []error{ErrPermission, os.ErrPermission} {
			if !errors.Is(err, target) {
				t.Errorf("%s: errors.Is(err, %v) = false", tc.name, target)
			}
		}
		if tc.raw != nil && !errors.Is(err, syscall.EPERM) || tc.dgram != nil && !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s: the errnos are not wrapped: %v", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", tc.name, err, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q contains %q", tc.name, err, w)
			}
		}
	}
}

// TestListenRejects checks the argument validation that happens before any system call.
func TestListenRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    icmp.Family
		cfg  *Config
		want error
	}{
		{"family", icmp.Family(5), nil, ErrInvalidFamily},
		{"mode", icmp.IPv4, &Config{Mode: 3}, ErrInvalidMode},
		{"pmtu", icmp.IPv4, &Config{PMTU: 9}, ErrInvalidMode},
		{"v6 source on v4", icmp.IPv4, &Config{Source: netip.IPv6Loopback()}, ErrInvalidAddr},
		{"v4 source on v6", icmp.IPv6, &Config{Source: netip.MustParseAddr("127.0.0.1")}, ErrInvalidAddr},
	} {
		c, err := Listen(tc.f, tc.cfg)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Listen = %v, %v; want %v", tc.name, c, err, tc.want)
		}
	}
}
