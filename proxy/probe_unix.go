//go:build unix && !aix

package proxy

import (
	"io"
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

	// The state of sendAndAwait, kept here so that a call allocates
	// nothing.
	awaitFn func(fd uintptr) bool
	w       io.Writer
	out     []byte
	sent    bool
	werr    error
}

// newPeeker returns nil for a connection without a socket to peek at;
// such a connection always passes (a closed one is found when a request
// fails on it, and an idempotent one is replayed).
func newPeeker(c net.Conn) *peeker {
	rc := rawConn(c)
	if rc == nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = p.peek
	p.awaitFn = p.await
	return p
}

func (p *peeker) peek(fd uintptr) bool {
	p.open = peekSocket(fd, &p.b)
	return true // never wait for readability
}

func (p *peeker) alive() bool {
	if p == nil {
		return true
	}
	p.open = false
	return p.rc.Read(p.fn) == nil && p.open
}

// sendAndAwait writes a request's head with w and returns once the answer
// can be read, or once the wait fails (the read that follows meets the
// same deadline or close, and reports it as it always has).
//
// It saves a system call per upstream call. A plain Write then Read finds
// nothing on its first read, since the upstream has not answered yet, and
// only then waits. Waiting without that read is safe only if the wait was
// armed before the answer could come: Go's poller forgets a readiness
// that arrived before a read begins (prepareRead resets it), and with an
// edge-triggered epoll there would be no second notice. So the write
// happens inside the raw read, after the poller is armed.
func (p *peeker) sendAndAwait(w io.Writer, b []byte) error {
	if p == nil {
		_, err := w.Write(b)
		return err
	}
	p.w, p.out, p.sent, p.werr = w, b, false, nil
	_ = p.rc.Read(p.awaitFn)
	sent, err := p.sent, p.werr
	p.w, p.out, p.werr = nil, nil, nil
	if !sent {
		// The poller refused before the write (a deadline passed, the
		// connection was closed): the write meets the same error.
		_, err = w.Write(b)
	}
	return err
}

func (p *peeker) await(fd uintptr) bool {
	if p.sent {
		return true // readable: the answer, an end of stream or an error
	}
	p.sent = true
	_, p.werr = p.w.Write(p.out)
	return p.werr != nil
}

// socketHasBytes reports whether bytes wait in c's socket to be read. It
// peeks without taking the connection's read lock (Control, not Read), so
// it returns at once while another goroutine is blocked reading c.
func socketHasBytes(c net.Conn) bool {
	rc := rawConn(c)
	if rc == nil {
		return false
	}
	var n int
	var b [1]byte
	rc.Control(func(fd uintptr) {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}

// rawConn returns c's socket, or nil for a connection without one.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
