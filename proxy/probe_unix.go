//go:build unix

package proxy

import (
	"io"
	"net"
	"os"
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
	p.awaitFn = p.await
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

// idleReader reads a client connection by waiting for the poller first
// and reading after, where net's Read reads first and waits only when
// that read finds nothing. It serves net/http's background read (see
// guardConn.Read), which starts as a request's handler does and, on a
// connection kept alive, almost always finds nothing: waiting first saves
// that system call, one of about eight a proxied request makes.
//
// Waiting first is exact only for bytes that come after the wait is armed
// (Go's poller forgets a readiness from before a read begins). Bytes, or
// an end of stream, already in the socket wait for the next event or for
// net/http's abort of the read; the next request's read then finds them,
// so nothing is lost. That is the one difference from net's Read: a
// client that closed its side before its handler started is noticed when
// its answer is written, not at once.
type idleReader struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool
	armed bool
	p     []byte
	n     int
	err   error
}

// newIdleReader returns nil for a connection without a socket.
func newIdleReader(c net.Conn) *idleReader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &idleReader{rc: rc}
	r.fn = r.readReady
	return r
}

// read waits until c is readable (or its read deadline passes, or it is
// closed), then reads into p, with the results net's Read gives.
func (r *idleReader) read(p []byte) (int, error) {
	r.p, r.armed, r.n, r.err = p, false, 0, nil
	err := r.rc.Read(r.fn)
	n, rerr := r.n, r.err
	r.p = nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *idleReader) readReady(fd uintptr) bool {
	if !r.armed {
		r.armed = true
		return false // wait first
	}
	for {
		n, err := syscall.Read(int(fd), r.p)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // an event without bytes: wait again
		}
		r.n, r.err = max(n, 0), err
		return true
	}
}
