package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport is the upstream client of the hot path: a request without a
// body over plain HTTP/1.1 (most of a web application's traffic) is
// written and its answer read on the calling goroutine, on a connection
// from a per-upstream pool. Everything else (request bodies, upgrades,
// request trailers, Expect, TLS) goes to std, net/http's Transport.
//
// Why not http.Transport for all of it: it hands each request to a writer
// goroutine and the answer back from a reader goroutine (two channel
// hand-offs and a select per call), clones and re-validates headers, and
// keeps a goroutine parked on every idle connection. Profiled under the
// benchmark harness, that was about a quarter of the proxy's CPU per
// request. Its semantics are kept here: the same request head bytes
// (Host, then User-Agent, then the other fields sorted), the same response
// framing rules (see framing in h1read.go), a replay of an idempotent request
// on a fresh connection when a pooled one turns out closed, 1xx answers
// passed to httptrace's Got1xxResponse (so ReverseProxy forwards 103 Early
// Hints), cancellation with the request's context and
// timeouts.response_header.
type h1Transport struct {
	std        *http.Transport
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	respHeader time.Duration // 0: no limit
	read       time.Duration // timeouts.read, applied by the guard (upstreamConn.arm)
	idle       time.Duration // how long a pooled connection may wait; 0: no limit
	maxIdle    int           // per upstream address
	pools      sync.Map      // address (host:port) → *h1Pool
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fastEligible(req) {
		return t.std.RoundTrip(req)
	}
	return t.do(&h1Call{req: req, pool: t.pool(req.URL.Host)})
}

// h1Call is one call: a request of its own (RoundTrip), or a client's
// request forwarded as it is, without ReverseProxy (see forward).
type h1Call struct {
	req  *http.Request
	pool *h1Pool // the upstream address's connections
	// fwd, when set, writes req's head as forwarded to it, and 1xx
	// answers go to w.
	fwd *upstream
	w   http.ResponseWriter
	// deadline, when set, bounds the whole call (dial, write, answer and
	// body) with the connection's deadline instead of the request's
	// context: a shadow copy's timeout without a context, a timer and an
	// AfterFunc of its own on every call.
	deadline time.Time
}

func (t *h1Transport) do(c *h1Call) (*http.Response, error) {
	ctx := c.req.Context()
	p := c.pool
	pc := p.get()
	reused := pc != nil
	if !reused {
		var err error
		if pc, err = p.dial(ctx, c.deadline); err != nil {
			return nil, err
		}
	}
	resp, err := pc.roundTrip(c)
	if err == nil || !reused || !retryable(err, c.req) || ctx.Err() != nil || c.expired() {
		return resp, err
	}
	// The upstream had closed the pooled connection; it most likely closed
	// (or lost, by restarting) the others as well.
	p.closeIdle()
	first := err
	if pc, err = p.dial(ctx, c.deadline); err != nil {
		// The first attempt may have reached the upstream (an
		// Idempotency-Key makes a write retryable): its failure, not
		// this dial's, says what happened, and a fallback must not take
		// the call for one that reached nothing.
		return nil, first
	}
	return pc.roundTrip(c)
}

// expired tells whether the call's own deadline has passed.
func (c *h1Call) expired() bool {
	return !c.deadline.IsZero() && !time.Now().Before(c.deadline)
}

// CloseIdleConnections closes the pooled connections of both clients.
func (t *h1Transport) CloseIdleConnections() {
	t.std.CloseIdleConnections()
	t.pools.Range(func(_, v any) bool {
		v.(*h1Pool).closeIdle()
		return true
	})
}

// retire closes the idle connections of a transport no route uses any
// more, and those its calls in flight put back.
func (t *h1Transport) retire() {
	t.std.CloseIdleConnections()
	t.pools.Range(func(_, v any) bool {
		v.(*h1Pool).retire()
		return true
	})
}

func (t *h1Transport) pool(host string) *h1Pool {
	if p, ok := t.pools.Load(host); ok {
		return p.(*h1Pool)
	}
	addr := host
	if a, err := httpguts.PunycodeHostPort(host); err == nil {
		addr = a // dialled in ASCII, as net/http dials it
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		addr = net.JoinHostPort(stripBrackets(addr), "80")
	}
	p, _ := t.pools.LoadOrStore(host, &h1Pool{t: t, addr: addr})
	return p.(*h1Pool)
}

// removeZone drops the zone of an IPv6 literal host ("[fe80::1%eth0]:80"
// is "[fe80::1]:80"), as net/http does before writing a Host field.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndexByte(host, ']')
	if i < 0 {
		return host
	}
	j := strings.LastIndexByte(host[:i], '%')
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

func stripBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// fastEligible tells whether h1Transport takes the request itself.
// ReverseProxy sets a body-less request's Body to nil and keeps Connection
// only for an upgrade.
func fastEligible(req *http.Request) bool {
	u := req.URL
	return u.Scheme == "http" && u.Opaque == "" && u.User == nil && !req.Close &&
		req.Header["Connection"] == nil && plainRequest(req)
}

// replayable is net/http's rule for sending a request again after a pooled
// connection failed before answering: idempotent methods, or a request
// that carries an idempotency key.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// errNothingRead marks a failure on a connection before any byte of an
// answer arrived: the sign of a pooled connection the upstream had closed.
type errNothingRead struct{ err error }

func (e *errNothingRead) Error() string { return e.err.Error() }
func (e *errNothingRead) Unwrap() error { return e.err }

func retryable(err error, req *http.Request) bool {
	var nr *errNothingRead
	if !errors.As(err, &nr) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false // the upstream is slow, not gone
	}
	return replayable(req)
}

// h1Pool holds the idle connections to one upstream address, most
// recently used on top: under steady load the same few stay warm and the
// rest expire. Its lock is per upstream and held only to push or pop.
type h1Pool struct {
	t    *h1Transport
	addr string

	mu    sync.Mutex
	idle  []*h1Conn // oldest first
	reap  *time.Timer
	ready bool // reap created
	// retired: no installed route calls this host any more (a reload
	// dropped it). Calls of the old table still hold the pool; what they
	// put back is closed, not kept for the idle timeout.
	retired bool
}

// get takes the most recently used idle connection. Each taken
// connection is checked first with a non-blocking peek (one syscall, no
// wait): net/http's transport keeps a reader on every idle connection to
// notice a close, or an answer nobody asked for (a 408 before a close, or
// a response the upstream sent twice), and hand it to no request; the peek
// does the same at the moment it matters.
//
// It returns nil when no pooled connection is left: the caller dials.
func (p *h1Pool) get() *h1Conn {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if p.t.idle > 0 && now.Sub(pc.idleAt) >= p.t.idle || !pc.peek.alive() {
			pc.conn.Close()
			continue
		}
		return pc
	}
}

// dial opens a connection, within deadline when one is set.
func (p *h1Pool) dial(ctx context.Context, deadline time.Time) (*h1Conn, error) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	c, err := p.t.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	pc := &h1Conn{pool: p, conn: c, br: bufio.NewReaderSize(c, 4<<10), peek: newPeeker(c)}
	if uc, ok := c.(*upstreamConn); ok {
		pc.uc = uc
		uc.canceled = &pc.canceled
	}
	return pc, nil
}

func (p *h1Pool) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	p.mu.Lock()
	if p.retired || len(p.idle) >= p.t.maxIdle {
		p.mu.Unlock()
		pc.conn.Close()
		return
	}
	p.idle = append(p.idle, pc)
	if p.t.idle > 0 && !p.ready {
		p.ready = true
		p.reap = time.AfterFunc(p.t.idle, p.expire)
	}
	p.mu.Unlock()
}

// expire closes the connections that waited longer than the idle timeout
// and runs again when the oldest left would, so that an upstream's idle
// connections are released even when no request comes to take them.
func (p *h1Pool) expire() {
	now := time.Now()
	p.mu.Lock()
	k := 0
	for k < len(p.idle) && now.Sub(p.idle[k].idleAt) >= p.t.idle {
		k++
	}
	old := slices.Clone(p.idle[:k])
	p.idle = slices.Delete(p.idle, 0, k)
	if len(p.idle) > 0 {
		p.reap.Reset(p.idle[0].idleAt.Add(p.t.idle).Sub(now))
	} else {
		p.ready = false
	}
	p.mu.Unlock()
	for _, pc := range old {
		pc.conn.Close()
	}
}

func (p *h1Pool) closeIdle() {
	p.mu.Lock()
	old := p.idle
	p.idle = nil
	if p.ready {
		p.reap.Stop()
		p.ready = false
	}
	p.mu.Unlock()
	for _, pc := range old {
		pc.conn.Close()
	}
}

// retire closes the idle connections and every connection put back
// from now on.
func (p *h1Pool) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	p.closeIdle()
}

// h1Conn is one upstream connection, serving one request at a time.
type h1Conn struct {
	pool   *h1Pool
	conn   net.Conn
	br     *bufio.Reader
	wbuf   []byte // the request head being written
	hbuf   []byte // the response head being read
	idleAt time.Time
	peek   *peeker
	uc     *upstreamConn // conn under guard, or nil

	// Set for a call whose context can be canceled: cancel unblocks the
	// connection's reads and writes, and the connection is not reused.
	stop     func() bool
	canceled atomic.Bool
	// cancelFn is cancel as a func value, made once per connection: a
	// method value passed to AfterFunc allocates on every call.
	cancelFn func()
	// deadlined: the call set the connection's deadline (h1Call.deadline),
	// to be cleared before the connection is pooled again.
	deadlined bool
}

// aLongTimeAgo is a deadline in the past: it unblocks a pending read.
var aLongTimeAgo = time.Unix(1, 0)

func (pc *h1Conn) cancel() {
	pc.canceled.Store(true)
	pc.conn.SetDeadline(aLongTimeAgo)
}

// keepHead bounds the head buffers a pooled connection keeps between
// calls; a larger head is read into a buffer of its own.
const keepHead = 16 << 10

func (pc *h1Conn) roundTrip(c *h1Call) (*http.Response, error) {
	req := c.req
	ctx := req.Context()
	pc.canceled.Store(false)
	if ctx.Done() != nil {
		if pc.cancelFn == nil {
			pc.cancelFn = pc.cancel
		}
		pc.stop = context.AfterFunc(ctx, pc.cancelFn)
	}
	if !c.deadline.IsZero() {
		pc.conn.SetDeadline(c.deadline)
		pc.deadlined = true
	}
	if pc.uc != nil {
		pc.uc.limit = c.deadline // timeouts.read's bound
	}
	var b []byte
	var err error
	if c.fwd != nil {
		b, err = c.fwd.appendForwardHead(pc.wbuf[:0], req)
	} else {
		b, err = appendRequestHead(pc.wbuf[:0], req)
	}
	if cap(b) <= keepHead {
		pc.wbuf = b
	}
	if err != nil {
		pc.release(true) // nothing was written: the connection is as it was
		return nil, err
	}
	// timeouts.response_header, unless the call's own deadline comes
	// first. It is set before the write, which waits for the answer.
	t := pc.pool.t.respHeader
	headLimit := t > 0 && (c.deadline.IsZero() || time.Now().Add(t).Before(c.deadline))
	if headLimit {
		pc.conn.SetReadDeadline(time.Now().Add(t))
		if pc.canceled.Load() { // a cancel in between: its deadline was just overwritten
			pc.conn.SetReadDeadline(aLongTimeAgo)
		}
	}
	if err := pc.send(b); err != nil {
		pc.release(false)
		return nil, pc.failed(ctx, &errNothingRead{err})
	}
	var trace *httptrace.ClientTrace
	if c.w == nil {
		trace = httptrace.ContextClientTrace(ctx)
	}
	var resp *http.Response
	var body bodyFraming
	closeAfter := false // an interim answer asked to close the connection
	// Interim answers are as many as the upstream sends, as net/http's
	// transport takes them (a 102 every few seconds of a long WebDAV
	// call), within timeouts.response_header; those handed on to no one
	// are bounded together by the head limit, as it bounds them.
	dropped := 0
	for n1xx := 0; ; n1xx++ {
		resp, body, err = readResponse(pc.br, &pc.hbuf, req)
		headLen := len(pc.hbuf)
		if cap(pc.hbuf) > keepHead {
			pc.hbuf = nil
		}
		if err != nil {
			var nr *errNothingRead
			if n1xx > 0 && errors.As(err, &nr) {
				err = nr.err // a 1xx came: not a connection closed before the call
			}
			pc.release(false)
			return nil, pc.failed(ctx, err)
		}
		if resp.StatusCode >= 200 {
			resp.Close = resp.Close || closeAfter
			break
		}
		closeAfter = closeAfter || resp.Close
		if resp.StatusCode == http.StatusSwitchingProtocols {
			pc.release(false)
			return nil, fmt.Errorf("upstream answered %d where a final answer was expected", resp.StatusCode)
		}
		switch {
		case resp.StatusCode == http.StatusContinue:
		case c.w != nil:
			forward1xx(c.w, resp)
			continue
		case trace != nil && trace.Got1xxResponse != nil:
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				pc.release(false)
				return nil, err
			}
			continue
		}
		if dropped += headLen + 2; dropped > maxUpstreamHead { // with its empty line
			pc.release(false)
			return nil, fmt.Errorf("interim (1xx) answers larger than %d bytes in all", maxUpstreamHead)
		}
	}
	if headLimit {
		// Back to the call's own deadline, or none.
		pc.conn.SetReadDeadline(c.deadline)
		if pc.canceled.Load() { // the cancel's deadline may have been overwritten
			pc.conn.SetReadDeadline(aLongTimeAgo)
		}
	}
	if body.kind == bodyNone {
		resp.Body = http.NoBody
		pc.release(!resp.Close)
		return resp, nil
	}
	resp.Body = &h1Body{pc: pc, f: body, resp: resp}
	return resp, nil
}

// send writes the request head and waits until the answer can be read
// (see peeker.sendAndAwait), unless the guard holds bytes already read.
func (pc *h1Conn) send(b []byte) error {
	if u := pc.uc; u != nil && len(u.pend) > 0 {
		_, err := pc.conn.Write(b)
		return err
	}
	return pc.peek.sendAndAwait(pc.conn, b)
}

// failed returns the error of a call, the context's when it was canceled.
func (pc *h1Conn) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if pc.canceled.Load() {
		return context.Canceled
	}
	return err
}

// release ends a call: the connection goes back to the pool when the
// answer was read to its end and nothing forbids reuse, and is closed
// otherwise.
func (pc *h1Conn) release(reuse bool) {
	if pc.stop != nil {
		if !pc.stop() {
			reuse = false // canceled: the deadline is in the past
		}
		pc.stop = nil
	}
	if reuse && pc.br.Buffered() > 0 {
		reuse = false // bytes after the answer: no request asked for them
	}
	if u := pc.uc; u != nil && reuse && !u.between() {
		// The guard, reading the same bytes, does not see the answer
		// ended (it lost the framing, or holds bytes back): the next
		// answer on this connection might not be the next request's.
		reuse = false
	}
	if !reuse {
		pc.conn.Close()
		return
	}
	if pc.deadlined {
		pc.deadlined = false
		pc.conn.SetDeadline(time.Time{})
	}
	pc.pool.put(pc)
}

// appendRequestHead writes the request line and header fields as
// net/http's Request.Write does for a body-less request.
func appendRequestHead(b []byte, req *http.Request) ([]byte, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	ua, hasUA := defaultUserAgent, true
	if v, ok := req.Header["User-Agent"]; ok {
		ua, hasUA = "", len(v) > 0
		if hasUA {
			ua = v[0]
		}
	}
	b, err := appendRequestLine(b, req.Method, path, req.URL, host, ua)
	if err != nil {
		return b, err
	}
	var stack [32]string
	keys := stack[:0]
	for k := range req.Header {
		if !writtenApart(k) {
			keys = append(keys, k)
		}
	}
	return appendFields(b, req.Header, keys, nil)
}

// defaultUserAgent is net/http's, sent when a request has no User-Agent
// field at all (ReverseProxy sets an empty one, which sends none).
const defaultUserAgent = "Go-http-client/1.1"

// appendRequestLine writes the request line, Host, User-Agent (unless
// empty) and, as net/http does for a body-less POST, PUT or PATCH,
// "Content-Length: 0" (many servers want a length on those; on other
// methods net/http sends none, and some upstreams refuse a length on a
// TRACE).
func appendRequestLine(b []byte, method, path string, u *url.URL, host, ua string) ([]byte, error) {
	// As net/http writes it: an internationalized name in ASCII
	// (punycode), which is what the upstream's virtual hosts are named by,
	// and an IPv6 address without its zone, which names an interface of
	// this machine only. A host in ASCII returns at once.
	host, err := httpguts.PunycodeHostPort(host)
	if err != nil || !httpguts.ValidHostHeader(host) {
		return b, errors.New("invalid Host header")
	}
	host = removeZone(host)
	if method == "" || !httpguts.ValidHeaderFieldName(method) { // a method is a token
		return b, fmt.Errorf("invalid method %q", method)
	}
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	if ua != "" {
		if !httpguts.ValidHeaderFieldValue(ua) {
			return b, errors.New("invalid User-Agent")
		}
		b = append(b, "User-Agent: "...)
		b = append(b, textproto.TrimString(ua)...)
		b = append(b, "\r\n"...)
	}
	if method == "POST" || method == "PUT" || method == "PATCH" {
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return b, nil
}

// writtenApart tells the fields appendRequestLine writes, or that a
// body-less request must not carry.
func writtenApart(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// appendFields writes the fields named in keys, sorted (as net/http
// does), with their values from h, or from extra for the names h does not
// hold the value of (the forwarder's own fields). Names and values are
// checked as net/http's transport checks them: no field can smuggle a
// line break into the head.
func appendFields(b []byte, h http.Header, keys []string, extra func(k string) (string, bool)) ([]byte, error) {
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			return b, fmt.Errorf("invalid header field name %q", k)
		}
		if extra != nil {
			if v, ok := extra(k); ok {
				if !httpguts.ValidHeaderFieldValue(v) {
					return b, fmt.Errorf("invalid header field value for %q", k)
				}
				b = appendField(b, k, v)
				continue
			}
		}
		for _, v := range h[k] {
			if !httpguts.ValidHeaderFieldValue(v) {
				return b, fmt.Errorf("invalid header field value for %q", k)
			}
			b = appendField(b, k, textproto.TrimString(v))
		}
	}
	return append(b, "\r\n"...), nil
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}
