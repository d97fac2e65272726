//go:build !linux

package rawsock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gping/gping/icmp"
)

// BUG(rawsock): Only Linux is implemented; elsewhere every function returns an error wrapping
// errors.ErrUnsupported.

type sysConn struct{}

func unsupported(op string) error {
	return fmt.Errorf("rawsock: %s: %w", op, errors.ErrUnsupported)
}

func listen(f icmp.Family, cfg *Config) (*Conn, error) {
	return nil, &net.OpError{Op: "listen", Net: netName(f, cfg.Mode), Err: unsupported("listen")}
}

func (c *Conn) close() error { return unsupported("close") }

func (c *Conn) writeTo([]byte, netip.Addr, *WriteOptions) error { return unsupported("write") }

func (c *Conn) readPacket([]byte, *Packet) error { return unsupported("read") }

// RawAllowed reports whether this process may open raw ICMP sockets; never here.
func RawAllowed() bool { return false }

// DropPrivileges gives up the process's privileges; not implemented here.
func DropPrivileges() error { return unsupported("drop privileges") }

// IdentShared reports whether another socket shares this socket's ident; not implemented here.
func (c *Conn) IdentShared() (bool, error) { return false, unsupported("ident check") }

// RecvBuffer returns the socket's receive buffer size; not implemented here.
func (c *Conn) RecvBuffer() (int, error) { return 0, unsupported("receive buffer") }

// Readable reports whether a read would return at once; not implemented here.
func (c *Conn) Readable() (bool, error) { return false, unsupported("poll") }
