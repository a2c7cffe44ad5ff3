package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The catalogue below follows PortSwigger's HTTP Request Smuggler
// permutations (CL.TE, TE.CL, TE.TE obfuscations, HTTP/1.0) and the HTTP
// Garden's findings (bare LF and CR, NUL, folding, chunk-size and trailer
// parsing), sent as raw bytes. Each case checks what the client gets, that
// the proxy closed the connection when it refused, and what the upstream
// received: never a request hidden in another.

// rawResponse is one response read off a raw connection.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// exchange writes raw on a new connection to addr and reads responses
// until the server closes the connection (closed) or within passes.
func exchange(t testing.TB, addr, raw string, within time.Duration) (resps []rawResponse, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(within))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return resps, !isTimeout(err)
		}
		b, err := io.ReadAll(resp.Body)
		resps = append(resps, rawResponse{resp.StatusCode, resp.Header, string(b)})
		if err != nil {
			return resps, !isTimeout(err)
		}
	}
}

func statuses(rs []rawResponse) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.status
	}
	return out
}

// upstreamLog is a backend that records every request it receives.
type upstreamLog struct {
	mu   sync.Mutex
	seen []seenRequest
	busy int
}

type seenRequest struct {
	backend, method, uri, host string
	header                     http.Header
	body                       string
	bodyErr                    error
}

func (s seenRequest) String() string { return s.method + " " + s.uri }

func (l *upstreamLog) backend(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.busy++
		l.mu.Unlock()
		b, err := io.ReadAll(r.Body)
		l.mu.Lock()
		l.busy--
		l.seen = append(l.seen, seenRequest{backend: name, method: r.Method, uri: r.RequestURI, host: r.Host,
			header: r.Header.Clone(), body: string(b), bodyErr: err})
		l.mu.Unlock()
		if err != nil {
			return
		}
		w.Header().Set("X-Served-By", name)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.RequestURI, len(b))
	})
}

// requests returns what reached the backends for one Host, once at least
// want have and none is still being read.
func (l *upstreamLog) requests(t testing.TB, host string, want int) []seenRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		var out []seenRequest
		for _, s := range l.seen {
			if s.host == host {
				out = append(out, s)
			}
		}
		busy := l.busy
		l.mu.Unlock()
		if len(out) >= want && busy == 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) proxyAddr() string { return strings.TrimPrefix(e.proxyURL, "http://") }

func TestSmugglingAttemptsNeverReachUpstreamAsSecondRequest(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), log.backend("service"))
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name     string
		raw      string
		status   []int    // answers, in order
		upstream []string // "METHOD target" received, in order
	}{
		// CL.TE and TE.CL: net/http would take the chunked framing, drop the
		// Content-Length and keep the connection.
		{"CL.TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"TE.CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"TE.CL zero", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"CL.TE expect 100", "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		// HTTP/1.0 with Transfer-Encoding: net/http ignores the coding, so
		// the chunked body would be read as the next request.
		{"HTTP/1.0 TE keep-alive", "POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled, []int{400}, nil},
		{"HTTP/1.0 TE", "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, nil},
		// TE.TE obfuscations.
		{"TE space before colon", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled, []int{400}, nil},
		{"TE chunked, identity", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE identity, chunked", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE twice", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE chunked twice", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE xchunked", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE quoted", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE trailing comma", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, nil},
		{"TE vertical tab", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"TE folded", "POST /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled, []int{400}, nil},
		{"TE folded value", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"TE first line folded", "POST /a HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"TE underscore", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", []int{200}, []string{"POST /a"}},
		{"TE tab", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []int{200}, []string{"POST /a"}},
		{"TE upper case", "POST /a HTTP/1.1\r\nHost: x\r\ntransfer-encoding: CHUNKED\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []int{200}, []string{"POST /a"}},
		// Content-Length.
		{"CL differing", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" + smuggled, []int{400}, nil},
		{"CL list", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello" + smuggled, []int{400}, nil},
		{"CL plus", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + smuggled, []int{400}, nil},
		{"CL hex", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello" + smuggled, []int{400}, nil},
		{"CL empty", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n" + smuggled, []int{400}, nil},
		{"CL identical twice", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", []int{200}, []string{"POST /a"}},
		{"CL body looks like a request", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\nConnection: close\r\n\r\n" + smuggled, []int{200}, []string{"POST /a"}},
		// Bare LF, CR and NUL (net/http accepts the bare LFs).
		{"LF request line", "GET /a HTTP/1.1\nHost: x\r\n\r\n" + smuggled, []int{400}, nil},
		{"LF header line", "GET /a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n" + smuggled, []int{400}, nil},
		{"LF end of head", "GET /a HTTP/1.1\r\nHost: x\r\n\n" + smuggled, []int{400}, nil},
		{"LF hides TE", "POST /a HTTP/1.1\r\nHost: x\r\nX-A: b\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"LF only", "GET /a HTTP/1.1\nHost: x\n\n" + smuggled, []int{400}, nil},
		{"bare CR", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + smuggled, []int{400}, nil},
		{"NUL in value", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + smuggled, []int{400}, nil},
		{"NUL in name", "GET /a HTTP/1.1\r\nHost: x\r\nX\x00A: b\r\n\r\n" + smuggled, []int{400}, nil},
		{"space in name", "GET /a HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n" + smuggled, []int{400}, nil},
		{"leading CRLF", "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, nil},
		{"double space", "GET  /a HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled, []int{400}, nil},
		{"HTTP/1.2", "GET /a HTTP/1.2\r\nHost: x\r\n\r\n" + smuggled, []int{400}, nil},
		// Chunked bodies the head did not give away: the head is forwarded,
		// the body is cut at the first byte outside the grammar, the
		// upstream call is aborted and the client answered 400.
		{"chunk size not hex", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk size negative", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk size 0x", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk size overflow", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk size leading space", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk line bare LF", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk ext bare CR", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"chunk data too long", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"last chunk bare LF", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		{"trailer bare LF", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\n\r\n" + smuggled, []int{400}, []string{"POST /a"}},
		// Honest pipelining is served; the first bad request ends the
		// connection, and what follows it is never read.
		{"pipelined", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", []int{200, 200, 200}, []string{"GET /a", "POST /b", "GET /c"}},
		{"pipelined then CL.TE", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{200, 400}, []string{"GET /a"}},
		{"pipelined then bare LF", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\nHost: x\r\n\r\n" + smuggled, []int{200, 400}, []string{"GET /a"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			host := fmt.Sprintf("case-%d", i)
			raw := strings.ReplaceAll(c.raw, "Host: x", "Host: "+host)
			resps, closed := exchange(t, e.proxyAddr(), raw, 5*time.Second)
			if got := statuses(resps); !slices.Equal(got, c.status) {
				t.Errorf("answers %v, want %v (%+v)", got, c.status, resps)
			}
			if !closed {
				t.Errorf("connection left open")
			}
			var got []string
			for _, s := range log.requests(t, host, len(c.upstream)) {
				got = append(got, s.String())
				if strings.Contains(s.uri, "smuggled") {
					t.Errorf("smuggled request reached the upstream")
				}
				if s.header.Get("Transfer_Encoding") != "" {
					t.Errorf("Transfer_Encoding reached the upstream")
				}
			}
			if !slices.Equal(got, c.upstream) {
				t.Errorf("upstream received %q, want %q", got, c.upstream)
			}
			for _, r := range resps {
				if r.status >= 400 && !strings.Contains(r.body, "route _default: ") && r.status != 501 && !goAnswered(r) {
					t.Errorf("answer %d %q does not name the route", r.status, r.body)
				}
			}
		})
	}
}

// goAnswered reports whether net/http refused the request itself (before
// any handler), which it does in its own words.
func goAnswered(r rawResponse) bool {
	return r.header.Get("X-Content-Type-Options") == ""
}

func TestForwardedHeadersCannotBeStrippedViaConnection(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	raw := "GET /a HTTP/1.1\r\nHost: conn-strip\r\n" +
		"Connection: X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, X-Strangler-Shadow, close\r\n" +
		"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n\r\n"
	resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{200}) {
		t.Fatalf("answers %v", got)
	}
	seen := log.requests(t, "conn-strip", 1)
	if len(seen) != 1 {
		t.Fatalf("upstream received %v", seen)
	}
	h := seen[0].header
	for k, want := range map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1", // appended, as nginx does
		"X-Forwarded-Host":  "conn-strip",
		"X-Forwarded-Proto": "http",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestClientCannotMarkRequestAsShadowCopy(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	cfg := basicConfig + "    shadow: {percent: 100}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), log.backend("monolith"), log.backend("service"))
	for i, spoof := range []string{
		"X-Strangler-Shadow: 1\r\n",
		"x-strangler-shadow: 1\r\n",
		"X-Strangler-Shadow: 1\r\nX-Strangler-Shadow: 1\r\n",
		"X_Strangler_Shadow: 1\r\n",
		"X-Strangler-Shadow: 0\r\n",
	} {
		for _, path := range []string{"/api/orders/1", "/home"} {
			host := fmt.Sprintf("shadow-%d", i)
			raw := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + spoof + "Connection: close\r\n\r\n"
			resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
			if got := statuses(resps); !slices.Equal(got, []int{200}) {
				t.Fatalf("%q %s: answers %v", spoof, path, got)
			}
		}
		want := 3 // the orders request, its shadow copy, the unrouted one
		seen := log.requests(t, fmt.Sprintf("shadow-%d", i), want)
		copies := 0
		for _, s := range seen {
			v := s.header.Values(shadowHeader)
			switch {
			case s.backend == "service" && slices.Equal(v, []string{"1"}):
				copies++ // the proxy's own mark on its copy
			case len(v) > 0 || s.header.Get("X_Strangler_Shadow") != "":
				t.Errorf("%q: %s %s on %s carries the client's mark %q", spoof, s.method, s.uri, s.backend, v)
			}
		}
		if len(seen) != want || copies != 1 {
			t.Errorf("%q: upstream received %v (%d copies), want %d requests with one copy", spoof, seen, copies, want)
		}
	}
}

func TestUpgradeOnlyForWebSocket(t *testing.T) {
	t.Parallel()
	var switched atomic.Int32
	// A backend that switches to whatever protocol it is offered, so that
	// only the proxy stands between a client and an h2c tunnel.
	eager := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := r.Header.Get("Upgrade")
		if up == "" {
			w.Header().Set("X-Got-Upgrade", "none")
			io.WriteString(w, "plain")
			return
		}
		switched.Add(1)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + up + "\r\n\r\n")
		brw.Flush()
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), eager, nil)
	for _, up := range []string{"h2c", "H2C", "websocket, h2c", "h2c, websocket", "foo", "TLS/1.2"} {
		raw := "GET /a HTTP/1.1\r\nHost: up\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: " + up +
			"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
		resps, _ := exchange(t, e.proxyAddr(), raw, 2*time.Second)
		if len(resps) == 0 || resps[0].status == http.StatusSwitchingProtocols || resps[0].header.Get("X-Got-Upgrade") != "none" {
			t.Errorf("Upgrade: %s: answers %v, want the backend's plain 200 without Upgrade", up, resps)
		}
	}
	if n := switched.Load(); n != 0 {
		t.Errorf("backend was offered an upgrade %d times", n)
	}
}

func TestBackendSwitchingUnaskedIsRefused(t *testing.T) {
	t.Parallel()
	rogue := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
		brw.Flush()
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), rogue, nil)
	resps, _ := exchange(t, e.proxyAddr(), "GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 2*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{502}) {
		t.Errorf("answers %v, want [502]", got)
	}
}

func TestRequestsAfterRefusedUpgradeAreStillChecked(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	// A WebSocket upgrade the backend does not take (it answers 200), then
	// a smuggling attempt on the same connection.
	raw := "GET /ws HTTP/1.1\r\nHost: ws-refused\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: ws-refused\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: ws-refused\r\n\r\n"
	resps, closed := exchange(t, e.proxyAddr(), raw, 5*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{200, 400}) || !closed {
		t.Errorf("answers %v (closed %v), want [200 400] and a closed connection", got, closed)
	}
	var got []string
	for _, s := range log.requests(t, "ws-refused", 1) {
		got = append(got, s.String())
	}
	if !slices.Equal(got, []string{"GET /ws"}) {
		t.Errorf("upstream received %q", got)
	}
}

// poisoningBackend answers the first request it receives with first, an
// answer whose framing is ambiguous. If the proxy sends another request on
// that connection, it first sends the rest of what it meant as that
// answer, which a reader that framed it differently takes as the answer to
// the new request (response queue poisoning). Other requests get next.
type poisoningBackend struct {
	ln    net.Listener
	conns atomic.Int32
}

func newPoisoningBackend(t *testing.T, first, poison, next string) *poisoningBackend {
	t.Helper()
	b := &poisoningBackend{ln: listen(t)}
	t.Cleanup(func() { b.ln.Close() })
	var served atomic.Int32
	go func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				ambiguous := false
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					answer := next
					switch {
					case served.Add(1) == 1:
						answer, ambiguous = first, true
					case ambiguous:
						answer = poison + next
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return b
}

func (b *poisoningBackend) url() string { return "http://" + b.ln.Addr().String() }

func TestAmbiguousUpstreamResponseIsOneResponseAndConnectionNotReused(t *testing.T) {
	t.Parallel()
	// splitCR places the CR of the head's final empty line at the end of
	// the transport's first 4096-byte read.
	head := "HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\nX-Pad: "
	splitCR := head + strings.Repeat("p", 4096-len(head)-3) + "\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"
	cases := []struct{ name, first string }{
		{"CL.TE", "HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"},
		{"TE.CL split CR", splitCR},
		{"HTTP/1.0 TE", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nfirst"},
		{"TE twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 5\n\nfirst"},
		{"bare LF end", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\nfirst"},
		{"folded", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\r\n b\r\n\r\nfirst"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Refusing the ambiguous answer (a 502) is fine too.
			wantAmbiguousAnswerNotReused(t, c.first, "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true)
		})
	}
}

// wantAmbiguousAnswerNotReused sends req three times through a proxy in
// front of a poisoningBackend whose first answer is first (its body
// "first"): each client gets one final answer, "first" and then "next"
// twice, none of them the poison, and the first answer's connection is
// not reused. Interim answers passed on are not counted. refuseOK lets the
// first request get a 502 instead, the answer refused.
func wantAmbiguousAnswerNotReused(t *testing.T, first, req string, refuseOK bool) {
	t.Helper()
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\npoisoned"
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
	back := newPoisoningBackend(t, first, poison, next)
	cfg := strings.Replace(basicConfig, "monolith: {{monolith}}", "monolith: "+back.url(), 1)
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil)
	for i, want := range []string{"first", "next", "next"} {
		all, _ := exchange(t, e.proxyAddr(), req, 5*time.Second)
		resps := slices.DeleteFunc(all, func(r rawResponse) bool { return r.status < 200 })
		if i == 0 && refuseOK && len(resps) == 1 && resps[0].status == http.StatusBadGateway {
			continue
		}
		if len(resps) != 1 || resps[0].status != 200 || resps[0].body != want || resps[0].header.Get("X-Poison") != "" {
			t.Fatalf("request %d: got %+v, want one answer %q", i, resps, want)
		}
	}
	if n := back.conns.Load(); n < 2 {
		t.Errorf("the ambiguous answer's connection was reused (%d connection for 3 requests)", n)
	}
}
