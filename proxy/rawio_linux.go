//go:build linux && (amd64 || arm64)

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
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
// proxy's CPU at 3,000 requests/s (cmd/strangler-bench/PERFORMANCE.md,
// "Go's monitor thread"). The socket is non-blocking, so a read or write
// here never blocks and sysmon has nothing to retake from it. Everything
// else (file I/O, accept, connect) still goes through entersyscall and
// wakes sysmon as before;
// see wakeMonitor for the work that must stay preemptible.
//
// A goroutine that never has to wait (a body streamed between two peers
// faster than the proxy) would never park and never make a system call
// through the runtime; so busyOps reads, or writes, in a row that did not
// wait, within busyWindow, also wake the monitor, which can then preempt
// it.
//
// One goroutine reads at a time and one writes at a time, as net/http's
// server and our transports use a connection; the locks make it safe
// regardless, and cost about 20 ns uncontended.
type rawTCP struct {
	// The *net.TCPConn as a net.Conn: deadlines, addresses and Close. Its
	// ReadFrom and WriteTo are not promoted: they would bypass the raw
	// path (splice, or the net package's own reads and writes).
	net.Conn
	tc *net.TCPConn
	rc syscall.RawConn

	r, w rawDir // reads, writes
}

// rawDir is one direction of a rawTCP: its lock, the callback built once
// (so that a call allocates nothing) and the state it shares with it.
type rawDir struct {
	mu     sync.Mutex
	fn     func(fd uintptr) bool
	buf    []byte
	n      int // bytes moved
	err    syscall.Errno
	waited bool  // the call waited on the poller
	busy   int   // calls in a row that did not wait
	since  int64 // when the current run of busyOps of them began, as time since clockStart
}

// run makes one read (or write, with rc.Write) of p through the poller
// and returns what the callback recorded, then notes whether it waited.
func (d *rawDir) run(rc syscall.RawConn, write bool, p []byte) (int, syscall.Errno, error) {
	d.mu.Lock()
	d.buf, d.n, d.err, d.waited = p, 0, 0, false
	var err error
	if write {
		err = rc.Write(d.fn)
	} else {
		err = rc.Read(d.fn)
	}
	n, errno := d.n, d.err
	d.buf = nil
	if d.waited {
		d.busy = 0
	} else {
		d.noteBusy()
	}
	d.mu.Unlock()
	return n, errno, err
}

// busyOps reads, or writes, in a row that did not wait, within
// busyWindow, wake the monitor: a streaming copy of 32 KiB pieces gets
// there within about a millisecond. A connection serving requests does
// not, though some of its reads and writes never wait themselves (a
// response written at once; an answer read after the peeker waited for
// it): its goroutine waits elsewhere between them, and 64 requests on one
// connection take far longer than the window. A stream whose rounds are
// slow (a busy CPU, large pieces) misses the window, so every busyMax in
// a row wake it whatever the time: one system call per 256 requests of a
// connection at worst.
const (
	busyOps    = 64
	busyWindow = 10 * time.Millisecond
	busyMax    = 256
)

// noteBusy notes a call that did not wait, and wakes the monitor at the
// end of a dense or long run of them.
func (d *rawDir) noteBusy() {
	if d.busy%busyOps == 0 {
		d.since = int64(time.Since(clockStart))
	}
	d.busy++
	switch {
	case d.busy >= busyMax:
		d.busy = 0
		wakeMonitor()
	case d.busy%busyOps == 0 && int64(time.Since(clockStart))-d.since <= int64(busyWindow):
		d.busy = 0
		wakeMonitor()
	}
}

// CloseWrite half-closes the connection, for net/http and the guard.
func (c *rawTCP) CloseWrite() error { return c.tc.CloseWrite() }

// SetLinger lets guardConn.Close reset a connection.
func (c *rawTCP) SetLinger(sec int) error { return c.tc.SetLinger(sec) }

// SyscallConn reaches the socket, for the peek before reuse.
func (c *rawTCP) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

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
	r := &rawTCP{Conn: tc, tc: tc, rc: rc}
	r.r.fn = r.read
	r.w.fn = r.write
	return r
}

// maxRW bounds one system call, as the net package does (1 GiB).
const maxRW = 1 << 30

func (c *rawTCP) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p) // reports a closed connection, as before
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	n, errno, err := c.r.run(c.rc, false, p)
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
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.r.buf[0])), uintptr(len(c.r.buf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.r.waited = true
			return false // wait on the poller
		case 0:
			c.r.n = int(n)
		default:
			c.r.err = e
		}
		return true
	}
}

func (c *rawTCP) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Write(p) // reports a closed connection or a passed deadline, as before
	}
	raceBeforeWrite()
	n, errno, err := c.w.run(c.rc, true, p)
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
	for c.w.n < len(c.w.buf) {
		b := c.w.buf[c.w.n:]
		if len(b) > maxRW {
			b = b[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.w.waited = true
			return false // wait on the poller
		case 0:
			if n == 0 {
				return true // reported as a short write
			}
			c.w.n += int(n)
		default:
			c.w.err = e
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
