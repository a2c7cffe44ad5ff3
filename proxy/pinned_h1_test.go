package proxy

// Behaviours of h1Transport (h1.go, h1read.go) and of the direct path
// (direct.go) that a hand mutation test found no test held: each test
// below fails when the behaviour it names is changed, and says why a user
// would notice. They run against real listeners: canned upstreams
// (startCanned) where the exact bytes matter, the proxy's own transport
// in front of them.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// closeSilently answers nothing and closes the connection after reading a
// request: an upstream that crashed on it, or had closed the connection.
func closeSilently(n int, _ *http.Request) (string, bool) { return "", true }

// A request is sent again only when a pooled connection turned out closed
// and the request may run twice: idempotent methods (GET, HEAD, OPTIONS,
// TRACE) or a request with an Idempotency-Key or X-Idempotency-Key, as
// net/http's transport decides. A write without a key must never reach
// the upstream twice (a double order), and a request that failed on a
// connection dialled for it is not sent again either: the upstream got it
// and closed, so a replay would only repeat the failure, or run it twice.
func TestPinnedH1ReplayRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		header  http.Header
		pooled  bool // the failing request went on a pooled connection
		replays bool
	}{
		{name: "OPTIONS on a pooled connection", method: http.MethodOptions, pooled: true, replays: true},
		{name: "TRACE on a pooled connection", method: http.MethodTrace, pooled: true, replays: true},
		{name: "POST with Idempotency-Key", method: http.MethodPost, header: http.Header{"Idempotency-Key": {"k1"}}, pooled: true, replays: true},
		{name: "POST with X-Idempotency-Key", method: http.MethodPost, header: http.Header{"X-Idempotency-Key": {"k1"}}, pooled: true, replays: true},
		{name: "POST without a key", method: http.MethodPost, pooled: true},
		{name: "PUT without a key", method: http.MethodPut, pooled: true},
		{name: "GET on a fresh connection", method: http.MethodGet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fail := 0 // the request the upstream closes on
			if tt.pooled {
				fail = 1
			}
			u := startCanned(t, func(n int, r *http.Request) (string, bool) {
				if n == fail {
					return closeSilently(n, r)
				}
				return okResponse, false
			})
			tr := newH1(t, testTimeouts)
			if tt.pooled {
				if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
					t.Fatal(f.err)
				}
			}
			req := newRequest(t, t.Context(), tt.method, "http://"+u.addr+"/")
			for k, vv := range tt.header {
				req.Header[k] = vv
			}
			f := fetch(tr, req)
			heads, _ := u.recorded()
			sent := 0 // how many times the upstream read the request
			for _, h := range heads {
				if strings.HasPrefix(h, tt.method+" ") {
					sent++
				}
			}
			if tt.replays {
				if f.err != nil || f.body != "ok" || sent != 2 {
					t.Fatalf("body %q, error %v, the upstream read it %d times; want it replayed once and answered", f.body, f.err, sent)
				}
				return
			}
			if f.err == nil || sent != 1 {
				t.Fatalf("error %v, the upstream read it %d times; want an error and no replay", f.err, sent)
			}
		})
	}
}

// An upstream slower than timeouts.response_header on a pooled connection
// is slow, not gone: the request fails with the timeout and is not sent
// again on a new connection (which would double the wait and the load on
// an upstream that is already struggling).
func TestPinnedH1TimeoutOnAPooledConnectionIsNotReplayed(t *testing.T) {
	t.Parallel()
	u := startCanned(t, func(n int, _ *http.Request) (string, bool) {
		if n == 1 {
			return "", false // never answers
		}
		return okResponse, false
	})
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(500 * time.Millisecond), Idle: Duration(time.Minute)})
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
		t.Fatal(f.err)
	}
	f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
	var ne net.Error
	if !errors.As(f.err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v, want a timeout", f.err)
	}
	if heads, _ := u.recorded(); len(heads) != 2 || u.accepts.Load() != 1 {
		t.Fatalf("the upstream read %d requests on %d connections, want 2 on 1 (no replay)", len(heads), u.accepts.Load())
	}
}

// When the replay's dial fails, the call reports the first attempt's
// failure, not the dial's: the request did reach the upstream, and a
// fallback or a metric that took it for a connect error (one that reached
// nothing) would send a write to a second backend.
func TestPinnedH1ReplayReportsTheFirstFailure(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, okResponse)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		ln.Close() // the upstream is gone: the replay's dial is refused
	}()
	tr := newH1(t, testTimeouts)
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+addr+"/")); f.err != nil {
		t.Fatal(f.err)
	}
	f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+addr+"/"))
	<-served
	var op *net.OpError
	if f.err == nil || errors.As(f.err, &op) && op.Op == "dial" {
		t.Fatalf("error %v, want the failure of the request the upstream read, not the replay's dial", f.err)
	}
}

// A pooled connection found closed says the upstream most likely closed
// (or lost, by restarting) its other idle connections too: they are all
// dropped before the replay, rather than each failing a later request.
func TestPinnedH1ReplayDropsTheOtherIdleConnections(t *testing.T) {
	t.Parallel()
	u := startCanned(t, func(n int, r *http.Request) (string, bool) {
		if n == 2 {
			return closeSilently(n, r)
		}
		return okResponse, false
	})
	tr := newH1(t, testTimeouts)
	url := "http://" + u.addr + "/"
	// Two answers open at once: two connections, both pooled after.
	r1, err := tr.RoundTrip(newRequest(t, t.Context(), http.MethodGet, url))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tr.RoundTrip(newRequest(t, t.Context(), http.MethodGet, url))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*http.Response{r1, r2} {
		io.ReadAll(r.Body)
		r.Body.Close()
	}
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, url)); f.err != nil || f.body != "ok" {
		t.Fatalf("body %q, error %v; want the replay's answer", f.body, f.err)
	}
	p := tr.pool(u.addr)
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 1 {
		t.Fatalf("the pool holds %d connections after the replay, want 1 (the replay's)", idle)
	}
}

// A host without a port is dialled on port 80, as net/http does ("[::1]"
// too, without its brackets doubled). No test can listen on port 80, so
// this reads the pool's address.
func TestPinnedH1PoolAddressDefaultsToPort80(t *testing.T) {
	t.Parallel()
	tr := newH1(t, testTimeouts)
	for host, want := range map[string]string{
		"example.com":      "example.com:80",
		"[::1]":            "[::1]:80",
		"example.com:8080": "example.com:8080",
	} {
		if got := tr.pool(host).addr; got != want {
			t.Errorf("pool(%q) dials %q, want %q", host, got, want)
		}
	}
}

// A request that asks to close its connection (req.Close) is net/http's
// to send: it writes "Connection: close" and keeps no connection, so the
// upstream knows to close and no request is sent on a closing connection.
func TestPinnedH1CloseRequestGoesToNetHTTP(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always(okResponse, false))
	tr := newH1(t, testTimeouts)
	for i := range 2 {
		req := newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")
		req.Close = true
		if f := fetch(tr, req); f.err != nil || f.body != "ok" {
			t.Fatalf("request %d: body %q, error %v", i, f.body, f.err)
		}
	}
	heads, _ := u.recorded()
	if len(heads) != 2 || !strings.Contains(heads[0], "\r\nConnection: close\r\n") || u.accepts.Load() != 2 {
		t.Fatalf("upstream read %q on %d connections; want Connection: close, and a connection each", heads, u.accepts.Load())
	}
}

// An https URL is net/http's to send, over TLS: never in clear text,
// whatever the listener at the address is.
func TestPinnedH1HTTPSIsNeverSentInClear(t *testing.T) {
	t.Parallel()
	first := make(chan string, 1) // the first bytes the listener reads
	addr := acceptEach(t, func(c net.Conn) {
		b := make([]byte, 4)
		io.ReadFull(c, b)
		first <- string(b)
		io.WriteString(c, okResponse) // a plain answer, which TLS refuses
		io.Copy(io.Discard, c)
	})
	tr := newH1(t, testTimeouts)
	f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "https://"+addr+"/"))
	if got := <-first; got == "GET " || f.err == nil {
		t.Fatalf("the upstream read %q first, and the call's error is %v; want a TLS handshake that fails", got, f.err)
	}
}

// The pool keeps at most maxIdle connections per upstream (the rest are
// closed, not hoarded), and none once its upstream is retired by a
// reload: a connection a call of the old table puts back is closed.
func TestPinnedH1PoolBounds(t *testing.T) {
	t.Parallel()
	for _, retire := range []bool{false, true} {
		name := map[bool]string{false: "maxIdle", true: "retired"}[retire]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(okResponse, false))
			tr := newH1(t, testTimeouts)
			tr.maxIdle = 1
			url := "http://" + u.addr + "/"
			var open []*http.Response
			for range 2 {
				r, err := tr.RoundTrip(newRequest(t, t.Context(), http.MethodGet, url))
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, r)
			}
			if retire {
				tr.retire()
			}
			for _, r := range open {
				if b, err := io.ReadAll(r.Body); err != nil || string(b) != "ok" {
					t.Fatalf("body %q, %v", b, err)
				}
				r.Body.Close()
			}
			want := 1
			if retire {
				want = 0
			}
			p := tr.pool(u.addr)
			p.mu.Lock()
			idle := len(p.idle)
			p.mu.Unlock()
			if idle != want {
				t.Fatalf("the pool holds %d connections, want %d", idle, want)
			}
			eventually(t, 5*time.Second, "the connections not kept are closed", func() bool { return u.clientClosed.Load() == int32(2-want) })
		})
	}
}

// A call with a deadline of its own (a shadow copy's timeout) earlier than
// timeouts.response_header ends at its deadline: the head's timer must not
// push it back, or a stuck upstream holds a shadow worker for the whole
// response_header.
func TestPinnedH1CallDeadlineBoundsTheHead(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("", false)) // never answers
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(5 * time.Second), Idle: Duration(time.Minute)})
	req := newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")
	start := time.Now()
	_, err := tr.do(&h1Call{req: req, pool: tr.pool(u.addr), deadline: start.Add(100 * time.Millisecond)})
	if d := time.Since(start); err == nil || d > 2*time.Second {
		t.Fatalf("error %v after %v; want a failure at the call's deadline (100ms)", err, d.Round(time.Millisecond))
	}
}

// timeouts.response_header bounds the wait for the head only: a body that
// comes later (a slow download, a stream) is read to its end.
func TestPinnedH1BodyIsNotBoundByTheResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	const respHeader = 300 * time.Millisecond
	rest := make(chan struct{})
	addr := acceptEach(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
		select {
		case <-rest:
			io.WriteString(c, "body")
		case <-t.Context().Done():
		}
	})
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(respHeader), Idle: Duration(time.Minute)})
	resp, err := tr.RoundTrip(newRequest(t, t.Context(), http.MethodGet, "http://"+addr+"/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The scenario itself, not a synchronisation: the body comes three
	// times response_header after the head.
	<-time.After(3 * respHeader)
	close(rest)
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "body" {
		t.Fatalf("body %q, error %v; want the whole body", b, err)
	}
}

// A Got1xxResponse hook that returns an error ends the call with that
// error, as net/http's transport does: a client that refuses an interim
// answer does not get the final one, and the connection is not reused.
func TestPinnedH1Got1xxErrorEndsTheCall(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+okResponse, false))
	tr := newH1(t, testTimeouts)
	refused := errors.New("no early hints")
	trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { return refused }}
	f := fetch(tr, newRequest(t, httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "http://"+u.addr+"/"))
	if !errors.Is(f.err, refused) {
		t.Fatalf("error %v, want the hook's", f.err)
	}
	u.nextOn(t, tr, 2, ": the one with an answer left on it is closed")
}

// Interim answers handed on to no one (a 100 Continue to a request that
// sent no Expect) are bounded together by the response head limit, each
// counted with its empty line, as net/http's transport counts them: an
// upstream cannot keep a request waiting on an endless 1xx stream.
func TestPinnedH1InterimAnswersBoundExactly(t *testing.T) {
	t.Parallel()
	const heads = 64 // of maxUpstreamHead/64 bytes each with its empty line
	interim := func(extra int) string {
		pad := maxUpstreamHead/heads - 2 - len("HTTP/1.1 100 Continue\r\n") - len("X-Pad: \r\n") + extra
		return "HTTP/1.1 100 Continue\r\nX-Pad: " + strings.Repeat("a", pad) + "\r\n\r\n"
	}
	for _, over := range []bool{false, true} {
		name := map[bool]string{false: "at the limit", true: "a byte over"}[over]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			last := 0
			if over {
				last = 1
			}
			answer := strings.Repeat(interim(0), heads-1) + interim(last) + okResponse
			u := startCanned(t, always(answer, false))
			tr := newH1(t, testTimeouts)
			f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
			if over != (f.err != nil) || !over && f.body != "ok" {
				t.Fatalf("body %q, error %v; want an error only past the limit", f.body, f.err)
			}
		})
	}
}

// "Connection: close" on an answer with no body (204, 304, an answer to
// HEAD) or with a chunked one is obeyed: the connection is closed after
// it even when the upstream leaves it open, so no request is sent on a
// connection the upstream is about to close (a failed or replayed call).
func TestPinnedH1ConnectionCloseIsObeyed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, response, body string
	}{
		{name: "204", response: "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"},
		{name: "304", response: "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"},
		{name: "HEAD", method: http.MethodHead, response: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"},
		{name: "chunked", response: "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", body: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(tt.response, false))
			tr := newH1(t, testTimeouts)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			for i := range 2 {
				if f := fetch(tr, newRequest(t, t.Context(), method, "http://"+u.addr+"/")); f.err != nil || f.body != tt.body {
					t.Fatalf("request %d: body %q, error %v", i, f.body, f.err)
				}
			}
			if n := u.accepts.Load(); n != 2 {
				t.Fatalf("two requests took %d connections, want 2", n)
			}
		})
	}
}

// A request whose context times out fails with context.DeadlineExceeded,
// not context.Canceled: the proxy tells a timeout (504, counted against
// the upstream) from a client that left.
func TestPinnedH1ContextDeadlineIsReportedAsSuch(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("", false)) // never answers
	tr := newH1(t, testTimeouts)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	f := fetch(tr, newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/"))
	if !errors.Is(f.err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", f.err)
	}
}

// A call with its own deadline leaves its connection usable after it: the
// deadline is cleared when the connection is pooled, so the next request
// on it does not fail with a timeout that is not its own.
func TestPinnedH1ConnectionOutlivesACallDeadline(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always(okResponse, false))
	tr := newH1(t, testTimeouts)
	deadline := time.Now().Add(time.Second)
	req := newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")
	resp, err := tr.do(&h1Call{req: req, pool: tr.pool(u.addr), deadline: deadline})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
		t.Fatalf("body %q, %v", b, err)
	}
	resp.Body.Close()
	eventually(t, 5*time.Second, "the call's deadline passes", func() bool { return time.Now().After(deadline) })
	u.nextOn(t, tr, 1, "")
}

// A call canceled before its body's last byte was read does not pool its
// connection, even when that byte was already buffered: the cancel set a
// deadline in the past on it, which would fail the next request.
func TestPinnedH1CanceledCallDoesNotPoolItsConnection(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always(okResponse, false))
	tr := newH1(t, testTimeouts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp, err := tr.RoundTrip(newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/"))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		t.Fatal(err)
	}
	cancel()
	io.ReadAll(resp.Body) // the last byte, from the buffer, or the cancel
	resp.Body.Close()
	u.nextOn(t, tr, 2, ": the canceled call's is not reused")
}

// A Host or a method that would break the request line is refused before
// a byte is written: neither can smuggle a second request or a field into
// the head.
func TestPinnedH1RequestLineRefusesInjection(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, host, method string }{
		{name: "CRLF in Host", host: "front.example\r\nX-Injected: 1"},
		{name: "space in Host", host: "front.example X-Injected"},
		{name: "CRLF in the method", method: "GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET"},
		{name: "space in the method", method: "GET /x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(okResponse, false))
			tr := newH1(t, testTimeouts)
			req := newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.method != "" {
				req.Method = tt.method
			}
			if f := fetch(tr, req); f.err == nil {
				t.Fatalf("no error: status %d", f.resp.StatusCode)
			}
			// The refused request left the connection as it was.
			if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
				t.Fatal(f.err)
			}
			heads, stray := u.recorded()
			if len(heads) != 1 || len(stray) != 0 || strings.Contains(heads[0], "Injected") {
				t.Fatalf("upstream read %q and %q, want only the next request", heads, stray)
			}
		})
	}
}

// h1Transport writes the request head net/http's transport would for the
// same request: Content-Length: 0 on a body-less PUT and PATCH (as on
// POST), no framing fields a caller left in the header (a
// "Transfer-Encoding: chunked" would make the upstream wait for a body, or
// read the next request as one), and values without the spaces around
// them.
func TestPinnedH1RequestHeadAsNetHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		header http.Header
	}{
		{name: "PUT", method: http.MethodPut},
		{name: "PATCH", method: http.MethodPatch},
		{name: "framing fields in the header", method: http.MethodGet, header: http.Header{
			"Transfer-Encoding": {"chunked"}, "Trailer": {"X-Sum"}, "Content-Length": {"5"}, "Accept": {"*/*"}}},
		{name: "spaces around values", method: http.MethodGet, header: http.Header{
			"User-Agent": {" probe/1 "}, "X-A": {" padded\t"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got [2]string
			for i, std := range []bool{false, true} {
				u := startCanned(t, always("HTTP/1.1 204 No Content\r\n\r\n", false))
				tr := newH1(t, testTimeouts)
				req := newRequest(t, t.Context(), tt.method, "http://"+u.addr+"/p")
				for k, vv := range tt.header {
					req.Header[k] = vv
				}
				var rt http.RoundTripper = tr
				if std {
					rt = tr.std
				}
				if f := fetch(rt, req); f.err != nil {
					t.Fatal(f.err)
				}
				heads, _ := u.recorded()
				if len(heads) != 1 {
					t.Fatalf("upstream read %q", heads)
				}
				got[i] = strings.ReplaceAll(heads[0], u.addr, "{upstream}")
			}
			if got[0] != got[1] {
				t.Fatalf("the upstream read\n%q (h1Transport)\n%q (net/http)", got[0], got[1])
			}
		})
	}
}

// Answers refused as malformed, where taking them would misframe: a head
// cut short by the close (else an empty 200), a status code that is not
// three digits, a Content-Length past int64 (else read as negative and
// the body taken to the close), a Trailer announcing Trailer, a chunk size
// past int64 (else a negative size), control characters in a chunk
// extension (a reader beside the proxy may end the line there), and a
// trailer section larger than net/http reads.
func TestPinnedH1RefusesMalformedAnswers(t *testing.T) {
	t.Parallel()
	const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct{ name, response string }{
		{name: "head cut short after a line", response: "HTTP/1.1 200 OK\r\nX-A: 1\r\n"},
		{name: "head cut short mid-line", response: "HTTP/1.1 204 No Content\r\nX-A: 1"},
		{name: "status of four digits", response: "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"},
		{name: "status of two digits", response: "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"},
		{name: "status 20x", response: "HTTP/1.1 20x OK\r\nContent-Length: 2\r\n\r\nok"},
		{name: "Content-Length past int64", response: "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\nok"},
		{name: "Trailer announcing Trailer", response: "HTTP/1.1 200 OK\r\nTrailer: Trailer\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "chunk size past int64", response: chunked + "8000000000000000\r\nok\r\n0\r\n\r\n"},
		{name: "DEL in a chunk extension", response: chunked + "2;a=\x7f\r\nok\r\n0\r\n\r\n"},
		{name: "SOH in a chunk extension", response: chunked + "2;a=\x01\r\nok\r\n0\r\n\r\n"},
		{name: "trailer section over 4 KiB", response: chunked + "2\r\nok\r\n0\r\nX-Big: " + strings.Repeat("t", 5000) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		// The upstream guard, reading the same bytes, refuses some of
		// these itself: h1Transport is held to them on its own too.
		for _, guarded := range []bool{true, false} {
			t.Run(tt.name+map[bool]string{true: ", guarded", false: ", alone"}[guarded], func(t *testing.T) {
				t.Parallel()
				u := startCanned(t, always(tt.response, true))
				tr := newH1(t, testTimeouts)
				if !guarded {
					var d net.Dialer
					tr.dial = d.DialContext
				}
				if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err == nil {
					t.Fatalf("no error: status %d, header %q, body %q", f.resp.StatusCode, f.resp.Header, f.body)
				}
			})
		}
	}
}

// Answers taken as net/http takes them: tabs around a value are not part
// of it (a "Content-Length:\t2" is a length), "Content-Length: 0" is an
// empty body on a reusable connection (not a body to the close, which
// would hang the request), an empty name in a Trailer announcement is
// skipped and an announcement of none is no Trailer; a body read after
// its end keeps returning io.EOF.
func TestPinnedH1AnswersTakenAsNetHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, response string
		header         http.Header
		length         int64
		body           string
		trailerBefore  http.Header
	}{{
		name:     "tabs around values",
		response: "HTTP/1.1 200 OK\r\nX-A:\tv\t\r\nContent-Length:\t2\t\r\n\r\nok",
		header:   http.Header{"X-A": {"v"}, "Content-Length": {"2"}}, length: 2, body: "ok",
	}, {
		name:     "Content-Length: 0",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		header:   http.Header{"Content-Length": {"0"}},
	}, {
		name:     "an empty name in Trailer",
		response: "HTTP/1.1 200 OK\r\nTrailer: X-A, , X-B\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		header:   http.Header{}, length: -1, body: "ok", trailerBefore: http.Header{"X-A": nil, "X-B": nil},
	}, {
		name:     "Trailer naming nothing",
		response: "HTTP/1.1 200 OK\r\nTrailer: ,\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		header:   http.Header{}, length: -1, body: "ok",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(tt.response, false))
			tr := newH1(t, testTimeouts)
			for i := range 2 {
				// A body read to the close would wait for good: bounded.
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				f := fetch(tr, newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/"))
				if f.err != nil {
					t.Fatalf("request %d: %v", i, f.err)
				}
				if !reflect.DeepEqual(f.resp.Header, tt.header) || f.resp.ContentLength != tt.length || f.body != tt.body ||
					!reflect.DeepEqual(f.trailerBefore, tt.trailerBefore) {
					t.Fatalf("header %q, ContentLength %d, body %q, Trailer %q; want %q, %d, %q, %q",
						f.resp.Header, f.resp.ContentLength, f.body, f.trailerBefore, tt.header, tt.length, tt.body, tt.trailerBefore)
				}
				if n, err := f.resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("a Read after the end: %d, %v; want 0, io.EOF", n, err)
				}
			}
			if n := u.accepts.Load(); n != 1 {
				t.Fatalf("two requests took %d connections, want 1", n)
			}
		})
	}
}

// A body closed before its end closes its connection: the rest of the
// answer is still to come on it, and would be the next request's answer.
// The upstream guard also refuses such a connection; this holds
// h1Transport to it on its own, over a dialer without the guard.
func TestPinnedH1BodyClosedEarlyEndsItsConnection(t *testing.T) {
	t.Parallel()
	u := startCanned(t, func(n int, _ *http.Request) (string, bool) {
		if n == 0 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false // 7 bytes to come
		}
		return okResponse, false
	})
	tr := newH1(t, testTimeouts)
	var d net.Dialer
	tr.dial = d.DialContext
	resp, err := tr.RoundTrip(newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u.nextOn(t, tr, 2, "")
}

// On both ways to the client, a trailer named Upgrade is dropped with the
// other hop-by-hop fields (Go's list of fields a trailer must not carry
// lacks it): sent after the body, it would reach a client or a proxy that
// merges trailers into the head, past the rules applied to the head.
func TestPinnedDirectDropsAnUpgradeTrailer(t *testing.T) {
	t.Parallel()
	const answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nUpgrade: h2c\r\nX-Sum: 9\r\n\r\n"
	for _, way := range []via{viaDirect, viaReverseProxy} {
		t.Run(string(way), func(t *testing.T) {
			t.Parallel()
			up := startCanned(t, always(answer, false))
			out := throughUpstream(t, "http://"+up.addr, false, false, way, "GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			if strings.Contains(out, "h2c") || !strings.Contains(out, "X-Sum: 9") {
				t.Fatalf("the client read %q; want X-Sum and no Upgrade", out)
			}
		})
	}
}

// A field the client's Connection names is not forwarded whatever the
// case it is named in ("connection: x-drop" drops X-Drop), as
// ReverseProxy does: field names are case-insensitive, and a hop-by-hop
// field meant for the proxy must not reach the upstream.
func TestPinnedDirectConnectionNamesAnyCase(t *testing.T) {
	t.Parallel()
	up := startCanned(t, always("HTTP/1.1 204 No Content\r\n\r\n", false))
	throughUpstream(t, "http://"+up.addr, false, false, viaDirect,
		"GET /p HTTP/1.1\r\nHost: h\r\nConnection: x-drop, close\r\nX-Drop: 1\r\nX-Keep: 1\r\n\r\n")
	heads, _ := up.recorded()
	if len(heads) != 1 || strings.Contains(heads[0], "X-Drop") || !strings.Contains(heads[0], "X-Keep: 1") {
		t.Fatalf("upstream read %q; want X-Keep and no X-Drop", heads)
	}
}

// A 5xx the fallback would replay is passed on as it is once a 1xx of the
// service (103 Early Hints) reached the client: the answer has begun, and
// the monolith's would be a second one after it. On the direct path too.
func TestPinnedDirect5xxAfterA1xxIsNotReplaced(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "service says no")
	})
	e := newEnv(t, fallbackConfig("{{service}}", "    fallback: {on: [5xx]}\n    eject: {consecutive_failures: 0}\n"),
		flagJSON("orders-percent", 100), bodyEcho(&mono), svc)
	resps, _ := exchange(t, e.proxyAddr(), "GET /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nConnection: close\r\n\r\n", 5*time.Second)
	var codes []int
	for _, r := range resps {
		codes = append(codes, r.status)
	}
	if len(resps) != 2 || codes[0] != http.StatusEarlyHints || codes[1] != http.StatusServiceUnavailable ||
		resps[1].body != "service says no" || mono.Load() != 0 {
		t.Fatalf("the client read %v (last body %q), the monolith served %d; want 103, then the service's 503", codes, resps[len(resps)-1].body, mono.Load())
	}
}

// A client that came over TLS is forwarded with "X-Forwarded-Proto:
// https" on the direct path, as by ReverseProxy: an upstream that builds
// absolute URLs or redirects from it would otherwise send the client to
// plain http.
func TestPinnedDirectForwardedProtoOfATLSClient(t *testing.T) {
	t.Parallel()
	up := startCanned(t, always("HTTP/1.1 204 No Content\r\n\r\n", false))
	var ts transports
	tr := ts.get(testTimeouts)
	t.Cleanup(tr.CloseIdleConnections)
	u := newUpstream(upstreamOptions{
		route: "r", backend: backendMonolith, target: &url.URL{Scheme: "http", Host: up.addr}, transport: tr,
		buffers: newBufferPool(), metrics: NewMetrics(prometheus.NewRegistry()).bindBackend("r", backendMonolith),
		log: slog.New(slog.DiscardHandler),
	})
	if u.direct == nil {
		t.Fatal("the direct path is off")
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { u.serve(w, r) }))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/p")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	heads, _ := up.recorded()
	if len(heads) != 1 || !strings.Contains(heads[0], "\r\nX-Forwarded-Proto: https\r\n") {
		t.Fatalf("upstream read %q; want X-Forwarded-Proto: https", heads)
	}
}
