//go:build linux && (amd64 || arm64)

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawTCP is a TCP connection whose reads and writes skip the Go runtime's
// system-call bookkeeping (entersyscall and exitsyscall), while still
// waiting on Go's network poller, holding the socket's read and write locks
// and meeting its deadlines, through syscall.RawConn.
//
// Why: at a steady, moderate rate the proxy's one P idles between
// requests, and Go's monitor thread (sysmon) then parks. The next system
// call made through entersyscall wakes it, and it polls every 20 µs until
// the P idles again: per request, a wake-up of another thread, its sleeps
// and context switches, which perf measured at about a third of the
// proxy's CPU at 3,000 requests/s (README, "Go's monitor thread"). The
// socket is non-blocking, so a read or write here never blocks and sysmon
// has nothing to retake from it. Everything else (file I/O, accept,
// connect) still goes through entersyscall and wakes sysmon as before;
// see wakeMonitor for the CPU-bound work that must stay preemptible.
//
// One goroutine reads at a time and one writes at a time, as net/http's
// server and our transports use a connection; the locks make it safe
// regardless, and cost about 20 ns uncontended.
type rawTCP struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu  sync.Mutex
	rfn  func(fd uintptr) bool
	rbuf []byte
	rn   int
	rerr syscall.Errno

	wmu  sync.Mutex
	wfn  func(fd uintptr) bool
	wbuf []byte
	wn   int
	werr syscall.Errno
}

// rawIO returns c with raw reads and writes where it is a TCP connection,
// and c itself otherwise.
func rawIO(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCP{TCPConn: tc, rc: rc}
	r.rfn = r.read
	r.wfn = r.write
	return r
}

// maxRW bounds one system call, as the net package does (1 GiB).
const maxRW = 1 << 30

func (c *rawTCP) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.rfn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	raceReadDone(p, n, err == nil && errno == 0)
	switch {
	case err != nil:
		return 0, c.opError("read", unwrapOp(err))
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawTCP) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait on the poller
		case 0:
			c.rn = int(n)
		default:
			c.rerr = e
		}
		return true
	}
}

func (c *rawTCP) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	raceBeforeWrite()
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.wfn)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	c.wmu.Unlock()
	raceWriteDone(p, n)
	switch {
	case err != nil:
		return n, c.opError("write", unwrapOp(err))
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	case n < len(p):
		return n, c.opError("write", io.ErrUnexpectedEOF)
	}
	return n, nil
}

func (c *rawTCP) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		if len(b) > maxRW {
			b = b[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait on the poller
		case 0:
			if n == 0 {
				return true // reported as a short write
			}
			c.wn += int(n)
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// opError gives an error the shape the net package's own reads and
// writes give, so that net/http and the proxy classify it alike (a
// timeout, a closed connection, a reset).
func (c *rawTCP) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// unwrapOp takes the poller's error (a deadline, a closed connection) out
// of RawConn's "raw-read" or "raw-write" wrapping.
func unwrapOp(err error) error {
	if oe, ok := err.(*net.OpError); ok {
		return oe.Err
	}
	return err
}

// wakeMonitor wakes Go's monitor thread if it is parked, before work that
// may hold the CPU past the runtime's 10 ms time slice (a comparison of
// large or compressed answers). With raw I/O nothing else may wake it
// while the process serves only raw sockets, and a parked monitor
// preempts nothing: on one P, such work would hold every request until it
// ended. A system call made through the runtime's bookkeeping wakes it
// (entersyscall); getpid is the cheapest.
func wakeMonitor() {
	syscall.Syscall(syscall.SYS_GETPID, 0, 0, 0)
}

// peekSocket reports whether a non-blocking peek at fd finds the
// connection open with nothing to read (see peeker).
func peekSocket(fd uintptr, b *[1]byte) bool {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e == syscall.EAGAIN || e == syscall.EWOULDBLOCK || e == syscall.EINTR
}
