package proxy

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The guards: client connections are read by a strict framing parser
// before net/http sees them, and upstream connections are watched for
// responses whose framing two readers could disagree on. See limits.go for
// why, and framer.go for the parser.

// guardKey finds a request's guardConn in its context.
type guardKey struct{}

// maxPipelined bounds the verdicts queued for heads net/http has not
// served yet; a client that pipelines more is cut after the last. net/http
// reads at most its 4 KiB buffer ahead of the request it serves, and a
// head is at least 16 bytes ("A / HTTP/1.0" and two CRLFs), so fewer than
// 300 can be ahead: the bound is not reached through net/http, and is
// there so that the queue's size does not rest on that alone.
const maxPipelined = 1024

// inlineVerdicts is how many queued verdicts fit in the connection itself:
// only a client that pipelines more than that makes the queue allocate.
const inlineVerdicts = 16

// guardLinger is how long a connection cut after a refused request reads
// (and drops) what the client still sends before it is closed, so that the
// refusal is not lost to a TCP reset.
const guardLinger = 250 * time.Millisecond

// guardListener wraps the proxy's listener so that every connection is
// guarded (see guardConn).
func (s *Server) guardListener(ln net.Listener, tunnels *tunnelSet) *guardedListener {
	l := s.cfg.Limits
	return &guardedListener{
		Listener: ln,
		tunnels:  tunnels,
		// Past net/http's own limit (MaxHeaderBytes plus its 4 KiB read
		// buffer, plus what it may already hold of a pipelined head), it
		// answers 431 itself and the guard stops following.
		maxHead: int(l.MaxHeaderBytes) + 8<<10,
		stall:   time.Duration(l.StallTimeout),
		idle:    time.Duration(l.IdleTimeout),
	}
}

type guardedListener struct {
	net.Listener
	maxHead     int
	stall, idle time.Duration
	tunnels     *tunnelSet
	silent      silentConns
}

func (l *guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &guardConn{Conn: rawIO(c), stall: l.stall, idle: l.idle, tunnels: l.tunnels, f: framer{maxHead: l.maxHead}}
	l.silent.add(g)
	return g, nil
}

// tunnelSet holds the WebSocket upgrades in flight on a listener, from
// their handler's start (before the hijack, while Shutdown still tracks
// the connection) to its end, which comes when the tunnel closes.
// http.Server forgets a connection once it is hijacked, so its Shutdown
// would return with tunnels open and the process would cut them at once:
// Serve waits for them too, up to shutdown_timeout, as nginx's
// worker_shutdown_timeout does, then closes what is left.
type tunnelSet struct {
	mu      sync.Mutex
	conns   map[*guardConn]struct{}
	changed chan struct{} // closed when a tunnel ends, for drain; nil: nobody waits
}

func (t *tunnelSet) add(c *guardConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[*guardConn]struct{}{}
	}
	t.conns[c] = struct{}{}
}

func (t *tunnelSet) remove(c *guardConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[c]; !ok {
		return
	}
	delete(t.conns, c)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// drain waits until no tunnel is open or ctx ends, then closes the
// tunnels still open and returns how many it closed.
func (t *tunnelSet) drain(ctx context.Context) int {
	for {
		t.mu.Lock()
		if len(t.conns) == 0 {
			t.mu.Unlock()
			return 0
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		changed := t.changed
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.mu.Lock()
			open := slices.Collect(maps.Keys(t.conns))
			t.mu.Unlock()
			for _, c := range open {
				c.Conn.Close() // the tunnel's copy then ends and closes c
			}
			return len(open)
		}
	}
}

// guardConn is one client connection under guard. Reads run its framer
// over the bytes before net/http sees them; writes push a deadline of
// limits.stall_timeout ahead, so that a client that stops reading its
// response is disconnected (which cancels the upstream call).
//
// Reads come from one goroutine at a time (net/http's), so the framer
// needs no lock; the verdict queue is shared with admit and locked.
type guardConn struct {
	net.Conn
	stall   time.Duration
	lastArm atomic.Int64 // UnixNano when Write last pushed the write deadline; 0: not pushed since it was last set
	tunnel  atomic.Bool  // hijacked for a WebSocket: no longer HTTP
	tunnels *tunnelSet   // the listener's, which Serve drains at shutdown; nil outside Serve
	// idle closes a tunnel no data crossed, either way, for that long
	// (limits.idle_timeout), as nginx's proxy_read_timeout and Envoy's
	// stream idle timeout do; tunnelArm is when it was last pushed.
	idle      time.Duration
	tunnelArm atomic.Int64
	eof       atomic.Bool // after a cut, net/http serves the last head delivered: reads end
	// bodyArmed: the read deadline is the body's stall deadline
	// (armBody), so a timeout is a stalled body.
	bodyArmed atomic.Bool
	linger    atomic.Bool // a request was refused: see Close
	// http10: the request being served is HTTP/1.0 (admit's, read by
	// the handler's goroutine). reset: an answer to such a request was
	// cut mid-body: see Close.
	http10    bool
	reset     atomic.Bool
	resetting atomic.Bool // Close is waiting to reset
	resetNow  atomic.Bool // a write to an HTTP/1.0 client stalled: Close resets at once

	// silentIn holds this connection while it has not sent a byte
	// (quiet: connFresh), for shutdown (see silentConns); nil outside
	// Serve.
	silentIn *silentConns
	quiet    atomic.Int32

	// Read's own state.
	f      framer
	soft   bool // the last head asked for an Upgrade: what follows may be tunnel data
	softAt int  // delivered when soft was set: a bad byte before the next head is in that request's own body
	cut    bool // no byte after the last one delivered goes to net/http

	mu sync.Mutex
	// q is a ring of the verdicts on heads delivered and not yet admitted,
	// from qh, qn of them; it starts as qa and doubles when full.
	q         []verdict
	qa        [inlineVerdicts]verdict
	qh, qn    int
	delivered int  // heads handed to net/http that reach admit
	admitted  int  // calls of pop
	cutAt     int  // delivered when cut; 0: not cut
	desync    bool // a head reached admit that the guard did not deliver
	// The last request body that failed on the wire (cut as malformed, or
	// stalled), and the request's number (as delivered and admitted).
	failSeq int
	failErr *bodyError
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.cut {
		return c.readAfterCut(p)
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.silentIn != nil && c.quiet.Load() != connSpoke && !c.spoke() {
		// Closed at shutdown before it sent a byte: what came since is
		// not read (see silentConns).
		return 0, os.ErrDeadlineExceeded
	}
	tunnel := c.tunnel.Load()
	if n > 0 && tunnel {
		c.tunnelActive()
	}
	if n == 0 || tunnel {
		if err != nil && c.bodyArmed.Load() && isTimeout(err) {
			c.mu.Lock()
			c.failSeq, c.failErr = c.admitted, errBodyStalled
			c.mu.Unlock()
		}
		return n, err
	}
	k, cut := c.follow(p[:n])
	if !cut {
		return n, err
	}
	c.cut = true
	if k == 0 {
		return c.readAfterCut(p)
	}
	return k, nil
}

// readAfterCut drops what the client sends after the cut. It blocks like
// a silent client until net/http serves the last head that was delivered
// (so that requests pipelined before the bad one are not cancelled by an
// early end of stream), then reports the end.
func (c *guardConn) readAfterCut(p []byte) (int, error) {
	for !c.eof.Load() {
		if _, err := c.Conn.Read(p); err != nil {
			if c.eof.Load() {
				break
			}
			return 0, err
		}
	}
	return 0, io.EOF
}

// follow runs the framer over b and queues a verdict per head. It returns
// how many bytes of b net/http may have, and whether the stream is cut
// there.
func (c *guardConn) follow(b []byte) (int, bool) {
	for off := 0; off < len(b); {
		k, ev := c.f.feed(b[off:])
		off += k
		switch ev {
		case evHead:
			m := &c.f.m
			v := m.verdict()
			c.mu.Lock()
			queued := c.push(v)
			c.delivered++
			c.mu.Unlock()
			switch {
			case !queued:
				return off, c.cutHere()
			case v.reason != reasonOK && c.soft:
				// Perhaps the data of a tunnel that was set up; if it was
				// not, admit refuses this head and anything after it.
				c.f.lose()
			case v.reason != reasonOK:
				return off, c.cutHere()
			default:
				c.soft, c.softAt = m.upgrade, c.delivered
			}
		case evBad:
			// After an upgrade request, a bad byte may be tunnel data, but
			// not in that request's own body (no head since): that is cut
			// like any other, whatever Upgrade said.
			if c.soft && c.delivered != c.softAt {
				c.f.lose()
				continue
			}
			c.mu.Lock()
			c.failSeq, c.failErr = c.delivered, errBodyMalformed // the body of the last head delivered
			c.mu.Unlock()
			return off, c.cutHere()
		case evLost:
			return len(b), false
		}
	}
	return len(b), false
}

// push queues v, or reports false when maxPipelined are queued. Called
// with mu held.
func (c *guardConn) push(v verdict) bool {
	if c.q == nil {
		c.q = c.qa[:]
	}
	if c.qn == len(c.q) {
		if c.qn >= maxPipelined {
			return false
		}
		q := make([]verdict, 2*len(c.q))
		n := copy(q, c.q[c.qh:])
		copy(q[n:], c.q[:c.qh])
		c.q, c.qh = q, 0
	}
	c.q[(c.qh+c.qn)%len(c.q)] = v
	c.qn++
	return true
}

func (c *guardConn) cutHere() bool {
	c.mu.Lock()
	c.cutAt = c.delivered
	if c.admitted >= c.cutAt {
		c.eof.Store(true)
	}
	c.mu.Unlock()
	return true
}

// pop returns the verdict on the head of the request net/http is serving,
// whose request-target is uri. A request with no verdict, or one whose
// target is not the one the guard read, was not framed by the guard:
// refused, as is everything after it on the connection.
func (c *guardConn) pop(uri string) verdict {
	h := fnv32(uri)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.admitted++
	v := verdict{reason: reasonUnframed}
	if c.qn > 0 && !c.desync {
		v = c.q[c.qh]
		c.qh = (c.qh + 1) % len(c.q)
		c.qn--
		if v.targetLen != len(uri) || v.target != h {
			v.reason, c.desync = reasonUnframed, true
		}
	}
	if c.cutAt > 0 && c.admitted >= c.cutAt && !c.eof.Load() {
		c.eof.Store(true)
		c.Conn.SetReadDeadline(time.Unix(1, 0)) // wakes a read blocked in readAfterCut
	}
	return v
}

func (c *guardConn) Write(p []byte) (int, error) {
	if c.tunnel.Load() {
		c.tunnelActive()
	}
	if c.stall > 0 {
		// Pushing the deadline costs a timer update; doing it at most every
		// eighth of the stall timeout keeps every write at least 7/8 of it.
		now := time.Now()
		last := c.lastArm.Load()
		if d := now.UnixNano() - last; last == 0 || d < 0 || d >= int64(c.stall/8) {
			c.Conn.SetWriteDeadline(now.Add(c.stall))
			c.lastArm.Store(now.UnixNano())
		}
	}
	n, err := c.Conn.Write(p)
	if err != nil && c.http10 && !c.tunnel.Load() && isTimeout(err) {
		// An HTTP/1.0 client that took nothing for stall_timeout is cut
		// off mid-answer: reading on later, it would take what it got
		// before a plain close for the whole answer (see resetAfterSent).
		// It took nothing for that long: reset at once.
		c.resetNow.Store(true)
	}
	return n, err
}

// startTunnel arms the tunnel's idle deadline once the connection is
// hijacked (net/http has just cleared every deadline).
func (c *guardConn) startTunnel() {
	c.tunnel.Store(true)
	c.tunnelArm.Store(0)
	c.tunnelActive()
}

// tunnelActive pushes the tunnel's idle deadline ahead: data crossed it.
// The deadline is the read deadline of the client's side, whose reader
// ends the tunnel when it passes; it is pushed at most every eighth of
// idle, so a tunnel is closed after 7/8 to 8/8 of idle without data.
func (c *guardConn) tunnelActive() {
	if c.idle <= 0 {
		return
	}
	now := time.Now()
	last := c.tunnelArm.Load()
	if d := now.UnixNano() - last; last != 0 && d >= 0 && d < int64(c.idle/8) {
		return
	}
	c.tunnelArm.Store(now.UnixNano())
	c.Conn.SetReadDeadline(now.Add(c.idle))
}

// SetWriteDeadline and SetDeadline (net/http clears the write deadline
// after each response, and on hijack) make the next Write push its own.
func (c *guardConn) SetWriteDeadline(t time.Time) error {
	c.lastArm.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

func (c *guardConn) SetDeadline(t time.Time) error {
	c.lastArm.Store(0)
	c.bodyArmed.Store(false)
	err := c.Conn.SetDeadline(t)
	c.keepShut()
	return err
}

// SetReadDeadline is net/http's (and ResponseController's): it replaces
// a body's stall deadline.
func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.bodyArmed.Store(false)
	err := c.Conn.SetReadDeadline(t)
	c.keepShut()
	return err
}

// keepShut puts back the read deadline of now of a connection shut at
// shutdown (see silentConns), after net/http set its own. Checked after
// the set: shutSilent stores the state before it sets the deadline, so
// one of the two sets it last.
func (c *guardConn) keepShut() {
	if c.quiet.Load() == connShut {
		c.Conn.SetReadDeadline(time.Now())
	}
}

// armBody sets (or, with a zero t, clears) the stall deadline of the body
// being read.
func (c *guardConn) armBody(t time.Time) {
	c.bodyArmed.Store(!t.IsZero())
	c.Conn.SetReadDeadline(t)
}

// bodyFailed notes that the proxy refused the body of the request being
// served (past max_body), for bodyFailure.
func (c *guardConn) bodyFailed(e *bodyError) {
	c.mu.Lock()
	c.failSeq, c.failErr = c.admitted, e
	c.mu.Unlock()
}

// bodyFailure is why the body of the request being served failed on the
// wire, or was refused, or nil.
func (c *guardConn) bodyFailure() *bodyError {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failErr != nil && c.failSeq == c.admitted {
		return c.failErr
	}
	return nil
}

// CloseWrite lets net/http half-close the connection after an error
// answer, as it does on a bare *net.TCPConn.
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close, after a refusal, first half-closes and reads what the client
// still sends for a moment: closing a socket with unread data sends a
// reset, which can destroy the answer before the client reads it.
func (c *guardConn) Close() error {
	if c.silentIn != nil && c.quiet.Load() != connSpoke {
		c.silentIn.forget(c)
	}
	if c.reset.Swap(false) {
		c.resetting.Store(true)
		c.resetAfterSent()
		return c.Conn.Close()
	}
	if c.resetting.Load() || c.resetNow.Load() {
		// A second Close (http.Server.Close at the end of a shutdown's
		// grace) while the first waits: reset now, dropping what the
		// client did not take; the first's wait ends with the socket.
		// Or a client that stalled (resetNow).
		resetOnClose(c.Conn)
		return c.Conn.Close()
	}
	c.mu.Lock()
	cut := c.cutAt > 0
	c.mu.Unlock()
	if cut || c.linger.Load() {
		c.CloseWrite()
		c.Conn.SetReadDeadline(time.Now().Add(guardLinger))
		io.CopyN(io.Discard, c.Conn, 256<<10)
	}
	return c.Conn.Close()
}

// resetAfterSent makes the close a reset, once the client has taken what
// was written to it. An HTTP/1.0 client reads an answer without a length
// to the close: a plain close after a cut would hand it a truncated answer
// as a whole one (and a proxy in front speaking HTTP/1.0 upstream,
// nginx's default, would pass it on, even cache it); a reset tells it the
// answer broke. But a reset drops whatever the socket still holds (the
// part of the answer that came, a pipelining client's earlier answers),
// so it waits, polling, until the client has acknowledged all of it, for
// at most stall_timeout (a client that reads nothing for that long is cut
// off anyway). Where the queue cannot be read (not Linux), the close
// stays plain.
func (c *guardConn) resetAfterSent() {
	deadline := time.Now().Add(c.stall)
	for {
		n := unacked(c.Conn)
		if n < 0 {
			return
		}
		if n == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(resetPoll)
	}
	resetOnClose(c.Conn)
}

// resetOnClose makes c's close a reset.
func resetOnClose(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
}

// resetPoll is how often resetAfterSent looks at the send queue.
const resetPoll = 5 * time.Millisecond

// guardUpstream wraps a transport's dial so that every upstream connection
// is watched for ambiguous response framing (Content-Length with
// Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a bare LF, a folded
// line, an unsupported or repeated Transfer-Encoding, conflicting
// Content-Lengths). net/http's transport reads such a response one way and
// would reuse the connection, so that bytes another reading would take as
// part of it become the answer to the next request on the connection
// (response queue poisoning). The guard adds "Connection: close" to such a
// response's head, so the client gets the one response the transport read
// and the connection is not reused. (ReverseProxy removes that header
// before answering the client.)
//
// For net/http's transport (std), a failed write also waits a moment for
// an answer the upstream sent before it reset the connection (see
// upstreamConn.Write), and each write waits at most timeouts.send.
// Timeouts.read bounds the waits for an answer's body on both (see
// upstreamConn.arm).
func guardUpstream(dial func(ctx context.Context, network, addr string) (net.Conn, error), std bool, t Timeouts) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		u := &upstreamConn{Conn: rawIO(c), f: framer{response: true, maxHead: maxResponseHead}, holdWriteErr: std,
			read: time.Duration(t.Read)}
		if std {
			u.wf = &framer{maxHead: maxResponseHead}
			u.send = time.Duration(t.Send)
		}
		u.fresh.Store(true)
		return u, nil
	}
}

// maxResponseHead is how much of a response head the upstream guard
// follows; past it, it steps aside. The proxy's readers of answers (its
// own, and net/http's transport, whose default is 10 MiB) take at most
// maxUpstreamHead, half as much, so the guard never gives up on a head a
// reader takes (a review found net/http reusing a connection after a
// 1.1 MiB head the guard had stopped following).
const (
	maxResponseHead = 1 << 20
	maxUpstreamHead = maxResponseHead / 2
)

var closeField = []byte("Connection: close\r\n")

// upstreamConn is one upstream connection under guard. Its framer reads
// responses, and needs to know which answers a HEAD's (no body whatever
// their Content-Length says). On the direct path the first Write after a
// final answer ended begins the next request, whole. For net/http's
// transport, which may go on writing a body after its answer came (a 401
// or 413 before the upload was read), a write-side framer (wf) follows
// the requests to tell where each begins. Neither pipelines, so requests
// and responses alternate.
//
// Over a TLS upstream the guard sits above TLS (dialTLS) and reads the
// plaintext; it has no socket to peek at there (socketHasBytes).
type upstreamConn struct {
	net.Conn
	fresh atomic.Bool // a final answer ended, or none was asked for: a Write begins a request
	head  atomic.Bool // the pending request is a HEAD

	holdWriteErr bool         // a failed Write waits for an answer on its way (net/http's transport)
	lastRead     atomic.Int64 // when Read last returned bytes, as time since clockStart
	reading      atomic.Bool  // Read is in the socket's read, or has yet to note what it read

	f       framer // Read's own
	heldCR  bool   // a CR that may begin a head's final empty line, held back
	pend    []byte // output not yet returned
	broken  error  // the answer's body broke its framing: Read returns this after pend
	heldErr error  // the socket's error, returned once pend is

	// Net/http's transport (holdWriteErr) may go on writing a request's
	// body after its answer came (an upstream that answers a 401 or 413
	// before reading it): a Write after an answer is not always a new
	// request. wf, Write's own, follows the requests written to tell;
	// wlost says it stopped following them, and the next final answer is
	// then marked "Connection: close". The direct path writes a request
	// in one Write and no body, so fresh tells it.
	wf    *framer
	wlost atomic.Bool

	// timeouts.read (see arm), the reader's like f. answering: a final
	// answer's head was read and its body has not ended. armed: the
	// socket's read deadline is the body's. limit is the call's own
	// deadline, which the body's never passes (the direct path's shadow
	// copies); canceled is the direct path's cancel, whose deadline in
	// the past must not be overwritten.
	read      time.Duration
	answering bool
	armed     bool
	limit     time.Time
	canceled  *atomic.Bool

	// timeouts.send, for net/http's transport (see boundWrite). answered:
	// the request being written has its final answer (or a 101): its
	// writes are no longer bounded. tunnel: a 101 came, what follows is
	// no request and answered stays. wArmed: a write deadline is set (the
	// writer's).
	send     time.Duration
	answered atomic.Bool
	tunnel   atomic.Bool
	wArmed   bool
}

// errBrokenBody ends an answer whose chunked body broke the grammar. The
// head went through as it was, so the close cannot be asked for in it;
// net/http may read such a body to an end the guard does not see, and
// would reuse the connection past it. Failing the read ends the
// connection instead, as the direct path's reader does for the same bytes.
var errBrokenBody = errors.New("upstream answer's chunked body broke the HTTP/1.1 grammar")

// SyscallConn reaches the socket, for h1Transport's check of an idle
// connection (a peek, which the framer does not see).
func (c *upstreamConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// between reports whether the guard sees the connection between answers:
// every answer it read ended, and it holds nothing back.
func (c *upstreamConn) between() bool {
	return c.f.state == fsStart && len(c.pend) == 0 && !c.heldCR
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.wf != nil {
		c.followRequests(p)
	} else if c.fresh.Swap(false) {
		c.head.Store(len(p) >= 5 && string(p[:5]) == "HEAD ")
	}
	if c.send > 0 {
		c.boundWrite()
	}
	n, err := c.Conn.Write(p)
	if err != nil && c.holdWriteErr && !errors.Is(err, net.ErrClosed) {
		// (Closed here, by the transport: no answer is on its way.)
		c.awaitAnswer(isTimeout(err))
	}
	return n, err
}

// boundWrite applies timeouts.send (nginx's proxy_send_timeout) to the
// write about to be made: an upstream that stops taking a request's body,
// and does not answer, held the call for good, since net/http's
// response_header timer starts only once the body is written, and the
// client's stall_timeout only bounds reads of the client that nobody
// makes while the write waits. The deadline is set before each write, so
// only a wait on the upstream counts, never a slow client. Once the
// answer came, the rest of the body is not bounded (an upstream may
// answer, and stream its answer, before it reads an upload; net/http
// then closes the connection at the answer's end), nor a tunnel's writes
// (limits.idle_timeout's): see answer. (The direct path writes no body,
// under its call's own deadlines.)
func (c *upstreamConn) boundWrite() {
	if c.answered.Load() {
		if c.wArmed {
			c.Conn.SetWriteDeadline(time.Time{})
			c.wArmed = false
		}
		return
	}
	c.Conn.SetWriteDeadline(time.Now().Add(c.send))
	c.wArmed = true
	if c.answered.Load() {
		// The answer came in between, and answer's clearing may have
		// come before this deadline.
		c.Conn.SetWriteDeadline(time.Time{})
	}
}

// answer notes, on the reader's side, that the request being written has
// its final answer: a write waiting under timeouts.send waits no more
// (see boundWrite).
func (c *upstreamConn) answer() {
	if c.send > 0 && !c.answered.Swap(true) {
		c.Conn.SetWriteDeadline(time.Time{})
	}
}

// followRequests runs the write side's framer over p: where a request
// begins, it notes whether it is a HEAD (whose answer has no body). The
// transport writes a head from one buffer, so its first Write holds the
// method. A request the framer cannot follow (an upgrade, a head it
// refuses) marks the connection's next final answer.
func (c *upstreamConn) followRequests(p []byte) {
	for off := 0; off < len(p) && c.wf.state != fsLost; {
		if c.wf.state == fsStart {
			if !c.tunnel.Load() {
				c.answered.Store(false) // a request begins
			}
			c.head.Store(len(p)-off >= 5 && string(p[off:off+5]) == "HEAD ")
		}
		k, ev := c.wf.feed(p[off:])
		off += k
		if ev == evBad { // a chunk line or trailer; a bad head and evLost leave it lost already
			c.wf.lose()
		}
	}
	if c.wf.state == fsLost {
		c.wlost.Store(true)
	}
}

// clockStart makes times monotonic durations that fit an atomic.Int64.
var clockStart = time.Now()

// Bounds of awaitAnswer's wait: for the transport's reader to take bytes
// waiting in the socket, and for it to hand over an answer it has read.
const (
	answerWait      = time.Second
	answerHandOver  = 50 * time.Millisecond
	answerWaitCheck = time.Millisecond
)

// awaitAnswer holds a failed write's error while an answer is on its way.
// An upstream that refuses an upload answers before reading the body (a
// 413, a 401) and closes; the body's next bytes meet a reset. net/http's
// transport, told of the failed write while its reader holds the answer,
// takes whichever comes first and mostly returns the write error
// (golang/go#51109): the client got a 502 for an upload the upstream
// answered, counted as a reset, and enough of them ejected the upstream.
// Held back, the error comes after the answer, which the transport then
// returns; the connection is not reused, since the transport sees the
// write fail before it would pool it.
//
// The answer may still be in the socket, or just read from it and not yet
// noted: on a busy CPU the reader's goroutine waits to be scheduled long
// after the bytes came (measured here under the race detector: often over
// 50 ms, once 250 ms). So the error is held, up to answerWait, while bytes
// wait in the socket (a peek) or the reader is inside its read: after a
// reset it comes out, with the answer or with the end of the connection.
// If the reader took bytes less than answerHandOver ago, the error waits
// until then, while the transport parses the head and hands it over
// (microseconds when it runs). This costs nothing unless a write fails;
// it polls, since a failed write is rare and a channel would cost every
// connection.
//
// A write that failed on timeouts.send (timeout) met an upstream that
// took nothing for that long: its reader, waiting for the answer, is
// inside its read the whole time, and would hold the 504 a second more.
// There, a read in progress is waited for only answerHandOver.
func (c *upstreamConn) awaitAnswer(timeout bool) {
	now := time.Now()
	deadline, readingUntil := now.Add(answerWait), now.Add(answerWait)
	if timeout {
		readingUntil = now.Add(answerHandOver)
	}
	for {
		now = time.Now()
		if !now.Before(deadline) || !(c.reading.Load() && now.Before(readingUntil) || socketHasBytes(c.Conn)) {
			break
		}
		time.Sleep(answerWaitCheck)
	}
	if d := time.Duration(c.lastRead.Load()) + answerHandOver - time.Since(clockStart); d > 0 {
		time.Sleep(d)
	}
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	if len(c.pend) > 0 {
		n := copy(p, c.pend)
		c.pend = c.pend[n:]
		return n, nil
	}
	if c.broken != nil {
		return 0, c.broken
	}
	if err := c.heldErr; err != nil {
		c.heldErr = nil
		return 0, err
	}
	for {
		if c.answering && c.read > 0 {
			c.arm()
		}
		if c.holdWriteErr {
			c.reading.Store(true)
		}
		n, err := c.Conn.Read(p)
		if c.holdWriteErr {
			if n > 0 {
				c.lastRead.Store(int64(time.Since(clockStart)))
			}
			c.reading.Store(false)
		}
		if n == 0 || c.f.state == fsLost {
			return n, err
		}
		c.f.headReq = c.head.Load()
		if c.wlost.Load() {
			c.f.taint = true
		}
		k := c.process(p, n)
		if c.armed && !c.answering {
			c.disarm()
		}
		if err != nil && len(c.pend) > 0 {
			// The end of the output waits in pend (TLS returns the last
			// bytes with io.EOF): the error comes after it.
			c.heldErr, err = err, nil
		}
		if c.f.state == fsStart && c.f.m.status >= 200 {
			c.fresh.Store(true) // not after a 1xx: the request's body may follow
		}
		if k == 0 && c.broken != nil {
			return 0, c.broken
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// arm bounds the socket read about to be made, in an answer's body, to
// timeouts.read (but never past the call's own deadline): an upstream
// that sends its head and then stalls is cut there, as nginx's
// proxy_read_timeout does, instead of holding the client and both
// connections until one of them gives up. The deadline is set before
// each read that waits on the socket, not once for the body: a client
// reading slowly leaves the answer waiting in the socket, which is no
// stall of the upstream's. An answer whose head and body come in one
// read, most of them, never arms it.
func (c *upstreamConn) arm() {
	by := time.Now().Add(c.read)
	if !c.limit.IsZero() && c.limit.Before(by) {
		by = c.limit
	}
	c.Conn.SetReadDeadline(by)
	c.armed = true
	c.keepCancel()
}

// disarm, at the end of an answer's body, leaves the connection's read
// deadline as the caller set it: none between answers (net/http's
// transport peeks at its idle connections; a deadline left there would
// fail them), the call's own on the direct path.
func (c *upstreamConn) disarm() {
	c.Conn.SetReadDeadline(c.limit)
	c.armed = false
	c.keepCancel()
}

// keepCancel restores a cancel's deadline that a deadline just set may
// have overwritten (h1Conn.cancel stores the flag before it sets the
// deadline: either its deadline comes after ours or we see the flag).
func (c *upstreamConn) keepCancel() {
	if c.canceled != nil && c.canceled.Load() {
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

// process runs the framer over the n bytes read into p and returns how
// many bytes p holds for the transport, adding "Connection: close" before
// the final empty line of an ambiguous head. A CR at the start of a head
// line is held back until the next read shows whether it begins that
// final line, since the field must go before it.
func (c *upstreamConn) process(p []byte, n int) int {
	b := p[:n]
	inject := -2 // where closeField goes in b; -1: before the held CR
	for off := 0; off < len(b); {
		k, ev := c.f.feed(b[off:])
		if ev == evHead {
			// A final answer's body follows, framed or read to the close;
			// a 101's tunnel is no answer's body (limits.idle_timeout).
			tunnel := c.f.m.status == http.StatusSwitchingProtocols
			c.answering = c.f.m.status >= 200
			if tunnel {
				c.tunnel.Store(true)
			}
			if c.answering || tunnel {
				c.answer()
			}
		}
		if ev == evHead && c.f.m.ambiguous {
			if inject = c.f.emptyAt; inject >= 0 {
				inject += off
			}
			break // the framer is lost: the rest passes as it is
		}
		off += k
		if ev == evBad {
			c.f.lose()
			c.broken = errBrokenBody
			n, b = off, b[:off] // what came before the break passes
			break
		}
		if ev == evLost {
			c.f.lose()
			break
		}
	}
	if c.f.state == fsStart {
		c.answering = false // the answer ended (or had no body)
	}
	hold := c.f.state == fsEndLF || c.f.state == fsLenientCR
	if inject == -2 && !c.heldCR && !hold {
		return n
	}
	out := make([]byte, 0, n+len(closeField)+1)
	if c.heldCR {
		if inject == -1 {
			out = append(out, closeField...)
		}
		out = append(out, '\r')
	}
	if inject >= 0 {
		out = append(out, b[:inject]...)
		out = append(out, closeField...)
		out = append(out, b[inject:]...)
	} else {
		out = append(out, b...)
	}
	if hold {
		out = out[:len(out)-1]
	}
	c.heldCR = hold
	k := copy(p, out)
	c.pend = out[k:]
	return k
}
