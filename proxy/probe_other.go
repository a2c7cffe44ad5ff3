//go:build !unix || aix

package proxy

import (
	"io"
	"net"
)

// peeker cannot peek at a socket here: a closed connection is found when
// a request fails on it (and an idempotent one is replayed).
type peeker struct{}

func newPeeker(net.Conn) *peeker { return nil }

func (*peeker) alive() bool { return true }

func (*peeker) sendAndAwait(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// socketHasBytes cannot peek here: a failed write waits only for what the
// reader has already taken.
func socketHasBytes(net.Conn) bool { return false }
