package rawsock

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gping/gping/icmp"
)

// TestIdentShared: Linux lets a second ping socket bind an ident in use (and the last bound
// gets the replies); IdentShared must notice while that socket exists, and not before.
func TestIdentShared(t *testing.T) {
	for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
		t.Run(f.String(), func(t *testing.T) {
			c, ns := loopbackConn(t, f, Unprivileged)
			var shared bool
			var err error
			inNetns(t, ns, func() { shared, err = c.IdentShared() })
			if err != nil || shared {
				t.Fatalf("alone: shared %v, %v", shared, err)
			}
			inNetns(t, ns, func() {
				var fd int
				fd, err = bindIdent(f, c.ID())
				if err != nil {
					return
				}
				defer unix.Close(fd)
				shared, err = c.IdentShared()
			})
			if err != nil || !shared {
				t.Fatalf("with a second socket on ident %d: shared %v, %v", c.ID(), shared, err)
			}
		})
	}
}

func TestIdentSharedTable(t *testing.T) {
	table := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
   11: 00000000:551C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 242712 2 000000004645fa1e 0
   12: 0100007F:551D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 242713 2 000000004645fa1e 0
`)
	if shared, err := identShared(table, 0x551c, 242712); err != nil || shared {
		t.Errorf("own entry only: %v, %v", shared, err)
	}
	if shared, err := identShared(append(table, "   13: 00000000:551C 00000000:0000 07 00000000:00000000 00:00000000 00000000  65534        0 9 2 0 0\n"...), 0x551c, 242712); err != nil || !shared {
		t.Errorf("two on the ident: %v, %v", shared, err)
	}
	if _, err := identShared(table, 0x551c, 1); err == nil {
		t.Error("missing own inode: no error")
	}
}

// bindIdent opens a ping socket bound to ident and returns it open.
func bindIdent(f icmp.Family, ident uint16) (int, error) {
	domain, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(ident)})
	if f == icmp.IPv6 {
		domain, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ident)}
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, f.Protocol())
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
