package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests of h1Transport run it against upstreams on bare TCP listeners
// that answer with canned bytes, so that every byte of a response is the
// test's, and count the connections they accept, so that reuse shows.

// cannedUpstream answers each request head it reads with the bytes its
// answer function returns for it, and keeps serving the connection unless
// told to close it. It records the raw request heads in arrival order.
type cannedUpstream struct {
	addr string
	// answer returns the bytes to write for the n-th request (counted over
	// all connections from 0) and whether to close the connection after
	// them. Empty bytes: no answer, the upstream goes on reading.
	answer func(n int, req *http.Request) (resp string, closeAfter bool)

	accepts      atomic.Int32
	clientClosed atomic.Int32 // connections the transport closed (EOF or reset on a read)
	serverClosed atomic.Int32 // connections closed here after an answer

	mu    sync.Mutex
	done  bool
	conns []net.Conn
	heads []string // raw request heads
	stray []string // bytes of heads cut short
}

// always answers every request the same.
func always(resp string, closeAfter bool) func(int, *http.Request) (string, bool) {
	return func(int, *http.Request) (string, bool) { return resp, closeAfter }
}

// nextOn sends one more GET through tr, which must be answered "ok", and
// then wants conns connections accepted in all: 1 when the connection
// before was reused, 2 when it was rightly closed (why says why).
func (u *cannedUpstream) nextOn(t *testing.T, tr http.RoundTripper, conns int32, why string) {
	t.Helper()
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil || f.body != "ok" {
		t.Fatalf("next request: body %q, error %v", f.body, f.err)
	}
	if n := u.accepts.Load(); n != conns {
		t.Fatalf("%d connections, want %d%s", n, conns, why)
	}
}

func startCanned(t *testing.T, answer func(n int, req *http.Request) (string, bool)) *cannedUpstream {
	t.Helper()
	ln := listen(t)
	u := &cannedUpstream{addr: ln.Addr().String(), answer: answer}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			u.mu.Lock()
			if u.done {
				u.mu.Unlock()
				c.Close()
				return
			}
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				u.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		u.done = true
		for _, c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		wg.Wait()
	})
	return u
}

func (u *cannedUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		head, err := readRawHead(br)
		if err != nil {
			u.mu.Lock()
			if head != "" {
				u.stray = append(u.stray, head)
			}
			u.mu.Unlock()
			if head == "" && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
				u.clientClosed.Add(1)
			}
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		u.mu.Lock()
		n := len(u.heads)
		if err != nil {
			u.stray = append(u.stray, head)
		} else {
			u.heads = append(u.heads, head)
		}
		u.mu.Unlock()
		if err != nil {
			return
		}
		resp, closeAfter := u.answer(n, req)
		if resp != "" {
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
		if closeAfter {
			c.Close()
			u.serverClosed.Add(1)
			return
		}
	}
}

// readRawHead reads the lines of a request head, up to and including the
// empty line that ends it.
func readRawHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\r\n" || line == "\n" {
			return b.String(), nil
		}
	}
}

func (u *cannedUpstream) recorded() (heads, stray []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.heads...), append([]string(nil), u.stray...)
}

// conn returns the i-th connection the upstream accepted.
func (u *cannedUpstream) conn(i int) net.Conn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns[i]
}

// testTimeouts has a response-header limit so that a transport waiting
// where it should not fails the test instead of hanging it.
var testTimeouts = Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(10 * time.Second), Idle: Duration(time.Minute)}

// newH1 builds a transport as the proxy does, closed with the test.
func newH1(t *testing.T, to Timeouts) *h1Transport {
	t.Helper()
	var ts transports
	tr := ts.get(to)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newRequest(t *testing.T, ctx context.Context, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fetched is one exchange: the response, its body read to the end (or to
// the error), and its Trailer as it was before the body was read.
type fetched struct {
	resp          *http.Response
	body          string
	trailerBefore http.Header
	err           error // from RoundTrip or from the body
}

func fetch(tr http.RoundTripper, req *http.Request) fetched {
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fetched{err: err}
	}
	f := fetched{resp: resp, trailerBefore: resp.Trailer.Clone()}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.body, f.err = string(b), err
	return f
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func TestH1ResponseFraming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string // GET when empty
		response   string
		closeAfter bool // the upstream closes the connection after answering
		status     int
		header     http.Header
		body       string
		length     int64
		// The response's Trailer before and after its body was read.
		trailerBefore, trailer http.Header
		got1xx                 []string // "code Link" per Got1xxResponse call
		reused                 bool     // a second request went on the same connection
	}{{
		name:     "Content-Length",
		response: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		status:   200, header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}},
		body: "hello", length: 5, reused: true,
	}, {
		name: "chunked with chunk extensions",
		response: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;name=value\r\nhello\r\n6;a;b=\"q\"\r\n world\r\n0;last\r\n\r\n",
		status: 200, header: http.Header{"Content-Type": {"text/plain"}},
		body: "hello world", length: -1, reused: true,
	}, {
		name: "chunked with announced trailers",
		response: "HTTP/1.1 200 OK\r\nTrailer: X-Checksum, X-Count\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Count: 2\r\n\r\n",
		status: 200, header: http.Header{},
		body: "hello", length: -1,
		trailerBefore: http.Header{"X-Checksum": nil, "X-Count": nil},
		trailer:       http.Header{"X-Checksum": {"abc"}, "X-Count": {"2"}},
		reused:        true,
	}, {
		name:     "chunked with an unannounced trailer",
		response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Late: 1\r\n\r\n",
		status:   200, header: http.Header{},
		body: "ok", length: -1, trailer: http.Header{"X-Late": {"1"}}, reused: true,
	}, {
		name:     "chunked wins over Content-Length, and the guard forbids reuse",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		status:   200, header: http.Header{"Connection": {"close"}},
		body: "ok", length: -1,
	}, {
		name:       "body until close",
		response:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
		closeAfter: true,
		status:     200, header: http.Header{"Content-Type": {"text/plain"}},
		body: "until close", length: -1,
	}, {
		name:     "HEAD with Content-Length and no body",
		method:   http.MethodHead,
		response: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
		status:   200, header: http.Header{"Content-Length": {"1234"}},
		length: 1234, reused: true,
	}, {
		name:     "204 without a body",
		response: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		status:   204, header: http.Header{"X-A": {"1"}}, reused: true,
	}, {
		name:     "304 without a body",
		response: "HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\n\r\n",
		status:   304, header: http.Header{"Etag": {`"v1"`}}, reused: true,
	}, {
		name:     "304 with the representation's Content-Length",
		response: "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n",
		status:   304, header: http.Header{"Content-Length": {"1234"}}, reused: true,
	}, {
		name:     "103 Early Hints, then the answer",
		response: "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + okResponse,
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2, got1xx: []string{"103 </style.css>; rel=preload"}, reused: true,
	}, {
		name:     "a 103 that asks to close: closed after the answer",
		response: "HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n" + okResponse,
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2, got1xx: []string{"103 "},
	}, {
		name:     "100 Continue is passed over",
		response: "HTTP/1.1 100 Continue\r\n\r\n" + okResponse,
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2, reused: true,
	}, {
		name:     "five 1xx, then the answer",
		response: strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 5) + okResponse,
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2, got1xx: []string{"102 ", "102 ", "102 ", "102 ", "102 "}, reused: true,
	}, {
		name:     "HTTP/1.0 with keep-alive",
		response: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		status:   200, header: http.Header{"Connection": {"keep-alive"}, "Content-Length": {"2"}},
		body: "ok", length: 2, reused: true,
	}, {
		name:     "HTTP/1.0 without keep-alive",
		response: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2,
	}, {
		name:     "Connection: close",
		response: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		status:   200, header: http.Header{"Connection": {"close"}, "Content-Length": {"2"}},
		body: "ok", length: 2,
	}, {
		name:     "identical Content-Lengths",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2, reused: true,
	}, {
		name:     "bytes after the body",
		response: okResponse + "GARBAGE",
		status:   200, header: http.Header{"Content-Length": {"2"}},
		body: "ok", length: 2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(tt.response, tt.closeAfter))
			tr := newH1(t, testTimeouts)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			var got1xx []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				got1xx = append(got1xx, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			}}
			ctx := httptrace.WithClientTrace(t.Context(), trace)

			f := fetch(tr, newRequest(t, ctx, method, "http://"+u.addr+"/"))
			if f.err != nil {
				t.Fatal(f.err)
			}
			if f.resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", f.resp.StatusCode, tt.status)
			}
			if !reflect.DeepEqual(f.resp.Header, tt.header) {
				t.Errorf("header %q, want %q", f.resp.Header, tt.header)
			}
			if f.body != tt.body {
				t.Errorf("body %q, want %q", f.body, tt.body)
			}
			if f.resp.ContentLength != tt.length {
				t.Errorf("ContentLength %d, want %d", f.resp.ContentLength, tt.length)
			}
			if !reflect.DeepEqual(f.trailerBefore, tt.trailerBefore) {
				t.Errorf("Trailer before the body %q, want %q", f.trailerBefore, tt.trailerBefore)
			}
			if !reflect.DeepEqual(f.resp.Trailer, tt.trailer) {
				t.Errorf("Trailer after the body %q, want %q", f.resp.Trailer, tt.trailer)
			}
			if !reflect.DeepEqual(got1xx, tt.got1xx) {
				t.Errorf("Got1xxResponse calls %q, want %q", got1xx, tt.got1xx)
			}

			f2 := fetch(tr, newRequest(t, t.Context(), method, "http://"+u.addr+"/"))
			if f2.err != nil || f2.body != tt.body {
				t.Fatalf("second request: body %q, error %v", f2.body, f2.err)
			}
			want := int32(2)
			if tt.reused {
				want = 1
			}
			if n := u.accepts.Load(); n != want {
				t.Errorf("two requests took %d connections, want %d", n, want)
			}
		})
	}
}

func TestH1ResponseErrors(t *testing.T) {
	t.Parallel()
	const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name     string
		response string // the upstream closes the connection after it
		is       error  // what the error must be, when it matters
	}{
		{name: "malformed status line", response: "HTTP/1.1200 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "status 099", response: "HTTP/1.1 099 Weird\r\nContent-Length: 0\r\n\r\n"},
		{name: "HTTP/2.0", response: "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "conflicting Content-Lengths", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		{name: "Content-Length +5", response: "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"},
		{name: "Content-Length -1", response: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"},
		{name: "Content-Length 1 2", response: "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nhello"},
		{name: "Transfer-Encoding gzip, chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		// net/http compares the coding as ASCII: "chunKed" (U+212A KELVIN
		// SIGN) is no chunked coding to it.
		{name: "Transfer-Encoding chunked with a Kelvin sign", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chun\u212aed\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{name: "chunk line ending in a bare LF", response: chunked + "2\nok\r\n0\r\n\r\n"},
		{name: "chunk data not followed by CRLF", response: chunked + "2\r\nokXX0\r\n\r\n"},
		{name: "chunk size of 17 hex digits", response: chunked + "00000000000000002\r\nok\r\n0\r\n\r\n"},
		{name: "header line without a colon", response: "HTTP/1.1 200 OK\r\nNo-Colon\r\nContent-Length: 2\r\n\r\nok"},
		{name: "NUL in a header value", response: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"},
		{name: "bare CR in a header value", response: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok"},
		{name: "bare CR leading a header value", response: "HTTP/1.1 200 OK\r\nX-A:\rb\r\nContent-Length: 2\r\n\r\nok"},
		{name: "response head over 1 MiB", response: "HTTP/1.1 200 OK\r\n" +
			strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "Content-Length: 2\r\n\r\nok"},
		{name: "Content-Length body cut short", response: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", is: io.ErrUnexpectedEOF},
		{name: "chunked body cut short", response: chunked + "a\r\nabc", is: io.ErrUnexpectedEOF},
		{name: "101 Switching Protocols unasked", response: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		// Handed on to no one, they are bounded together, as net/http's
		// transport bounds them.
		{name: "1xx over 512 KiB in all", response: strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </"+strings.Repeat("a", 1000)+">\r\n\r\n", 520) + okResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(tt.response, true))
			tr := newH1(t, testTimeouts)
			f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
			switch {
			case f.err == nil:
				t.Fatalf("no error: status %d, header %q, body %q", f.resp.StatusCode, f.resp.Header, f.body)
			case tt.is != nil && !errors.Is(f.err, tt.is):
				t.Fatalf("error %v, want %v", f.err, tt.is)
			}
		})
	}
}

// A header line whose first 4096 bytes end just before its LF fills the
// connection's 4 KiB bufio.Reader: ReadSlice returns the line without its
// LF (bufio.ErrBufferFull), then the LF alone, which readHead takes for
// the empty line that ends the head. The rest of the head becomes the body.
func TestH1HeaderLineEndingAtBufferEdge(t *testing.T) {
	t.Parallel()
	value := strings.Repeat("a", 4096-len("X-Long: \r"))
	u := startCanned(t, always("HTTP/1.1 200 OK\r\nX-Long: "+value+"\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", false))
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(2 * time.Second)})
	// The body runs to the connection's close; the upstream closes it
	// after a while, as upstreams do with idle connections.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	f := fetch(tr, newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/"))
	if f.err != nil {
		t.Fatalf("error %v, body so far %q", f.err, f.body)
	}
	if f.body != "hello" || f.resp.Header.Get("Content-Type") != "text/plain" || f.resp.ContentLength != 5 || f.resp.Header.Get("X-Long") != value {
		t.Fatalf("header %q, ContentLength %d, body %q; want X-Long, Content-Type text/plain, 5, hello",
			f.resp.Header, f.resp.ContentLength, f.body)
	}
}

func TestH1RequestHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		target string // path and query
		host   string // req.Host; the upstream address when empty
		header http.Header
		want   string // {host} stands for the upstream address
	}{{
		name:   "raw query kept, fields sorted, values on lines of their own",
		method: http.MethodGet, target: "/a%20b/c?b=2;c&a=1",
		header: http.Header{"X-Multi": {"one", "two"}, "X-B": {"2"}, "Accept": {"*/*"}},
		want: "GET /a%20b/c?b=2;c&a=1 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n" +
			"Accept: */*\r\nX-B: 2\r\nX-Multi: one\r\nX-Multi: two\r\n\r\n",
	}, {
		name:   "User-Agent right after Host",
		method: http.MethodGet, target: "/",
		header: http.Header{"Zeta": {"z"}, "User-Agent": {"probe/1"}, "Alpha": {"a"}},
		want:   "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: probe/1\r\nAlpha: a\r\nZeta: z\r\n\r\n",
	}, {
		name:   "empty User-Agent omitted",
		method: http.MethodGet, target: "/x",
		header: http.Header{"User-Agent": {""}},
		want:   "GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n",
	}, {
		name:   "Host from req.Host",
		method: http.MethodGet, target: "/", host: "front.example",
		want: "GET / HTTP/1.1\r\nHost: front.example\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
	}, {
		name:   "empty path and a forced query",
		method: http.MethodGet, target: "?",
		want: "GET /? HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
	}, {
		name:   "DELETE has no Content-Length",
		method: http.MethodDelete, target: "/orders/7",
		header: http.Header{"Accept": {"*/*"}},
		want:   "DELETE /orders/7 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\nAccept: */*\r\n\r\n",
	}, {
		name:   "OPTIONS has no Content-Length",
		method: http.MethodOptions, target: "/",
		want: "OPTIONS / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
	}, {
		name:   "a body-less POST has Content-Length: 0",
		method: http.MethodPost, target: "/",
		want: "POST / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\r\n",
	}, {
		name:   "HEAD has no Content-Length",
		method: http.MethodHead, target: "/",
		want: "HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always("HTTP/1.1 204 No Content\r\n\r\n", false))
			tr := newH1(t, testTimeouts)
			req := newRequest(t, t.Context(), tt.method, "http://"+u.addr+tt.target)
			req.Host = tt.host
			for k, vv := range tt.header {
				req.Header[k] = vv
			}
			if f := fetch(tr, req); f.err != nil {
				t.Fatal(f.err)
			}
			heads, _ := u.recorded()
			want := strings.ReplaceAll(tt.want, "{host}", u.addr)
			if len(heads) != 1 || heads[0] != want {
				t.Fatalf("upstream read %q\nwant %q", heads, want)
			}
		})
	}
}

func TestH1RequestHeadRefusesInvalidFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
	}{
		{name: "CRLF in a value", header: http.Header{"X-A": {"a\r\nX-Injected: 1"}}},
		{name: "CRLF in User-Agent", header: http.Header{"User-Agent": {"a\r\nX-Injected: 1"}}},
		{name: "space in a name", header: http.Header{"X A": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(okResponse, false))
			tr := newH1(t, testTimeouts)
			req := newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")
			for k, vv := range tt.header {
				req.Header[k] = vv
			}
			if f := fetch(tr, req); f.err == nil {
				t.Fatalf("no error: status %d", f.resp.StatusCode)
			}
			// Nothing was written, so the connection stays pooled and
			// serves the next request.
			u.nextOn(t, tr, 1, "")
			heads, stray := u.recorded()
			if len(heads) != 1 || strings.Contains(heads[0], "Injected") || strings.Contains(heads[0], "X A") || len(stray) != 0 {
				t.Fatalf("upstream read %q and %q, want only the next request", heads, stray)
			}
		})
	}
}

func TestH1SequentialRequestsReuseOneConnection(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always(okResponse, false))
	tr := newH1(t, testTimeouts)
	for i := range 5 {
		if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil || f.body != "ok" {
			t.Fatalf("request %d: body %q, error %v", i, f.body, f.err)
		}
	}
	if n := u.accepts.Load(); n != 1 {
		t.Fatalf("5 requests took %d connections, want 1", n)
	}
}

// The upstream holds its answers until all the requests of a round have
// arrived, so each of them must have a connection of its own.
func TestH1ConcurrentRequestsArePooled(t *testing.T) {
	t.Parallel()
	const n = 8
	var mu sync.Mutex
	rounds := map[int]chan struct{}{}
	u := startCanned(t, func(i int, _ *http.Request) (string, bool) {
		mu.Lock()
		all, ok := rounds[i/n]
		if !ok {
			all = make(chan struct{})
			rounds[i/n] = all
		}
		if i%n == n-1 {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
		return okResponse, false
	})
	tr := newH1(t, testTimeouts)
	round := func() {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			req := newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")
			wg.Go(func() {
				f := fetch(tr, req)
				if f.err == nil && f.body != "ok" {
					f.err = fmt.Errorf("body %q", f.body)
				}
				errs <- f.err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	round()
	p := tr.pool(u.addr)
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != n {
		t.Fatalf("pool holds %d connections after %d concurrent requests, want %d", idle, n, n)
	}
	round()
	if a := u.accepts.Load(); a != n {
		t.Fatalf("two rounds of %d concurrent requests took %d connections, want %d", n, a, n)
	}
}

// The upstream closes each connection after its answer, without saying
// so. A GET on the closed pooled connection is replayed on a new one; a
// DELETE, which may not be replayed, finds the connection closed by
// peeking at it before use.
func TestH1UpstreamClosedIdleConnection(t *testing.T) {
	t.Parallel()
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, always(okResponse, true))
			tr := newH1(t, testTimeouts)
			if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
				t.Fatal(f.err)
			}
			eventually(t, 5*time.Second, "the upstream closes the connection", func() bool { return u.serverClosed.Load() == 1 })
			f := fetch(tr, newRequest(t, t.Context(), method, "http://"+u.addr+"/"))
			if f.err != nil || f.body != "ok" {
				t.Fatalf("%s after the close: body %q, error %v", method, f.body, f.err)
			}
			if heads, _ := u.recorded(); len(heads) != 2 || !strings.HasPrefix(heads[1], method+" ") {
				t.Fatalf("upstream read %q, want a GET then a %s", heads, method)
			}
			if n := u.accepts.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

func TestH1IdleConnectionsExpire(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always(okResponse, false))
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(10 * time.Second), Idle: Duration(100 * time.Millisecond)})
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
		t.Fatal(f.err)
	}
	eventually(t, 5*time.Second, "the transport closes the idle connection", func() bool { return u.clientClosed.Load() == 1 })
}

// An upstream sends a second, unasked-for response on a connection while
// it waits in the pool. net/http's Transport sees it arrive (its read loop
// peeks at every idle connection) and drops the connection; the next
// request must get its own answer, not the one nobody asked for.
func TestH1UnsolicitedResponseOnIdleConnection(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("alive cannot peek at a socket here")
	}
	u := startCanned(t, func(n int, _ *http.Request) (string, bool) {
		if n == 0 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", false
	})
	tr := newH1(t, testTimeouts)
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil || f.body != "first" {
		t.Fatalf("first: body %q, error %v", f.body, f.err)
	}
	if _, err := io.WriteString(u.conn(0), "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nunasked!"); err != nil {
		t.Fatal(err)
	}
	p := tr.pool(u.addr)
	p.mu.Lock()
	pc := p.idle[0]
	p.mu.Unlock()
	eventually(t, 5*time.Second, "the unasked-for bytes reach the pooled connection", func() bool { return !pc.peek.alive() })

	f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
	if f.err != nil || f.body != "second" {
		t.Fatalf("second: body %q, error %v; want its own answer, second", f.body, f.err)
	}
}

// waitForRequests polls until the upstream has read n request heads.
func waitForRequests(t *testing.T, u *cannedUpstream, n int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("the upstream reads %d requests", n), func() bool {
		heads, _ := u.recorded()
		return len(heads) >= n
	})
}

func TestH1CancelWhileWaitingForTheHead(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("", false)) // never answers
	tr := newH1(t, testTimeouts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/")
	done := make(chan fetched, 1)
	go func() { done <- fetch(tr, req) }()
	waitForRequests(t, u, 1)
	cancel()
	select {
	case f := <-done:
		if !errors.Is(f.err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", f.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("RoundTrip still waiting 2s after the cancel")
	}
	eventually(t, 5*time.Second, "the transport closes the connection", func() bool { return u.clientClosed.Load() == 1 })
}

func TestH1ResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("", false)) // never answers
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(100 * time.Millisecond)})
	f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
	var ne net.Error
	if !errors.As(f.err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v, want a net.Error that is a timeout", f.err)
	}
	eventually(t, 5*time.Second, "the transport closes the connection", func() bool { return u.clientClosed.Load() == 1 })
}

func TestH1CancelDuringTheBody(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false)) // 7 bytes never come
	tr := newH1(t, testTimeouts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp, err := tr.RoundTrip(newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 3)
	if _, err := io.ReadFull(resp.Body, b); err != nil || string(b) != "abc" {
		t.Fatalf("read %q, %v", b, err)
	}
	cancel()
	if _, err := resp.Body.Read(b); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after the cancel: %v, want context.Canceled", err)
	}
	eventually(t, 5*time.Second, "the transport closes the connection", func() bool { return u.clientClosed.Load() == 1 })
}

// cancelAfterWrite is an upstream connection that cancels its request as
// soon as the request head is written, and returns from Write once the
// cancellation has reached the connection (its SetDeadline).
type cancelAfterWrite struct {
	net.Conn
	cancel  context.CancelFunc
	reached chan struct{}
	once    sync.Once
}

func (c *cancelAfterWrite) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.cancel()
	select {
	case <-c.reached:
	case <-time.After(5 * time.Second):
	}
	return n, err
}

func (c *cancelAfterWrite) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.once.Do(func() { close(c.reached) })
	return err
}

// A cancel that lands between the request's write and the arming of the
// response-header timer has its past deadline overwritten by the timer's:
// RoundTrip then waits for the timer instead of returning.
func TestH1CancelRightAfterTheWriteIsPrompt(t *testing.T) {
	t.Parallel()
	u := startCanned(t, always("", false)) // never answers
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(3 * time.Second)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dial := tr.dial
	tr.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cancelAfterWrite{Conn: c, cancel: cancel, reached: make(chan struct{})}, nil
	}
	start := time.Now()
	f := fetch(tr, newRequest(t, ctx, http.MethodGet, "http://"+u.addr+"/"))
	if !errors.Is(f.err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", f.err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("RoundTrip returned %v after a cancel at the write, want promptly", d.Round(time.Millisecond))
	}
}

// A request with a body, and an upgrade, are net/http's to send: they
// work against an ordinary server and leave h1Transport's pools alone.
func TestH1BodiesAndUpgradesGoToNetHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	t.Cleanup(srv.Close)
	tr := newH1(t, testTimeouts)
	host := strings.TrimPrefix(srv.URL, "http://")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if f := fetch(tr, req); f.err != nil || f.body != "POST payload" {
		t.Fatalf("POST: body %q, error %v", f.body, f.err)
	}

	req = newRequest(t, t.Context(), http.MethodGet, srv.URL+"/")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rw, ok := resp.Body.(io.ReadWriter)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("upgrade: status %d, body %T", resp.StatusCode, resp.Body)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(rw, b); err != nil || string(b) != "ping" {
		t.Fatalf("upgraded connection echoed %q, %v", b, err)
	}
	if _, used := tr.pools.Load(host); used {
		t.Fatal("h1Transport pooled a connection for a body or an upgrade")
	}
}

// A pooled connection that passes the peek but is closed by the upstream
// as the next request arrives (the race the peek cannot close): an
// idempotent request is sent again on a fresh connection, as net/http's
// Transport does; any other fails rather than risk running twice.
func TestH1ReplayAfterAReusedConnectionCloses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method  string
		replays bool
	}{{http.MethodGet, true}, {http.MethodHead, true}, {http.MethodDelete, false}} {
		t.Run(tt.method, func(t *testing.T) {
			t.Parallel()
			u := startCanned(t, func(n int, _ *http.Request) (string, bool) {
				if n == 1 {
					return "", true // read the request, then close without a byte
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
			})
			tr := newH1(t, testTimeouts)
			if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
				t.Fatal(f.err)
			}
			f := fetch(tr, newRequest(t, t.Context(), tt.method, "http://"+u.addr+"/"))
			heads, _ := u.recorded()
			if !tt.replays {
				if f.err == nil {
					t.Fatalf("%s answered %d; want an error, not a replay", tt.method, f.resp.StatusCode)
				}
				if len(heads) != 2 {
					t.Fatalf("upstream read %d requests, want 2 (no replay)", len(heads))
				}
				return
			}
			if f.err != nil || f.resp.StatusCode != 200 {
				t.Fatalf("%s: error %v", tt.method, f.err)
			}
			if len(heads) != 3 || !strings.HasPrefix(heads[2], tt.method+" ") || u.accepts.Load() != 2 {
				t.Fatalf("upstream read %q over %d connections, want the %s twice over 2", heads, u.accepts.Load(), tt.method)
			}
		})
	}
}
