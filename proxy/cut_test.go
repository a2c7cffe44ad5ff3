package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// bothPaths are a method that takes each forwarding path: a body-less GET
// the direct path, a POST with a body ReverseProxy.
var bothPaths = []string{"GET", "POST"}

// sendOn sends method to route orders (with a body for a POST) and
// returns the answer, its body unread.
func sendOn(t *testing.T, e *env, method string) *http.Response {
	t.Helper()
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("x")
	}
	req, _ := http.NewRequest(method, e.proxyURL+"/api/orders/1", body)
	req.Header.Set("X-User-Id", "u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return resp
}

// A client that leaves mid-answer is the client's doing: not an upstream
// error of any kind, whether the proxy's read of the answer or its write
// to the client fails first (a race: before, a slow stream counted a
// "canceled" and a fast download nothing).
func TestClientLeavingMidAnswerIsNoUpstreamError(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select { // the rest comes later
		case <-release:
		case <-r.Context().Done():
		}
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, stream)
	for i, method := range bothPaths {
		resp := sendOn(t, e, method)
		if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "first\n" {
			t.Fatalf("%s: %q %v", method, line, err)
		}
		resp.Body.Close() // leaves mid-answer
		// Counted in requests_total once the handler is done, after any
		// upstream error would have been.
		if got := e.waitMetric(`strangler_requests_total{backend="service",code="200",route="orders"}`, float64(i+1)); got != float64(i+1) {
			t.Fatalf("%s: requests %v", method, got)
		}
	}
	for _, kind := range []string{errCanceled, errReset, errTimeout} {
		if got := e.metric(`strangler_upstream_errors_total{backend="service",kind="` + kind + `",route="orders"}`); got != 0 {
			t.Errorf("upstream errors of kind %s: %v, want 0", kind, got)
		}
	}
}

// A chunked body that grows past max_body while the call is on is the
// proxy's 413: counted and logged as backend "proxy", like the refusal of
// a body declared too large.
func TestBodyCutAtMaxBodyIsTheProxysAnswer(t *testing.T) {
	t.Parallel()
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	tp, ended := recordSpans(t)
	e := newEnvWith(t, basicConfig+"limits: {max_body: 1KiB}\n", flagJSON("orders-percent", 100), nil, echo, Options{TracerProvider: tp})
	req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", io.MultiReader(strings.NewReader(strings.Repeat("x", 2048))))
	req.Header.Set("X-User-Id", "u")
	if resp, _ := e.do(req); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if got := e.waitMetric(`strangler_requests_total{backend="proxy",code="413",route="orders"}`, 1); got != 1 {
		t.Errorf("proxy 413s: %v, want 1 (service's: %v)", got, e.metric(`strangler_requests_total{backend="service",code="413",route="orders"}`))
	}
	wantAttrs(t, "server", spanOfKind(ended(2), trace.SpanKindServer)[0], map[string]string{"strangler.backend": "proxy"})
}

// A shadow read of the request body that shadow_memory refused costs the
// comparison, not the fallback: the body read ahead for the replay is
// still replayed.
func TestRefusedShadowReadKeepsTheFallback(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get(shadowHeader) == "" {
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
		}
		io.WriteString(w, "monolith")
	})
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "service down", http.StatusServiceUnavailable)
	})
	cfg := strings.Replace(basicConfig, "    sticky: header:X-User-Id\n",
		"    sticky: header:X-User-Id\n    shadow: {percent: 100, methods: [PUT]}\n    fallback: {on: [connect, reset, timeout, 5xx], methods: [GET, PUT]}\n", 1) +
		"shadow_memory: 2KiB\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), mono, down)
	body := strings.Repeat("y", 4000)
	req, _ := http.NewRequest("PUT", e.proxyURL+"/api/orders/1", strings.NewReader(body))
	req.Header.Set("X-User-Id", "u")
	resp, answer := e.do(req)
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 200 || answer != "monolith" || len(got) != 1 || got[0] != body {
		t.Fatalf("%d %q, the monolith got %d bodies; want the PUT replayed to it whole", resp.StatusCode, answer, len(got))
	}
	if v := e.waitMetric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`, 1); v != 1 {
		t.Errorf("overload skips %v, want 1", v)
	}
	eventually(t, 2*time.Second, "shadow_memory given back", func() bool { return e.srv.shadowMem.used.Load() == 0 })
}

// A client body that goes past max_body after its answer began (the
// service echoes as it reads) is the client's doing: the cut answer ends
// at once (net/http would drain the refused body for stall_timeout first),
// no upstream error is counted, and nothing blames the upstream in the
// log.
func TestBodyPastMaxBodyMidAnswer(t *testing.T) {
	t.Parallel()
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig+"limits: {max_body: 1KiB}\n", flagJSON("orders-percent", 100), nil, echo,
		Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	c, err := net.Dial("tcp", strings.TrimPrefix(e.proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // stall_timeout is 60s
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("echo: %v", err)
	}
	io.WriteString(c, "800\r\n"+strings.Repeat("y", 0x800)+"\r\n")
	if _, err := io.ReadAll(resp.Body); isTimeout(err) {
		t.Errorf("the cut answer did not end: %v", err)
	}
	if got := e.waitMetric(`strangler_requests_total{backend="service",code="200",route="orders"}`, 1); got != 1 {
		t.Fatalf("requests %v", got)
	}
	for _, kind := range []string{errConnect, errTimeout, errReset, errCanceled} {
		if v := e.metric(`strangler_upstream_errors_total{backend="service",kind="` + kind + `",route="orders"}`); v != 0 {
			t.Errorf("upstream errors of kind %s: %v, want 0", kind, v)
		}
	}
	if strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("a warning for the client's body:\n%s", logs.String())
	}
}

// A shadow copy's answer cut mid-body is its comparison's error, not an
// upstream error of the route: strangler_upstream_errors_total counts the
// calls that served clients, and the service's errors there page whoever
// ramps it, though no client saw this one.
func TestShadowCopyCutIsNoUpstreamError(t *testing.T) {
	t.Parallel()
	for name, cut := range map[string]string{
		"content-length": "Content-Length: 10\r\n\r\n{\"a\"",
		"chunked":        "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cutting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				c, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"+cut)
				c.Close()
			})
			e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), answer(200, `{"a":1}`), cutting)
			if resp, body := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 200 || body != `{"a":1}` {
				t.Fatalf("client got %d %q, want the monolith's 200", resp.StatusCode, body)
			}
			if got := e.waitMetric(`strangler_comparisons_total{result="error",route="orders"}`, 1); got != 1 {
				t.Fatalf("comparison errors %v, want 1", got)
			}
			for _, kind := range []string{errConnect, errTimeout, errReset, errCanceled} {
				if v := e.metric(`strangler_upstream_errors_total{backend="service",kind="` + kind + `",route="orders"}`); v != 0 {
					t.Errorf("upstream errors of kind %s: %v, want 0", kind, v)
				}
			}
		})
	}
}
