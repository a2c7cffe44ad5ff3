package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The direct path: a body-less request to a plain-HTTP upstream is
// forwarded by h1Transport straight from the client's request, without
// httputil.ReverseProxy. ReverseProxy clones the request and its header
// map, deletes the hop-by-hop fields from the clone, builds a client trace
// and a new context for 1xx answers, and copies the answer's fields one
// Add at a time: a dozen allocations and a tenth of the CPU of a request
// the benchmark forwards. Here the head is written from the client's
// fields, skipping what ReverseProxy would delete, and the answer's fields
// are handed over as they are. The semantics are ReverseProxy's as newUpstream
// configures it (Rewrite with SetURL, the query byte for byte, setForwarded,
// the WebSocket-only upgrade rule), and the tests run both paths.

// serve forwards r to the upstream, on the direct path when it can.
func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	direct := u.direct != nil && directEligible(r)
	if rec, ok := w.(*recorder); ok {
		// ReverseProxy writes the head with the body's first bytes, which
		// net/http's transport does not say have come: see
		// recorder.WriteHeader. The direct path knows (forward).
		rec.flushHead = !direct && r.Method != http.MethodHead
	}
	if direct {
		u.forward(w, r, time.Time{})
		return
	}
	u.rp.ServeHTTP(w, r)
}

// directEligible: a plain request (see plainRequest) with an origin-form
// path (ReverseProxy joins anything else to the target's path its own
// way).
func directEligible(r *http.Request) bool {
	return plainRequest(r) && r.URL.Opaque == "" && strings.HasPrefix(r.URL.Path, "/")
}

// plainRequest is what h1Transport writes itself, both for a client's
// request (the direct path) and for ReverseProxy's rewritten one: no body,
// no trailers, no upgrade, no Expect.
func plainRequest(r *http.Request) bool {
	return (r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 &&
		len(r.TransferEncoding) == 0 && len(r.Trailer) == 0 &&
		r.Header["Upgrade"] == nil && r.Header["Expect"] == nil
}

// forward sends r on the direct path; a non-zero deadline bounds the whole
// call (a shadow copy's timeout).
func (u *upstream) forward(w http.ResponseWriter, r *http.Request, deadline time.Time) {
	resp, err := u.direct.do(&h1Call{req: r, pool: u.directPool, fwd: u, w: w, deadline: deadline})
	if err != nil {
		u.onError(w, r, err)
		return
	}
	// Whatever happens below, a panic included (recoverPanic answers 500
	// and serving goes on), the connection is released: a body left open
	// held its socket until a collection ran the finalizer. Close is
	// idempotent; the paths below close it as early as they can.
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	if u.answered != nil {
		// A replay of a 5xx, once a 1xx of the service reached the client,
		// would give it two backends' answers: the 5xx passes instead.
		if err := u.answered(resp); err != nil && !informed(w) {
			resp.Body.Close()
			u.onError(w, r, err)
			return
		}
	}
	var h http.Header
	if c, ok := w.(*capture); ok && c.header == nil {
		// A shadow copy's answer is only read: the fields need no copy.
		c.header = resp.Header
		h = c.header
	} else {
		if rec, ok := w.(*recorder); ok && rec.tee != nil && rec.tee.header == nil {
			// The primary's answer is compared as the upstream sent it,
			// and resp.Header is not written after this: no clone of the
			// client's header map in recorder.WriteHeader.
			rec.tee.header = resp.Header
		}
		h = w.Header()
		for k, vv := range resp.Header {
			if prior, ok := h[k]; ok {
				h[k] = append(prior, vv...)
			} else {
				h[k] = vv // the response is dropped after this: no copy needed
			}
		}
	}
	dropBadTrailers(resp.Trailer)
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	if _, shadow := w.(*capture); !shadow && (resp.ContentLength == -1 || resp.ContentLength > 0 && !bodyArrived(resp.Body)) {
		// A stream (Server-Sent Events, a long poll), or a body not here
		// yet (a download from slow storage): the head goes out now, not
		// with the first bytes of the body, so that the client (and a
		// time-to-first-byte timeout in front) sees that the upstream
		// answered. ReverseProxy does the same from a timer for a stream.
		// A body that came with its head (most answers) goes with it, in
		// one write.
		http.NewResponseController(w).Flush()
	}
	if resp.Body != http.NoBody {
		if err, upstream := u.copyBody(w, resp.Body); err != nil {
			resp.Body.Close()
			if upstream {
				u.cut(r, err)
			}
			// Headers are out: all that is left is to cut the response,
			// as ReverseProxy does.
			panic(http.ErrAbortHandler)
		}
	}
	resp.Body.Close()
	dropBadTrailers(resp.Trailer)
	if len(resp.Trailer) == 0 {
		return
	}
	if _, ok := w.(*capture); ok {
		return // compared without trailers, like the primary's snapshot at WriteHeader
	}
	// Force chunking, so that net/http does not send a short body with a
	// Content-Length and no trailers.
	http.NewResponseController(w).Flush()
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			h[k] = vv
		}
		return
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// copyBody streams an answer's body to the client; w flushes every write
// (see recorder.Write). upstream tells that reading the answer failed,
// not writing it.
func (u *upstream) copyBody(w io.Writer, body io.Reader) (err error, upstream bool) {
	buf := u.buffers.Get()
	defer u.buffers.Put(buf)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr, false
			}
		}
		if rerr == io.EOF {
			return nil, false
		}
		if rerr != nil {
			if !errors.Is(rerr, context.Canceled) {
				u.log.Warn("upstream body read error", "route", u.route, "backend", u.backend, "error", elide(rerr))
			}
			return rerr, true
		}
	}
}

// bodyArrived reports whether the first bytes of an answer's body came
// with its head: read from the upstream, held in its connection's buffer.
func bodyArrived(body io.Reader) bool {
	b, ok := body.(*h1Body)
	return ok && b.pc != nil && b.pc.br.Buffered() > 0
}

// cut counts an answer the upstream cut mid-body, its head passed on: a
// reset or a timeout of the upstream's. A shadow copy's is its
// comparison's result.
// Ejection judges an answer by its head (serviceAnswered), so it is not
// counted there.
func (u *upstream) cut(r *http.Request, err error) {
	if u.shadow || r.Context().Err() != nil {
		// A copy's; or the client's leaving (whether the read or the
		// write to it fails first is a race).
		return
	}
	kind, _ := classify(r, err)
	u.metrics.errors[kind].Inc()
	if g, ok := r.Context().Value(guardKey{}).(*guardConn); ok && g.http10 {
		g.reset.Store(true) // the client learns of the cut: see guardConn.Close
	}
}

// answerBody watches the body of an answer that ReverseProxy copies: at
// its end it drops bad trailers (chunked answers); a failed read is an
// answer cut mid-body (upstream.cut).
type answerBody struct {
	io.ReadCloser
	resp     *http.Response
	u        *upstream
	trailers bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	var start time.Time
	if b.trailers && b.u != nil && b.u.read > 0 {
		start = time.Now() // see trailerStall
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		if b.trailers {
			dropBadTrailers(b.resp.Trailer)
		}
	case err != nil && b.u != nil:
		if refusedBody(b.resp.Request, err) != nil {
			// The call was aborted because the client's body was refused:
			// not the upstream's failure, nor one for ReverseProxy to log.
			err = context.Canceled
		} else if !start.IsZero() && !isNetError(err) && time.Since(start) >= b.u.read {
			b.u.cut(b.resp.Request, trailerStall{err})
		} else {
			b.u.cut(b.resp.Request, err)
		}
		b.u = nil // once
	}
	return n, err
}

// trailerStall is a chunked answer's read that failed, with net/http's own
// error rather than the socket's, after waiting timeouts.read: its reader
// of the trailer section drops the read's error (the guard's deadline) for
// "unexpected EOF reading trailer", which would count the stall as a
// reset. Each wait on the upstream is bounded by timeouts.read, so such a
// read failed on the deadline (or, rarely, on a close after two waits
// that add up to it).
type trailerStall struct{ error }

func (trailerStall) Timeout() bool   { return true }
func (trailerStall) Temporary() bool { return true }

func (e trailerStall) Unwrap() error { return e.error }

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// forward1xx passes an informational answer (103 Early Hints) to the
// client, as ReverseProxy does.
func forward1xx(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	w.WriteHeader(resp.StatusCode)
	clear(h)
}

// dropBadTrailers deletes the trailer fields an answer must not carry
// (RFC 9110 §6.5.1: framing, routing, authentication, how to read the
// content; httpguts's list, which Go's server applies to announced
// trailers only) and hop-by-hop ones: sent after the body, they would get
// past every rule applied to the head, to a client or a proxy after
// Strangler that merges trailers into the head.
func dropBadTrailers(tr http.Header) {
	for k := range tr {
		if !httpguts.ValidTrailerHeader(k) || slices.Contains(hopHeaders[:], k) {
			delete(tr, k)
		}
	}
}

// hopHeaders are the fields that concern one connection only (RFC 9110
// §7.6.1, and ReverseProxy's list).
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields of an answer: the fixed
// ones and those its Connection field names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// hopByHop tells whether a client's field k is not forwarded: hop-by-hop,
// named in the client's Connection field, or one of the forwarding fields
// Strangler writes itself (a client cannot supply its own
// X-Forwarded-Host or -Proto; its X-Forwarded-For is extended).
func hopByHop(k string, conn []string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	if slices.Contains(hopHeaders[:], k) {
		return true
	}
	for _, f := range conn {
		for sf := range strings.SplitSeq(f, ",") {
			if asciiEqualFold(textproto.TrimString(sf), k) {
				return true
			}
		}
	}
	return false
}

// appendForwardHead writes the head of r as forwarded to u: what
// ReverseProxy with newUpstream's Rewrite would send.
func (u *upstream) appendForwardHead(b []byte, r *http.Request) ([]byte, error) {
	host := u.target.Host
	if u.preserveHost && r.Host != "" { // HTTP/1.0 may have none: as ReverseProxy
		host = r.Host
	}
	path := r.URL.EscapedPath()
	if u.target.Path != "" || u.target.RawPath != "" {
		path = joinedPath(u.target, r.URL)
	}
	ua := "" // ReverseProxy sends none when the client sent none, or named it in Connection
	if v := r.Header["User-Agent"]; len(v) > 0 && !hopByHop("User-Agent", r.Header["Connection"]) {
		ua = v[0]
	}
	b, err := appendRequestLine(b, r.Method, path, r.URL, host, ua)
	if err != nil {
		return b, err
	}
	conn := r.Header["Connection"]
	var stack [32]string
	keys := stack[:0]
	for k := range r.Header {
		// (ServeHTTP has deleted a client's X-Strangler-Shadow already.)
		if !writtenApart(k) && !hopByHop(k, conn) && !(u.shadow && k == shadowHeader) {
			keys = append(keys, k)
		}
	}
	if u.shadow {
		keys = append(keys, shadowHeader)
	}
	teTrailers := httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers")
	if teTrailers {
		keys = append(keys, "Te")
	}
	keys = append(keys, "X-Forwarded-For", "X-Forwarded-Proto")
	if r.Host != "" { // see setForwarded
		keys = append(keys, "X-Forwarded-Host")
	}
	return appendFields(b, r.Header, keys, func(k string) (string, bool) {
		switch k {
		case "Te":
			return "trailers", true
		case "X-Forwarded-For":
			return forwardedFor(r), true
		case "X-Forwarded-Host":
			return r.Host, true
		case shadowHeader:
			return shadowMark[0], u.shadow
		case "X-Forwarded-Proto":
			if r.TLS != nil {
				return "https", true
			}
			return "http", true
		}
		return "", false
	})
}

// forwardedFor is the X-Forwarded-For a request is forwarded with: the
// client's chain with the peer appended, as nginx's
// $proxy_add_x_forwarded_for (ReverseProxy's SetXForwarded would replace
// the chain).
func forwardedFor(r *http.Request) string {
	ip := peerIP(r.RemoteAddr)
	prior := r.Header["X-Forwarded-For"]
	switch {
	case len(prior) == 0:
		return ip // the common case: none
	case len(prior) == 1 && strings.TrimSpace(prior[0]) != "":
		return prior[0] + ", " + ip
	}
	var b strings.Builder
	for _, v := range prior {
		// An empty line adds no hop: ", 10.0.0.1" would read as one.
		if v = strings.TrimSpace(v); v != "" {
			b.WriteString(v)
			b.WriteString(", ")
		}
	}
	b.WriteString(ip)
	return b.String()
}

// joinedPath is the path ReverseProxy's SetURL sends for a target with a
// path prefix.
func joinedPath(target, in *url.URL) string {
	if target.RawPath == "" && in.RawPath == "" {
		return (&url.URL{Path: joinSlash(target.Path, in.Path)}).EscapedPath()
	}
	a, b := target.EscapedPath(), in.EscapedPath()
	return (&url.URL{Path: joinSlash(target.Path, in.Path), RawPath: joinSlash(a, b)}).EscapedPath()
}

func joinSlash(a, b string) string {
	as, bs := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case as && bs:
		return a + b[1:]
	case !as && !bs:
		return a + "/" + b
	}
	return a + b
}
