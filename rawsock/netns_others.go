//go:build !linux

package rawsock

type netnsSys struct{}

func currentNetNS() (*NetNS, error) { return &NetNS{}, nil }

func (n *NetNS) close() error { return nil }

// do runs fn: other systems have no per-thread network namespaces.
func (n *NetNS) do(fn func() error) error { return fn() }
