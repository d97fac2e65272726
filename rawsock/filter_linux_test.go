//go:build linux

package rawsock

import (
	"slices"
	"testing"
)

// TestFilterMasks checks the filters with the kernel's own tests (raw.c icmp_filter,
// ipv6 raw.c icmpv6_filter): a type passes when its bit is clear.
func TestFilterMasks(t *testing.T) {
	pass4 := []uint8{0, 3, 11, 12}
	m4 := icmp4FilterMask()
	for typ := 0; typ < 32; typ++ {
		blocked := m4&(1<<typ) != 0
		if want := !slices.Contains(pass4, uint8(typ)); blocked != want {
			t.Errorf("ICMP_FILTER type %d: blocked = %v, want %v", typ, blocked, want)
		}
	}
	pass6 := []uint8{1, 2, 3, 4, 129}
	f6 := icmp6Filter()
	for typ := 0; typ < 256; typ++ {
		blocked := f6.Data[typ>>5]&(1<<(typ&31)) != 0
		if want := !slices.Contains(pass6, uint8(typ)); blocked != want {
			t.Errorf("ICMP6_FILTER type %d: blocked = %v, want %v", typ, blocked, want)
		}
	}
}
