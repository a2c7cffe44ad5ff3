package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// headerEcho answers with the request headers it received, as JSON.
func headerEcho(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("Content-Type", "application/json")
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		json.NewEncoder(w).Encode(h)
	})
}

func TestHopByHopAndForwardingHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), headerEcho("monolith"), nil)
	req, _ := http.NewRequest("GET", e.proxyURL+"/anything", nil)
	req.Host = "shop.example"
	req.Header.Set("Connection", "keep-alive, X-Secret-Hop, X-Forwarded-For")
	req.Header.Set("X-Secret-Hop", "must not pass")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic x")
	req.Header.Set("Te", "trailers")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("X-Strangler-Shadow", "1")
	req.Header.Set("X-End-To-End", "kept")
	resp, body := e.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got http.Header
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "X-Strangler-Shadow"} {
		if v := got.Get(h); v != "" {
			t.Errorf("%s reached the upstream: %q", h, v)
		}
	}
	if v := got.Get("Te"); v != "trailers" && v != "" {
		t.Errorf("Te = %q", v)
	}
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.9, 127.0.0.1",
		"X-Forwarded-Host":  "shop.example",
		"X-Forwarded-Proto": "http",
		"Host":              "shop.example",
		"Traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"X-End-To-End":      "kept",
	}
	for h, w := range want {
		if v := got.Get(h); v != w {
			t.Errorf("%s = %q, want %q", h, v, w)
		}
	}
}

func TestPreserveHostFalseSendsUpstreamHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"preserve_host: false\n", flagJSON("orders-percent", 0), nil, nil)
	req, _ := http.NewRequest("GET", e.proxyURL+"/x", nil)
	req.Host = "shop.example"
	resp, _ := e.do(req)
	if got, want := resp.Header.Get("X-Got-Host"), strings.TrimPrefix(e.monolith.URL, "http://"); got != want {
		t.Errorf("upstream saw Host %q, want %q", got, want)
	}
}

func TestQueryForwardedByteForByte(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, nil)
	for _, q := range []string{"b=2&a=1", "a=1;b=2", "x=%2f%20y&&z", "q=caf%C3%A9+ok"} {
		resp, _ := e.get("/api/orders/1?" + q)
		if got := resp.Header.Get("X-Got-Raw-Query"); got != q {
			t.Errorf("query %q arrived as %q", q, got)
		}
	}
}

func TestRoutingByPatternAndMethod(t *testing.T) {
	t.Parallel()
	cfg := `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - {name: orders, path: /api/orders/*, methods: [GET], service: "{{service}}"}
  - {name: special, path: /api/orders/special/*, service: "{{service}}"}
  - {name: user, path: "/users/{id}", methods: [POST], service: "{{service}}"}
`
	e := newEnv(t, cfg, flagJSON("orders-percent", 100, "special-percent", 100, "user-percent", 100), nil, nil)
	cases := []struct{ method, path, want string }{
		{"GET", "/api/orders/7", "service"},
		{"GET", "/api/orders", "monolith"}, // chi: /api/orders/* needs something after the slash
		{"POST", "/api/orders/7", "monolith"},
		{"DELETE", "/api/orders/special/x", "service"},
		{"GET", "/users/5", "monolith"}, // method not routed: MethodNotAllowed goes to the monolith
		{"POST", "/users/5", "service"},
		{"POST", "/users/5/x", "monolith"},
		{"PROPFIND", "/api/orders/7", "monolith"},
		{"GET", "/", "monolith"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, e.proxyURL+c.path, nil)
		resp, _ := e.do(req)
		if got := resp.Header.Get("X-Served-By"); got != c.want {
			t.Errorf("%s %s: served by %q, want %q (status %d)", c.method, c.path, got, c.want, resp.StatusCode)
		}
	}
	if v := e.waitMetric(`strangler_requests_total{backend="monolith",code="200",route="_default"}`, 6); v != 6 {
		t.Errorf("_default monolith requests = %v, want 6", v)
	}
	if v := e.waitMetric(`strangler_requests_total{backend="service",code="200",route="special"}`, 1); v != 1 {
		t.Errorf("special service requests = %v, want 1", v)
	}
}

// fullDuplexEcho answers at once and echoes the request body as it comes,
// each read flushed: a client that waits for each piece's echo before it
// sends the next stalls if anything on the way buffers the body.
var fullDuplexEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex()
	w.WriteHeader(200)
	rc.Flush()
	buf := make([]byte, 1024)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
})

func TestRequestBodyStreamsBothWays(t *testing.T) {
	t.Parallel()
	// The upstream answers before the client finished sending: neither side
	// may be buffered whole by the proxy, nor read ahead: a client that
	// waits for each line's echo before it sends the next would stall.
	for _, c := range []struct{ name, cfg, path string }{
		{"monolith", basicConfig, "/upload"},
		// The default fallback replays GET, HEAD and OPTIONS only: a POST's
		// body is not read ahead for it.
		{"service, default fallback", basicConfig, "/api/orders/1"},
		{"service, fallback off", basicConfig + "    fallback: {on: []}\n", "/api/orders/1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, c.cfg, flagJSON("orders-percent", 100), fullDuplexEcho, fullDuplexEcho)
			pr, pw := io.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The transport waits for the body's writer on a cancel.
			stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
			defer stop()
			req, _ := http.NewRequestWithContext(ctx, "POST", e.proxyURL+c.path, pr)
			req.Header.Set("X-User-Id", "u1")
			respc := make(chan *http.Response, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					close(respc)
					return
				}
				respc <- resp
			}()
			go pw.Write([]byte("first chunk\n"))
			resp := <-respc
			if resp == nil {
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first chunk\n" {
				t.Fatalf("first chunk not echoed while the body was still open: %q %v", line, err)
			}
			go pw.Write([]byte("second\n"))
			if line, _ := br.ReadString('\n'); line != "second\n" {
				t.Fatalf("second chunk: %q", line)
			}
			pw.Close()
		})
	}
}

func TestServerSentEventsFlushImmediately(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: two\n\n")
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), sse, nil)
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.proxyURL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event not delivered before the stream ended: %q, %v", line, err)
	}
}

func TestContentLengthResponseIsNotHeldBack(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("hello"))
		w.(http.Flusher).Flush()
		<-release
		w.Write([]byte("world"))
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), slow, nil)
	defer close(release)
	resp, err := http.Get(e.proxyURL + "/drip")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("got %q, %v", buf, err)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	t.Parallel()
	ws := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				c.Write(r.Context(), typ, append([]byte(name+": "), msg...))
			}
		})
	}
	// With tracing, the upstream call's answer passes through otelhttp's
	// and the redacting transport's wrappers: a 101's body must stay the
	// writable tunnel ReverseProxy needs.
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	for name, opts := range map[string]Options{"plain": {}, "traced": {TracerProvider: tp}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 100), ws("monolith"), ws("service"), opts)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for path, want := range map[string]string{"/api/orders/ws": "service: hi", "/ws": "monolith: hi"} {
				c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.proxyURL, "http")+path, nil)
				if err != nil {
					t.Fatalf("%s: dial: %v", path, err)
				}
				if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
					t.Fatal(err)
				}
				_, msg, err := c.Read(ctx)
				if err != nil || string(msg) != want {
					t.Errorf("%s: got %q, %v; want %q", path, msg, err, want)
				}
				c.Close(websocket.StatusNormalClosure, "")
			}
		})
	}
}

func TestUpgradeOtherThanWebSocketIsRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), headerEcho("monolith"), nil)
	req, _ := http.NewRequest("GET", e.proxyURL+"/x", nil)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, body := e.do(req)
	if resp.StatusCode != 200 || strings.Contains(body, "h2c") || strings.Contains(body, "Upgrade") {
		t.Errorf("status %d, upstream saw %s", resp.StatusCode, body)
	}
}

func TestUnreachableUpstreamIs502(t *testing.T) {
	t.Parallel()
	dead := deadURL(t)
	cfg := strings.Replace(basicConfig, "{{service}}", dead, 1) + "    fallback: {on: []}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), nil, nil)
	resp, body := e.get("/api/orders/1", "X-User-Id", "a")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(body, "route orders") || strings.Contains(body, strings.TrimPrefix(dead, "http://")) || strings.Contains(body, "dial") {
		t.Errorf("body %q: want the route named, no address or Go error", body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if v := e.waitMetric(`strangler_upstream_errors_total{backend="service",kind="connect",route="orders"}`, 1); v != 1 {
		t.Errorf("connect errors = %v, want 1", v)
	}
	if v := e.waitMetric(`strangler_requests_total{backend="service",code="502",route="orders"}`, 1); v != 1 {
		t.Errorf("502s counted = %v, want 1", v)
	}
}

func TestSlowUpstreamIs504(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	cfg := basicConfig + "    timeouts: {response_header: 200ms}\n    fallback: {on: []}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), nil, slow)
	defer close(release)
	resp, body := e.get("/api/orders/1", "X-User-Id", "a")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d (%q), want 504", resp.StatusCode, body)
	}
	if v := e.waitMetric(`strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`, 1); v != 1 {
		t.Errorf("timeout errors = %v, want 1", v)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	var started atomic.Int32
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-release
		fmt.Fprint(w, "finished")
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), slow, nil)
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 3)
	for range 3 {
		go func() {
			resp, err := http.Get(e.proxyURL + "/slow")
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{string(b), err}
		}()
	}
	eventually(t, 5*time.Second, "requests in flight", func() bool { return started.Load() == 3 })
	e.stop()
	// Stopped accepting and not ready, while the three are still running.
	eventually(t, 5*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.proxyURL, "http://"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-e.done:
		t.Fatal("Serve returned while requests were in flight")
	default:
	}
	close(release)
	for range 3 {
		r := <-results
		if r.err != nil || r.body != "finished" {
			t.Errorf("in-flight request: %q, %v", r.body, r.err)
		}
	}
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		e.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after in-flight requests finished")
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 12.5), nil, nil)
	if code, _ := e.adminGet("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := e.adminGet("/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}
	code, body := e.adminGet("/api/routes")
	if code != 200 {
		t.Fatalf("/api/routes %d", code)
	}
	var routes []map[string]any
	if err := json.Unmarshal([]byte(body), &routes); err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 {
		t.Fatalf("routes: %s", body)
	}
	r := routes[0]
	if r["name"] != "orders" || r["path"] != "/api/orders/*" || r["service"] != e.service.URL || r["flag"] != "orders-percent" || r["percent"] != 12.5 {
		t.Errorf("route entry %v", r)
	}
	e.get("/api/orders/1", "X-User-Id", "a")
	e.waitMetric(`strangler_requests_total{backend="monolith",code="200",route="orders"}`, 1)
	_, metrics := e.adminGet("/metrics")
	for _, name := range []string{
		"strangler_requests_total", "strangler_request_duration_seconds_bucket", "strangler_route_percent",
		"strangler_flag_reload_errors_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if v := e.metric(`strangler_route_percent{route="orders"}`); v != 12.5 {
		t.Errorf("strangler_route_percent = %v", v)
	}
}
