//go:build !linux

package netlab

import (
	"errors"
	"net/netip"
)

// Do is only implemented on Linux; New skips every test elsewhere, so no NS
// exists to call it on.
func (n *NS) Do(fn func() error) error {
	return errors.ErrUnsupported
}

type localWatch struct{}

func (n *NS) watchLocal6() (*localWatch, error) { return nil, errors.ErrUnsupported }

func (w *localWatch) wait(want []netip.Addr) error { return errors.ErrUnsupported }

func (w *localWatch) close() {}
