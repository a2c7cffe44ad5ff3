package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A malformed OPTIONS * head (bare LF in a header line) pipelined after an
// honest GET: the GET is served, the bad head refused. When net/http
// answered OPTIONS * itself, the guard queued no verdict for it, its cut
// ended the stream as soon as the GET was admitted, and net/http's
// background read then cancelled the GET.
func TestPipelinedBeforeBadOptionsStarIsServed(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		log.backend("monolith").ServeHTTP(w, r)
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), slow, nil)
	raw := "GET /a HTTP/1.1\r\nHost: opt-star\r\n\r\n" +
		"OPTIONS * HTTP/1.1\r\nHost: opt-star\r\nX-A: a\nX-B: b\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: opt-star\r\n\r\n"
	resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
	if len(resps) == 0 || resps[0].status != 200 {
		t.Errorf("answers %v (%+v), want the pipelined GET /a answered 200 first", statuses(resps), resps)
	}
	for _, s := range log.requests(t, "opt-star", 1) {
		if strings.Contains(s.uri, "smuggled") {
			t.Errorf("smuggled request reached the upstream")
		}
	}
}

// A bare LF in the OPTIONS * request line is refused (400, connection
// closed), as for any other head; net/http used to answer it 200 itself
// and leave the connection hanging. A valid OPTIONS * is answered 200 by
// the proxy, and * with another method 400.
func TestOptionsStar(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	raw := "OPTIONS * HTTP/1.1\nHost: x\r\n\r\n"
	start := time.Now()
	resps, closed := exchange(t, e.proxyAddr(), raw, 3*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{400}) || !closed {
		t.Errorf("answers %v, closed %v after %v; want [400] and the connection closed", got, closed, time.Since(start).Round(time.Millisecond))
	}
	resps, _ = exchange(t, e.proxyAddr(), "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET * HTTP/1.1\r\nHost: x\r\n\r\n", 3*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{200, 400}) {
		t.Errorf("OPTIONS * then GET *: answers %v, want [200 400]", got)
	}
}

// A malformed chunked body (NUL in a chunk extension; net/http ignores
// extensions) is cut and answered 400, with or without an Upgrade header.
// An Upgrade header put the guard in "soft" mode (what follows may be
// tunnel data) for the request's own body too, so it stopped following
// instead of cutting, and the body reached the upstream.
func TestMalformedChunkWithUpgradeHeaderIsCut(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	for i, up := range []string{"", "Upgrade: h2c\r\nConnection: Upgrade\r\n", "Upgrade: foo\r\n"} {
		host := fmt.Sprintf("soft-%d", i)
		raw := "POST /a HTTP/1.1\r\nHost: " + host + "\r\n" + up + "Transfer-Encoding: chunked\r\n\r\n" +
			"5;a\x00b\r\nhello\r\n0\r\n\r\n"
		resps, closed := exchange(t, e.proxyAddr(), raw, 3*time.Second)
		if got := statuses(resps); !slices.Equal(got, []int{400}) || !closed {
			t.Errorf("%q: answers %v (closed %v), want [400] and closed", up, got, closed)
		}
		for _, s := range log.requests(t, host, 0) {
			if s.bodyErr == nil {
				t.Errorf("%q: the upstream received %s with the whole body %q", up, s, s.body)
			}
		}
	}
}

// Request trailers are not forwarded: underscore names and the fields the
// proxy sets (X-Forwarded-For, X-Strangler-Shadow) sent as trailers got
// past the rules applied to the head when the body was buffered before the
// call (fallback or shadow), since ReverseProxy cloned r.Trailer, already
// filled. Without buffering, their names went in a Trailer field.
func TestRequestTrailersNotForwarded(t *testing.T) {
	t.Parallel()
	for name, extra := range map[string]string{
		"buffered for a fallback": "",
		"streamed":                "    fallback: {on: []}\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got, head http.Header
			back := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				mu.Lock()
				got, head = r.Trailer.Clone(), r.Header.Clone()
				mu.Unlock()
				io.WriteString(w, "ok")
			})
			e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), nil, back)
			raw := "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
				"Trailer: X_Forwarded_For, X-Forwarded-For, X-Strangler-Shadow\r\nConnection: close\r\n\r\n" +
				"5\r\nhello\r\n0\r\nX_Forwarded_For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Strangler-Shadow: 1\r\n\r\n"
			resps, _ := exchange(t, e.proxyAddr(), raw, 3*time.Second)
			if got := statuses(resps); !slices.Equal(got, []int{200}) {
				t.Fatalf("answers %v", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) > 0 || head["Trailer"] != nil {
				t.Errorf("service received trailers %v (Trailer field %q)", got, head["Trailer"])
			}
		})
	}
}

// silentTLS accepts TCP connections and never answers the TLS
// handshake (or, with hangUp, closes the connection once it has read the
// ClientHello): no HTTP byte can reach it.
func silentTLS(t *testing.T, hangUp bool) string {
	t.Helper()
	ln := listen(t)
	var mu sync.Mutex
	var conns []io.Closer
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if hangUp {
				go func() {
					c.Read(make([]byte, 4096))
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}()
				continue
			}
			go io.Copy(io.Discard, c) // reads the ClientHello, says nothing
		}
	}()
	return "https://" + ln.Addr().String()
}

// A TLS handshake that does not complete is a connect failure (issue 7:
// "connect (refused, unreachable, DNS, TLS handshake): nothing reached the
// service, so the request goes to the monolith whatever its method"). Left
// to net/http, a handshake timeout was a timeout (504 for a POST) and a
// handshake the service hung up on a reset (502).
func TestTLSHandshakeFailureIsAConnectFailure(t *testing.T) {
	t.Parallel()
	for _, hangUp := range []bool{false, true} {
		t.Run(fmt.Sprintf("hangUp=%v", hangUp), func(t *testing.T) {
			t.Parallel()
			var mono hitCounter
			cfg := strings.Replace(fallbackConfig(silentTLS(t, hangUp), ""), "timeouts: {response_header: 300ms}",
				"timeouts: {connect: 300ms, response_header: 300ms}", 1)
			e := newEnv(t, cfg, flagJSON("orders-percent", 100), mono.handler(), nil)
			resp, body := post(e, "/api/orders/1", "pay=1")
			if resp.StatusCode != 200 || mono.n() != 1 {
				t.Errorf("POST to a service whose TLS handshake failed: %d %q, monolith hits %d; want the monolith's answer",
					resp.StatusCode, strings.TrimSpace(body), mono.n())
			}
		})
	}
}

type hitCounter struct {
	mu sync.Mutex
	c  int
}

func (a *hitCounter) n() int { a.mu.Lock(); defer a.mu.Unlock(); return a.c }

func (a *hitCounter) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		a.mu.Lock()
		a.c++
		a.mu.Unlock()
		w.Header().Set("X-Served-By", "monolith")
		io.WriteString(w, "monolith")
	})
}

// A replay happens "before any byte of the response is written to the
// client". A service that sends 103 Early Hints and then resets has had
// its 103 written already: no replay (the client got the service's hints
// and then the monolith's answer). Likewise a 103 then a 5xx, with 5xx in
// fallback.on: the service's 5xx passes.
func TestNoReplayAfterInterimAnswer(t *testing.T) {
	t.Parallel()
	reset := func(w http.ResponseWriter) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	}
	for _, tc := range []struct {
		name, request string
		then          func(w http.ResponseWriter)
		want          []int
		wantBody      string
	}{
		{"GET, then a reset", "GET", reset, []int{103, 502}, ""},
		{"GET, then a 5xx (direct path)", "GET", func(w http.ResponseWriter) { http.Error(w, "service broke", 500) }, []int{103, 500}, "service broke\n"},
		// A body: ReverseProxy's path, where the 5xx is gone by the time
		// the replay is refused.
		{"POST, then a 5xx", "POST", func(w http.ResponseWriter) { http.Error(w, "service broke", 500) }, []int{103, 502}, "Bad Gateway: route orders: service answered with a server error\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mono hitCounter
			service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				w.Header().Set("Link", "</service.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.Header().Del("Link")
				tc.then(w)
			})
			e := newEnv(t, fallbackConfig("{{service}}", "    fallback: {on: [connect, reset, timeout, 5xx], methods: [GET, POST]}\n"),
				flagJSON("orders-percent", 100), mono.handler(), service)
			raw := tc.request + " /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nConnection: close\r\n"
			if tc.request == "POST" {
				raw += "Content-Length: 5\r\n\r\nhello"
			} else {
				raw += "\r\n"
			}
			resps, _ := exchange(t, e.proxyAddr(), raw, 3*time.Second)
			if got := statuses(resps); !slices.Equal(got, tc.want) || mono.n() != 0 {
				t.Fatalf("answers %v, monolith hits %d; want %v and none (the service's 103 was out)", got, mono.n(), tc.want)
			}
			if tc.wantBody != "" && resps[1].body != tc.wantBody {
				t.Errorf("final answer %q, want %q", resps[1].body, tc.wantBody)
			}
		})
	}
}
