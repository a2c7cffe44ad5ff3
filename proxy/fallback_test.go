package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fallbackConfig is a route at 100 % to the service with extra route keys.
func fallbackConfig(service, extra string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - name: orders
    path: /api/orders/*
    service: %s
    sticky: header:X-User-Id
    timeouts: {response_header: 300ms}
%s`, service, extra)
}

// bodyEcho is a monolith that says it served and what body it got.
func bodyEcho(hits *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Served-By", "monolith")
		fmt.Fprintf(w, "monolith got %s %q", r.Method, b)
	})
}

// resetAfterReading reads the request, then drops the connection without
// an answer: the request reached the service.
func resetAfterReading(hits *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.ReadAll(r.Body)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
}

func post(e *env, path, body string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.proxyURL+path, strings.NewReader(body))
	req.Header.Set("X-User-Id", "u")
	return e.do(req)
}

func TestFallbackOnConnectReplaysAnyMethod(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	e := newEnv(t, fallbackConfig(deadURL(t), ""), flagJSON("orders-percent", 100), bodyEcho(&mono), nil)
	resp, body := post(e, "/api/orders/1", `{"qty":3}`)
	if resp.StatusCode != 200 || body != `monolith got POST "{\"qty\":3}"` {
		t.Fatalf("got %d %q; want the monolith to answer with the whole body", resp.StatusCode, body)
	}
	if v := e.waitMetric(`strangler_fallbacks_total{reason="connect",route="orders"}`, 1); v != 1 {
		t.Errorf("fallbacks = %v", v)
	}
	if v := e.waitMetric(`strangler_requests_total{backend="monolith",code="200",route="orders"}`, 1); v != 1 {
		t.Errorf("the answer is not counted as the monolith's: %v", v)
	}
	if v := e.metric(`strangler_request_duration_seconds_count{backend="monolith",role="primary",route="orders"}`); v != 1 {
		t.Errorf("latency not under backend=monolith role=primary: %v", v)
	}
}

func TestFallbackAfterReset(t *testing.T) {
	t.Parallel()
	var mono, svc atomic.Int32
	e := newEnv(t, fallbackConfig("{{service}}", ""), flagJSON("orders-percent", 100), bodyEcho(&mono), resetAfterReading(&svc))
	// A GET may be repeated: replayed.
	resp, body := e.get("/api/orders/1", "X-User-Id", "u")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "monolith got GET") {
		t.Fatalf("GET after reset: %d %q", resp.StatusCode, body)
	}
	// A POST may have been applied by the service: not replayed.
	resp, body = post(e, "/api/orders/1", "pay")
	if resp.StatusCode != http.StatusBadGateway || mono.Load() != 1 {
		t.Fatalf("POST after reset: %d %q, monolith hits %d; want 502 and no replay", resp.StatusCode, body, mono.Load())
	}
	if v := e.waitMetric(`strangler_fallbacks_total{reason="reset",route="orders"}`, 1); v != 1 {
		t.Errorf("fallbacks = %v", v)
	}
}

func TestFallbackAfterTimeout(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	e := newEnv(t, fallbackConfig("{{service}}", ""), flagJSON("orders-percent", 100), bodyEcho(&mono), hang)
	resp, body := e.get("/api/orders/1", "X-User-Id", "u")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "monolith got GET") {
		t.Fatalf("GET after timeout: %d %q", resp.StatusCode, body)
	}
	if v := e.waitMetric(`strangler_fallbacks_total{reason="timeout",route="orders"}`, 1); v != 1 {
		t.Errorf("fallbacks = %v", v)
	}
}

func TestNoReplayOnceTheResponseStarted(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	partial := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("half an answer"))
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	e := newEnv(t, fallbackConfig("{{service}}", ""), flagJSON("orders-percent", 100), bodyEcho(&mono), partial)
	req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || resp.StatusCode != 200 || string(b) != "half an answer" || mono.Load() != 0 {
		t.Errorf("got %d %q %v, monolith hits %d; want the broken answer, not a second one", resp.StatusCode, b, err, mono.Load())
	}
}

func TestFallbackOn5xx(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	status := atomic.Int32{}
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "service says no")
	})
	cases := []struct {
		name   string
		extra  string
		status int
		method string
		want   string
	}{
		{"503 replayed when listed", "    fallback: {on: [5xx]}\n", 503, "GET", "monolith"},
		{"501 is an answer", "    fallback: {on: [5xx]}\n", 501, "GET", "service"},
		{"5xx not listed by default", "", 503, "GET", "service"},
		{"POST 503 not replayed", "    fallback: {on: [5xx]}\n", 503, "POST", "service"},
		{"POST replayed when listed", "    fallback: {on: [5xx], methods: [POST]}\n", 503, "POST", "monolith"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Not parallel: the cases share the service's status.
			status.Store(int32(c.status))
			e := newEnv(t, fallbackConfig("{{service}}", c.extra+"    eject: {consecutive_failures: 0}\n"), flagJSON("orders-percent", 100), bodyEcho(&mono), svc)
			req, _ := http.NewRequest(c.method, e.proxyURL+"/api/orders/1", strings.NewReader("x"))
			req.Header.Set("X-User-Id", "u")
			resp, body := e.do(req)
			got := "service"
			if strings.HasPrefix(body, "monolith got") {
				got = "monolith"
			}
			if got != c.want || (got == "service" && resp.StatusCode != c.status) {
				t.Errorf("answered by %s (%d %q), want %s", got, resp.StatusCode, body, c.want)
			}
		})
	}
}

func TestFallbackOff(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	e := newEnv(t, fallbackConfig(deadURL(t), "    fallback: {on: []}\n"), flagJSON("orders-percent", 100), bodyEcho(&mono), nil)
	if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 502 || mono.Load() != 0 {
		t.Errorf("status %d, monolith hits %d; want 502 with fallback off", resp.StatusCode, mono.Load())
	}
}

// routeState reads the route's entry from /api/routes.
func (e *env) routeStatus() RouteStatus {
	e.t.Helper()
	_, body := e.adminGet("/api/routes")
	var rs []RouteStatus
	if err := json.Unmarshal([]byte(body), &rs); err != nil || len(rs) != 1 {
		e.t.Fatalf("/api/routes: %v %s", err, body)
	}
	return rs[0]
}

func TestEjectionAndReturn(t *testing.T) {
	t.Parallel()
	var mono, svcHits atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svcHits.Add(1)
		if failing.Load() {
			w.WriteHeader(503)
			return
		}
		w.Header().Set("X-Served-By", "service")
		io.WriteString(w, "service ok")
	})
	e := newEnv(t, fallbackConfig("{{service}}", "    eject: {consecutive_failures: 3, base_time: 300ms, max_time: 10s}\n    shadow: {percent: 100}\n"),
		flagJSON("orders-percent", 100), bodyEcho(&mono), svc)

	// Three 503s in a row eject the service; 4xx would not count.
	for range 3 {
		if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	st := e.routeStatus()
	if st.State != "ejected" || st.EjectedUntil == nil {
		t.Fatalf("after 3 failures: %+v", st)
	}
	first := time.Until(*st.EjectedUntil)
	if e.metric(`strangler_service_ejected{route="orders"}`) != 1 || e.metric(`strangler_ejections_total{route="orders"}`) != 1 {
		t.Error("ejection metrics")
	}
	// Ejected: the whole share goes to the monolith, and no shadow copy
	// goes to the service.
	hits := svcHits.Load()
	for range 5 {
		if _, body := e.get("/api/orders/1", "X-User-Id", "u"); !strings.HasPrefix(body, "monolith got") {
			t.Fatalf("ejected, but answered %q", body)
		}
	}
	if svcHits.Load() != hits {
		t.Errorf("the ejected service got %d calls", svcHits.Load()-hits)
	}
	if v := e.waitMetric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`, 5); v != 5 {
		t.Errorf("shadow skipped ejected = %v, want 5", v)
	}
	// After base_time traffic returns; one failure ejects again at once,
	// for twice as long.
	eventually(t, 3*time.Second, "service back after base_time", func() bool { return e.routeStatus().State == "serving" })
	e.get("/api/orders/1", "X-User-Id", "u")
	st = e.routeStatus()
	if st.State != "ejected" {
		t.Fatalf("a failure on probation did not eject again: %+v", st)
	}
	if second := time.Until(*st.EjectedUntil); second < first+first/2 {
		t.Errorf("second ejection %v, first %v: want it doubled", second, first)
	}
	// A success resets: the service serves again and stays.
	failing.Store(false)
	eventually(t, 3*time.Second, "service back", func() bool {
		_, body := e.get("/api/orders/1", "X-User-Id", "u")
		return body == "service ok"
	})
	if e.routeStatus().State != "serving" || e.metric(`strangler_service_ejected{route="orders"}`) != 0 {
		t.Error("not serving after a success")
	}
	// ... and forgets the past ejections: off probation, one failure no
	// longer ejects, and three eject for base_time again, not doubled.
	failing.Store(true)
	e.get("/api/orders/1", "X-User-Id", "u")
	if st := e.routeStatus(); st.State != "serving" {
		t.Fatalf("one failure after a success ejected the service: %+v", st)
	}
	e.get("/api/orders/1", "X-User-Id", "u")
	e.get("/api/orders/1", "X-User-Id", "u")
	st = e.routeStatus()
	if st.State != "ejected" || st.EjectedUntil == nil {
		t.Fatalf("after 3 more failures: %+v", st)
	}
	if third := time.Until(*st.EjectedUntil); third > first+first/2 {
		t.Errorf("ejection after a success %v, want base_time again (the first was %v)", third, first)
	}
}

// An answer the service cuts mid-body (its head already passed on) is an
// upstream error, a reset, on both paths: the client got a truncated
// answer, and a service that breaks every answer must not look healthy.
func TestAnswerCutMidBodyIsCountedAsAReset(t *testing.T) {
	t.Parallel()
	cuts := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		io.WriteString(w, strings.Repeat("x", 100))
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
	e := newEnv(t, fallbackConfig("{{service}}", "    eject: {consecutive_failures: 0}\n"), flagJSON("orders-percent", 100), nil, cuts)
	for i, method := range bothPaths {
		resp := sendOn(t, e, method)
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Fatalf("%s: the client read a whole answer", method)
		}
		resp.Body.Close()
		series := `strangler_upstream_errors_total{backend="service",kind="reset",route="orders"}`
		if got := e.waitMetric(series, float64(i+1)); got != float64(i+1) {
			t.Errorf("after the %s: %s = %v, want %d", method, series, got, i+1)
		}
	}
}
