//go:build unix

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// dialRaw dials the proxy and writes raw.
func dialRaw(t *testing.T, addr, raw string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// closedWithin reports whether the proxy closes c (EOF or reset)
// within d, reading and dropping whatever comes.
func closedWithin(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, br)
	return !isTimeout(err)
}

// An upstream that cannot be reached answers 502 before any byte of the
// body was read. The client then sends no more of its body: the
// connection is not held past stall_timeout (net/http drains up to 256
// KiB of an unread body after the handler, which had no deadline).
func TestUnreadBodyAfter502NotHeldPastStall(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(basicConfig, "{{monolith}}", deadURL(t), 1) + "limits: {stall_timeout: 300ms, idle_timeout: 1s, read_header_timeout: 1s}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil)
	for _, c := range []struct{ name, raw string }{
		{"partial body", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("b", 10)},
		{"expect 100-continue", "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"},
		{"chunked, partial", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
	} {
		conn, br := dialRaw(t, e.proxyAddr(), c.raw)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Errorf("%s: no answer: %v", c.name, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: status %d, want 502", c.name, resp.StatusCode)
		}
		start := time.Now()
		if !closedWithin(conn, br, 3*time.Second) {
			t.Errorf("%s: connection still open %v after the 502 (stall_timeout 300ms, idle_timeout and read_header_timeout 1s): the unread body is awaited with no deadline",
				c.name, time.Since(start).Round(time.Millisecond))
		}
	}
}

// OPTIONS * with a declared body the client never sends is not held: it
// was answered before limitBody, its body never read, and net/http waited
// for it (up to 256 KiB, with no deadline) before writing the answer.
func TestOptionsStarWithStalledBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"limits: {stall_timeout: 300ms, idle_timeout: 1s, read_header_timeout: 1s}\n", flagJSON("orders-percent", 0), nil, nil)
	conn, br := dialRaw(t, e.proxyAddr(), "OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		return // answered: fine
	}
	if isTimeout(err) {
		t.Fatalf("OPTIONS * with a stalled body: no answer and no disconnect in %v (stall_timeout 300ms, idle_timeout and read_header_timeout 1s)", time.Since(start).Round(time.Millisecond))
	}
}

// max_body with a service that a fallback and a shadow both buffer for:
// the body is read (by bufferBody) before any upstream call, so the limit
// is met there. The client must get 413, the connection close, the
// service see no complete request, no shadow copy be sent, and nothing be
// counted against the service.
func TestMaxBodyWithFallbackAndShadowBuffering(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	cfg := fallbackConfig("{{service}}", `    max_body: 1KiB
    fallback: {on: [connect, reset, timeout, 5xx], methods: [GET, POST]}
    shadow:
      percent: 100
      methods: [POST]
`)
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), log.backend("monolith"), log.backend("service"))
	chunk := func(n int) string { return fmt.Sprintf("%x\r\n%s\r\n", n, strings.Repeat("c", n)) }
	head := "POST /api/orders/1 HTTP/1.1\r\nX-User-Id: u\r\nTransfer-Encoding: chunked\r\nHost: "

	// At the limit: served by the service, copied to the monolith.
	resps, _ := exchange(t, e.proxyAddr(), head+"at\r\nConnection: close\r\n\r\n"+chunk(600)+chunk(424)+"0\r\n\r\n", 5*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{200}) {
		t.Errorf("1024 bytes: answers %v", got)
	}
	seen := log.requests(t, "at", 2)
	if len(seen) != 2 {
		t.Errorf("1024 bytes: upstreams received %v", seen)
	}
	for _, s := range seen {
		if len(s.body) != 1024 || s.bodyErr != nil {
			t.Errorf("1024 bytes: %s received %d bytes (%v)", s.backend, len(s.body), s.bodyErr)
		}
	}

	// One byte over.
	resps, closed := exchange(t, e.proxyAddr(), head+"over\r\n\r\n"+chunk(600)+chunk(425)+"0\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].status != 413 || !closed {
		t.Errorf("1025 bytes: got %+v (closed %v), want 413 and close", resps, closed)
	}
	seen = log.requests(t, "over", 1)
	for _, s := range seen {
		if s.bodyErr == nil {
			t.Errorf("1025 bytes: %s received a complete request with %d body bytes", s.backend, len(s.body))
		}
		if s.backend == "monolith" {
			t.Errorf("1025 bytes: the monolith received a copy or replay (%d bytes)", len(s.body))
		}
	}
	if v := e.metric(`strangler_fallbacks_total{reason="reset",route="orders"}`); v > 0 {
		t.Errorf("a fallback was counted for a refused body: %v", v)
	}
}

// A request pipelined behind one refused for its body must be neither
// answered nor forwarded.
func TestPipelinedAfter413(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig+"limits: {max_body: 1KiB}\n", flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	const next = "GET /smuggled HTTP/1.1\r\nHost: p\r\n\r\n"
	for _, c := range []struct{ name, raw string }{
		{"declared", "POST /a HTTP/1.1\r\nHost: p\r\nContent-Length: 1025\r\n\r\n" + strings.Repeat("x", 1025) + next},
		{"chunked", "POST /b HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 1025, strings.Repeat("x", 1025)) + next},
	} {
		resps, closed := exchange(t, e.proxyAddr(), c.raw, 5*time.Second)
		if got := statuses(resps); !slices.Equal(got, []int{413}) || !closed {
			t.Errorf("%s: answers %v (closed %v), want [413] and close", c.name, got, closed)
		}
	}
	for _, s := range log.requests(t, "p", 1) {
		if s.uri == "/smuggled" {
			t.Errorf("the pipelined request reached the upstream")
		}
	}
}

// Bodies on GET and HEAD, and chunked bodies with trailers, meet the same
// limit: at it they pass whole, one byte over they are refused.
func TestBodyLimitEdgeShapes(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig+"limits: {max_body: 1KiB}\n", flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	body := func(n int) string { return strings.Repeat("t", n) }
	chunked := func(n int, trailer string) string {
		return fmt.Sprintf("%x\r\n%s\r\n0\r\n%s\r\n", n, body(n), trailer)
	}
	cases := []struct {
		name, raw string
		status    int
		wantLen   int // body bytes the upstream must receive whole; -1: none or broken
	}{
		{"trailer at limit", "POST /t HTTP/1.1\r\nHost: e1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(1024, "X-Trailer: v\r\n"), 200, 1024},
		{"trailer over limit", "POST /t HTTP/1.1\r\nHost: e2\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(1025, "X-Trailer: v\r\n"), 413, -1},
		{"GET chunked over", "GET /t HTTP/1.1\r\nHost: e3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(1025, ""), 413, -1},
		{"GET declared over", "GET /t HTTP/1.1\r\nHost: e4\r\nContent-Length: 1025\r\n\r\n" + body(1025), 413, -1},
		{"GET at limit", "GET /t HTTP/1.1\r\nHost: e5\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n" + body(1024), 200, 1024},
	}
	for _, c := range cases {
		host := strings.Split(strings.Split(c.raw, "Host: ")[1], "\r")[0]
		resps, closed := exchange(t, e.proxyAddr(), c.raw, 5*time.Second)
		if got := statuses(resps); !slices.Equal(got, []int{c.status}) || !closed {
			t.Errorf("%s: answers %v (closed %v), want [%d]", c.name, got, closed, c.status)
		}
		want := 0
		if c.wantLen >= 0 {
			want = 1
		}
		seen := log.requests(t, host, want)
		for _, s := range seen {
			if c.wantLen < 0 && s.bodyErr == nil {
				t.Errorf("%s: upstream received a complete request (%d bytes)", c.name, len(s.body))
			}
			if c.wantLen >= 0 && (len(s.body) != c.wantLen || s.bodyErr != nil) {
				t.Errorf("%s: upstream received %d bytes (%v)", c.name, len(s.body), s.bodyErr)
			}
			if s.header.Get("X-Trailer") != "" {
				t.Errorf("%s: trailer forwarded", c.name)
			}
		}
		if c.wantLen >= 0 && len(seen) != 1 {
			t.Errorf("%s: upstream received %v", c.name, seen)
		}
	}

	// HEAD with a declared body over the limit: 413, closed, nothing
	// forwarded.
	conn, br := dialRaw(t, e.proxyAddr(), "HEAD /t HTTP/1.1\r\nHost: e6\r\nContent-Length: 1025\r\n\r\n"+body(1025))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != 413 {
		t.Errorf("HEAD over: %v %v", resp, err)
	} else if !closedWithin(conn, br, 3*time.Second) {
		t.Errorf("HEAD over: connection kept open")
	}
	if seen := log.requests(t, "e6", 0); len(seen) != 0 {
		t.Errorf("HEAD over: upstream received %v", seen)
	}
}
