//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// peeker tells whether an idle upstream connection is still open: a
// non-blocking peek finds nothing to read. End of stream (the upstream
// closed it), an error, or bytes nobody asked for all mean it must not be
// used. It is built once per connection, so that a check allocates
// nothing.
type peeker struct {
	rc   syscall.RawConn
	fn   func(fd uintptr) bool
	open bool
	b    [1]byte
}

// newPeeker returns nil for a connection without a socket to peek at;
// such a connection always passes (a closed one is found when a request
// fails on it, and an idempotent one is replayed).
func newPeeker(c net.Conn) *peeker {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = p.peek
	return p
}

func (p *peeker) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR
	return true // never wait for readability
}

func (p *peeker) alive() bool {
	if p == nil {
		return true
	}
	p.open = false
	return p.rc.Read(p.fn) == nil && p.open
}
