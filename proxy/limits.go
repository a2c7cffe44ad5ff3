package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// This file is the proxy's edge hardening: limits on slow and large
// requests, and the checks that keep hostile requests from getting past
// the proxy. The request path calls five hooks, in this order: the
// listener's guard (guardListener) sees every byte a client sends before
// net/http parses it; admit checks the parsed request against what the
// guard saw and against the header limits, and normalizes its path;
// limitBody bounds the body; recoverPanic turns a panic into a 500.
//
// Why a guard under net/http: the server accepts some requests whose
// framing other HTTP implementations read differently, and the handler
// cannot tell them from honest ones, because net/http has already fixed
// them up: it deletes a Content-Length sent beside Transfer-Encoding,
// ignores Transfer-Encoding in HTTP/1.0, ends lines at a bare LF, and joins
// folded lines. A front proxy that reads such a request otherwise hides a
// second request inside the first (request smuggling). The guard reads the
// raw bytes with a strict parser of HTTP/1.1 framing (RFC 9112), hands
// net/http only what that parser accepts, and queues one verdict per
// request head for admit. A bad head is answered 400 (or 501) and the
// connection is closed: net/http never receives a byte after it.

// applyLimits sets the server-wide timeouts and sizes, and the hooks that
// let admit find a connection's guard.
func (s *Server) applyLimits(srv *http.Server) {
	l := s.cfg.Limits
	srv.ReadHeaderTimeout = time.Duration(l.ReadHeaderTimeout)
	srv.IdleTimeout = time.Duration(l.IdleTimeout)
	// net/http allows 4 KiB more than this (its read buffer); admit
	// enforces the exact figure on what the guard counted.
	srv.MaxHeaderBytes = int(l.MaxHeaderBytes)
	connContext, connState := srv.ConnContext, srv.ConnState
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connContext != nil {
			ctx = connContext(ctx, c)
		}
		if g, ok := c.(*guardConn); ok {
			ctx = context.WithValue(ctx, guardKey{}, g)
		}
		return ctx
	}
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if g, ok := c.(*guardConn); ok && st == http.StateHijacked {
			// A WebSocket upgrade went through: what follows is the
			// tunnel's data, not HTTP, closed when idle.
			g.startTunnel()
		}
		if connState != nil {
			connState(c, st)
		}
	}
}

// A reason why a request is refused before it is routed.
type reason uint8

const (
	reasonOK reason = iota
	reasonStartLine
	reasonLineEnd
	reasonHeaderName
	reasonHeaderValue
	reasonFolding
	reasonCLAndTE
	reasonContentLength
	reasonTransferEncoding
	reasonTEInHTTP10
	reasonUnframed
)

var reasonText = [...]string{
	reasonOK:               "",
	reasonStartLine:        "malformed request line",
	reasonLineEnd:          "bare CR or LF in the request head",
	reasonHeaderName:       "malformed header name",
	reasonHeaderValue:      "control character in a header value",
	reasonFolding:          "folded header line",
	reasonCLAndTE:          "both Content-Length and Transfer-Encoding",
	reasonContentLength:    "invalid or conflicting Content-Length",
	reasonTransferEncoding: "unsupported Transfer-Encoding",
	reasonTEInHTTP10:       "Transfer-Encoding in an HTTP/1.0 request",
	reasonUnframed:         "request framing not verified",
}

func (r reason) status() int {
	if r == reasonTransferEncoding {
		return http.StatusNotImplemented // as net/http answers it
	}
	return http.StatusBadRequest
}

// verdict is what the guard read of one request head.
type verdict struct {
	reason     reason
	underscore bool // a header name has an underscore
	headBytes  int  // request line, headers and the empty line
	lines      int  // header lines
	target     uint32
	targetLen  int
}

// admit checks a request before routing; it answers and returns false for
// a request that must not be forwarded. It resolves the path's dot
// segments (see normalizePath) so that the route is matched on the path
// the upstream will receive.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, t *table, start time.Time) bool {
	var v verdict
	if g, ok := r.Context().Value(guardKey{}).(*guardConn); ok {
		v = g.pop(r.RequestURI)
		g.http10 = r.ProtoMajor == 1 && r.ProtoMinor == 0
	} else {
		v = inspectHeaders(r) // served without Serve (tests, embedding): no guard
	}
	normalizePath(r.URL)
	l := &s.cfg.Limits
	var status int
	var why string
	switch {
	case v.reason != reasonOK:
		status, why = v.reason.status(), reasonText[v.reason]
	case dotWithParameter(r.URL):
		status, why = http.StatusBadRequest, "dot segment with a path parameter"
	case v.headBytes > int(l.MaxHeaderBytes):
		status, why = http.StatusRequestHeaderFieldsTooLarge,
			"request headers over max_header_bytes ("+strconv.Itoa(int(l.MaxHeaderBytes))+" bytes)"
	case v.lines > l.MaxHeaderCount:
		status, why = http.StatusRequestHeaderFieldsTooLarge,
			"more request headers than max_header_count ("+strconv.Itoa(l.MaxHeaderCount)+")"
	case v.underscore && l.UnderscoreHeaders == "reject":
		status, why = http.StatusBadRequest, "header name with an underscore"
	case v.underscore && l.UnderscoreHeaders == "drop":
		// As nginx does by default: an upstream that maps header names to
		// variables (CGI, PHP, WSGI) reads X_Forwarded_For as
		// X-Forwarded-For, which the client must not be able to set.
		for k := range r.Header {
			if strings.IndexByte(k, '_') >= 0 {
				delete(r.Header, k)
			}
		}
	}
	if status == 0 {
		return true
	}
	rt := t.match(r)
	s.refuse(w, r, rt, status, why)
	s.record(r, rt.refuser, status, time.Since(start), t.cfg.AccessLog)
	return false
}

// inspectHeaders is the verdict for a request that no guard read: the
// header limits counted on the parsed header.
func inspectHeaders(r *http.Request) verdict {
	v := verdict{lines: 1} // Host, which net/http takes out of Header
	for k, vals := range r.Header {
		v.lines += len(vals)
		if strings.IndexByte(k, '_') >= 0 {
			v.underscore = true
		}
	}
	return v
}

// refuse answers a request the proxy will not forward, naming the route
// (rt, or the one the request matches) and the reason, and closes the
// connection: what the client sends next cannot be trusted to be a new
// request.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rt *route, status int, why string) {
	if rt == nil {
		rt = s.table.Load().match(r)
	}
	s.log.Debug("request refused", "route", rt.name, "status", status, "reason", why, "remote", r.RemoteAddr)
	if rec, ok := w.(*recorder); ok {
		rec.servedBy = rt.refuser // counted and logged as the proxy's answer (finish)
	}
	w.Header().Set("Connection", "close")
	writeError(w, status, "route "+rt.name+": "+why)
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	// net/http would wait for up to 256 KiB of the unread body before
	// closing, from a client that may be waiting for 100 Continue, or not
	// mean to send it. What it has already read is enough.
	if g, ok := r.Context().Value(guardKey{}).(*guardConn); ok {
		g.linger.Store(true)
		g.SetReadDeadline(time.Now())
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now())
}

// limitBody enforces the route's max_body and the stall timeout on the
// request body. A body declared larger than max_body is refused with 413
// before anything reaches an upstream; one that grows past it (chunked) is
// cut there: the upstream call is aborted and, if no response has started,
// the client is answered 413 (answerBodyError). A client that sends no
// body byte for stall_timeout gets the same treatment with 408.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request, rt *route) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true // no allocation for the common case
	}
	limit := int64(rt.cfg.MaxBody)
	if limit == 0 {
		limit = int64(s.cfg.Limits.MaxBody)
	}
	stall := time.Duration(s.cfg.Limits.StallTimeout)
	if limit > 0 && r.ContentLength > limit {
		s.refuse(w, r, rt, http.StatusRequestEntityTooLarge, tooLarge(limit))
		return false
	}
	g, _ := r.Context().Value(guardKey{}).(*guardConn)
	r.Body = &bodyLimiter{body: r.Body, w: w, g: g, limit: limit, stall: stall}
	return true
}

func tooLarge(limit int64) string {
	return "request body over max_body (" + strconv.FormatInt(limit, 10) + " bytes)"
}

// bodyError is why the proxy stopped passing a request body on. The
// transport aborts the upstream call with it, and answerBodyError turns it
// into the client's answer.
type bodyError struct {
	status int
	reason string
}

func (e *bodyError) Error() string { return "request body: " + e.reason }

var (
	errBodyStalled   = &bodyError{http.StatusRequestTimeout, "request body stalled (no byte for stall_timeout)"}
	errBodyMalformed = &bodyError{http.StatusBadRequest, "malformed or truncated request body"}
)

// bodyLimiter passes a request body on up to its limit, pushing the
// connection's read deadline stall_timeout ahead as bytes arrive.
type bodyLimiter struct {
	body  io.ReadCloser
	w     http.ResponseWriter
	g     *guardConn // nil when served without Serve
	limit int64      // 0: unlimited
	n     int64
	stall time.Duration
	armed time.Time // when the read deadline was last pushed; zero: not set
	err   error
	eof   atomic.Bool // the body was read to its end (an upstream call may read it on a transport goroutine)
	// refused: the proxy stopped passing the body on (err is a
	// *bodyError), read as the handler returns (boundUnreadBody).
	refused atomic.Bool
}

func (b *bodyLimiter) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.limit > 0 {
		// One byte past the limit tells a body at the limit from one over it.
		if left := b.limit - b.n + 1; int64(len(p)) > left {
			p = p[:left]
		}
	}
	if b.stall > 0 {
		if now := time.Now(); b.armed.IsZero() || now.Sub(b.armed) >= b.stall/8 {
			b.setDeadline(now.Add(b.stall))
			b.armed = now
		}
	}
	n, err := b.body.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		n -= int(b.n - b.limit)
		b.n = b.limit
		return n, b.refuse(&bodyError{http.StatusRequestEntityTooLarge, tooLarge(b.limit)})
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		b.eof.Store(true)
		if !b.armed.IsZero() {
			// net/http's next read on the connection waits for the next
			// request (or notices the client leaving) and must not inherit
			// the body's deadline. After an error, it keeps it: whatever
			// net/http still reads of this body fails at once.
			b.setDeadline(time.Time{})
			b.armed = time.Time{}
		}
		return n, err
	}
	if isTimeout(err) {
		return n, b.refuse(errBodyStalled)
	}
	return n, b.refuse(errBodyMalformed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (b *bodyLimiter) refuse(e *bodyError) error {
	b.err = e
	b.refused.Store(true)
	if b.g != nil {
		// Where refusedBody looks: the transport reports the upstream
		// call it aborted (a closed connection), not this error.
		b.g.bodyFailed(e)
	}
	return e
}

func (b *bodyLimiter) setDeadline(t time.Time) {
	if b.g != nil {
		b.g.armBody(t)
		return
	}
	http.NewResponseController(b.w).SetReadDeadline(t)
}

func (b *bodyLimiter) Close() error { return b.body.Close() }

// answerBodyError answers a request whose body the proxy refused to pass
// on (over max_body: 413; stalled: 408; malformed: 400) and reports
// whether it was such a request. The upstream's ErrorHandler calls it
// first, with its request and error: the upstream did nothing wrong. A
// stalled or malformed body is a read error on the client's connection,
// on which net/http cancels the request, so the transport may report the
// cancellation instead: the guard remembers the failure for the request.
func answerBodyError(w http.ResponseWriter, r *http.Request, route string, err error) bool {
	be := refusedBody(r, err)
	if be == nil {
		return false
	}
	w.Header().Set("Connection", "close")
	writeError(w, be.status, "route "+route+": "+be.reason)
	return true
}

func refusedBody(r *http.Request, err error) *bodyError {
	var be *bodyError
	if errors.As(err, &be) {
		return be
	}
	if g, ok := r.Context().Value(guardKey{}).(*guardConn); ok {
		return g.bodyFailure()
	}
	return nil
}

// recoverPanic turns a panic while serving one request into a 500 (or, if
// the response had begun, a cut connection: a 500 now would be spliced
// into it), logs it with the route and counts it in
// strangler_panics_total. The process goes on. http.ErrAbortHandler is
// net/http's signal to abort a response quietly, not a bug: passed on.
func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request, rt *route) {
	v := recover()
	if v == nil {
		return
	}
	if rec, ok := w.(*recorder); ok && rec.tee != nil && rec.tee.failed == "" {
		// A cut answer, or the proxy's own 500: not the upstream's answer
		// to compare.
		rec.tee.failed = errReset
	}
	if v == http.ErrAbortHandler {
		markCut(r.Context())
		panic(v)
	}
	name := defaultRoute
	if rt != nil {
		name = rt.name
	}
	s.metrics.panics.Inc()
	s.log.Error("panic serving a request", "route", name, "method", r.Method, "path", loggedPath(r.URL),
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if rec, ok := w.(*recorder); ok && rec.status != 0 {
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusInternalServerError, "route "+name+": internal error")
}
