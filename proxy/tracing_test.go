package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traceparentEcho answers with the traceparent it received.
func traceparentEcho(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("X-Got-Traceparent", r.Header.Get("Traceparent"))
		io.WriteString(w, `{"ok":true}`)
	})
}

func TestTracingSpansAndPropagation(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 100),
		traceparentEcho("monolith"), traceparentEcho("service"), Options{TracerProvider: tp})

	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, _ := e.get("/api/orders/7", "X-User-Id", "u", "Traceparent", incoming)
	got := resp.Header.Get("X-Got-Traceparent")
	if !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || got == incoming {
		t.Fatalf("upstream traceparent %q: want the same trace with the proxy's client span as parent", got)
	}
	e.comparisons(1)

	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "3 spans ended", func() bool {
		spans = rec.Ended()
		return len(spans) >= 3
	})
	byRole := map[string]sdktrace.ReadOnlySpan{}
	var server sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindServer {
			server = s
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == attrRole {
				byRole[a.Value.AsString()] = s
			}
		}
	}
	if server == nil || server.Name() != "GET /api/orders/*" {
		t.Fatalf("server span: %v", server)
	}
	if server.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || server.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("incoming trace not continued: trace %s parent %s", server.SpanContext().TraceID(), server.Parent().SpanID())
	}
	wantAttrs(t, "server", server, map[string]string{"strangler.route": "orders", "strangler.backend": "service", "strangler.percent": "100"})
	for role, backend := range map[string]string{"primary": "service", "shadow": "monolith"} {
		s := byRole[role]
		if s == nil {
			t.Errorf("no %s client span", role)
			continue
		}
		if s.Parent().SpanID() != server.SpanContext().SpanID() || s.SpanContext().TraceID() != server.SpanContext().TraceID() {
			t.Errorf("%s span is not a child of the server span", role)
		}
		wantAttrs(t, role, s, map[string]string{"strangler.route": "orders", "strangler.backend": backend, "strangler.role": role})
	}
	if p := byRole["primary"]; p != nil && !strings.Contains(got, p.SpanContext().SpanID().String()) {
		t.Errorf("upstream parent %q is not the primary client span %s", got, p.SpanContext().SpanID())
	}

	// The duration histogram carries the trace id as exemplar (OpenMetrics).
	req, _ := http.NewRequest("GET", e.adminURL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !bytes.Contains(body, []byte(`# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"}`)) {
		t.Error("no exemplar with the trace id in the OpenMetrics exposition")
	}
}

func wantAttrs(t *testing.T, what string, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, a := range s.Attributes() {
		got[string(a.Key)] = a.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s span %s = %q, want %q", what, k, got[k], v)
		}
	}
}

func TestTracingOffPassesTraceparentThrough(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, traceparentEcho("service"))
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, _ := e.get("/api/orders/7", "X-User-Id", "u", "Traceparent", incoming)
	if got := resp.Header.Get("X-Got-Traceparent"); got != incoming {
		t.Errorf("traceparent %q, want it unchanged", got)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, basicConfig+"access_log: true\n", flagJSON("orders-percent", 100), nil, nil,
		Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), TracerProvider: tp})
	e.get("/api/orders/7;jsessionid=secret?token=secret", "X-User-Id", "u", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	line := firstAccessLine(t, &logs)
	want := map[string]any{"route": "orders", "backend": "service", "status": 200.0, "method": "GET", "path": "/api/orders/7;jsessionid=[redacted]", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration_seconds"]; !ok {
		t.Errorf("access log line %v", line)
	}
	// A path parameter written escaped is a path parameter to a reader
	// of the decoded path (the server span's url.path): redacted too.
	e.get("/api/orders/8%3Bjsessionid=secret", "X-User-Id", "u")
	eventually(t, 2*time.Second, "second access log line", func() bool { return strings.Count(logs.String(), `"msg":"access"`) == 2 })
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("a secret in the log:\n%s", logs.String())
	}
}

// firstAccessLine waits for the first access log line and returns its
// fields.
func firstAccessLine(t *testing.T, logs *lockedBuffer) map[string]any {
	t.Helper()
	var line map[string]any
	eventually(t, 2*time.Second, "access log line", func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"msg":"access"`) {
				return json.Unmarshal([]byte(l), &line) == nil
			}
		}
		return false
	})
	return line
}

// TestAccessLogRefused: a request the proxy refuses itself (too many
// header lines, a smuggling attempt) has its access line too, with no
// backend.
func TestAccessLogRefused(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig+"access_log: true\nlimits: {max_header_count: 10}\n", flagJSON("orders-percent", 100), nil, nil,
		Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/7;jsessionid=secret", nil)
	for i := range 20 {
		req.Header.Set(fmt.Sprintf("X-H%d", i), "v")
	}
	resp, _ := e.do(req)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	line := firstAccessLine(t, &logs)
	want := map[string]any{"route": "orders", "backend": "proxy", "status": 431.0, "method": "GET", "path": "/api/orders/7;jsessionid=[redacted]"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v", k, line[k], v)
		}
	}
}

// TestMetricsPassPromtool runs Prometheus's own linter on the exposition,
// with every series family populated.
func TestMetricsPassPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (apt-get install prometheus); CI must have it")
		}
		t.Skip("promtool not installed")
	}
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 50), answer(200, `{"a":1}`), answer(200, `{"a":2}`))
	for _, u := range []string{"a", "b", "c", "d"} {
		e.get("/api/orders/1", "X-User-Id", u)
	}
	e.get("/elsewhere")
	e.comparisons(4)
	_, body := e.adminGet("/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// recordSpans is a tracer provider recording every span in memory, and a
// wait for n of them to end.
func recordSpans(t *testing.T) (*sdktrace.TracerProvider, func(n int) []sdktrace.ReadOnlySpan) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, func(n int) []sdktrace.ReadOnlySpan {
		t.Helper()
		var spans []sdktrace.ReadOnlySpan
		eventually(t, 5*time.Second, fmt.Sprintf("%d spans ended", n), func() bool {
			spans = rec.Ended()
			return len(spans) >= n
		})
		return spans
	}
}

func spanOfKind(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

// The server span's client.address is the client as the split sees it,
// not the X-Forwarded-For an untrusted client wrote.
func TestTracingClientAddressIsTrusted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ trusted, want string }{
		{"", "127.0.0.1"},
		{"trusted_proxies: [127.0.0.1]\n", "203.0.113.9"},
	} {
		tp, ended := recordSpans(t)
		e := newEnvWith(t, basicConfig+tc.trusted+"limits: {max_header_count: 10}\n", flagJSON("orders-percent", 100), nil, nil, Options{TracerProvider: tp})
		e.get("/api/orders/7", "X-User-Id", "u", "X-Forwarded-For", "6.6.6.6, 203.0.113.9")
		server := spanOfKind(ended(2), trace.SpanKindServer)[0]
		wantAttrs(t, "server ("+strings.TrimSpace(tc.trusted)+")", server, map[string]string{"client.address": tc.want})
		// Refused before routing (too many header lines): the same.
		hdr := []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.9"}
		for i := range 12 {
			hdr = append(hdr, fmt.Sprint("X-H", i), "v")
		}
		if resp, _ := e.get("/api/orders/7", hdr...); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
		servers := spanOfKind(ended(3), trace.SpanKindServer)
		wantAttrs(t, "refused ("+strings.TrimSpace(tc.trusted)+")", servers[len(servers)-1], map[string]string{"client.address": tc.want})
	}
}

// A fallback shows on the server span: the side that answered, and why;
// the failed call's error.type names the failure's type, not the
// redaction wrapper.
func TestTracingFallbackAndErrorType(t *testing.T) {
	t.Parallel()
	tp, ended := recordSpans(t)
	var mono atomic.Int32
	e := newEnvWith(t, fallbackConfig(deadURL(t), ""), flagJSON("orders-percent", 100), bodyEcho(&mono), nil, Options{TracerProvider: tp})
	if resp, _ := e.get("/api/orders/7", "X-User-Id", "u"); resp.StatusCode != 200 || mono.Load() != 1 {
		t.Fatalf("status %d, monolith called %d times; want 200 from the monolith", resp.StatusCode, mono.Load())
	}
	spans := ended(3)
	wantAttrs(t, "server", spanOfKind(spans, trace.SpanKindServer)[0], map[string]string{"strangler.backend": "monolith", "strangler.fallback": "connect"})
	var failed sdktrace.ReadOnlySpan
	for _, s := range spanOfKind(spans, trace.SpanKindClient) {
		for _, a := range s.Attributes() {
			if a.Key == attrBackend && a.Value.AsString() == "service" {
				failed = s
			}
		}
	}
	if failed == nil {
		t.Fatal("no client span for the service call")
	}
	wantAttrs(t, "failed service call", failed, map[string]string{"error.type": "*net.OpError"})
}

// An answer cut mid-body (the upstream resets after its head) is an error
// on the server span, whose status code alone says 200.
func TestTracingCutAnswerIsError(t *testing.T) {
	t.Parallel()
	tp, ended := recordSpans(t)
	partial := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 100), nil, partial, Options{TracerProvider: tp})
	resp, err := http.Get(e.proxyURL + "/api/orders/7")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("the client read a whole answer")
	}
	server := spanOfKind(ended(2), trace.SpanKindServer)[0]
	if server.Status().Code != codes.Error || server.Status().Description != "answer cut mid-body" {
		t.Errorf("server span status %+v, want an error: answer cut mid-body", server.Status())
	}
}

// A mismatch sample names the request's trace, which holds the primary
// and shadow calls' spans (and the access log's line): from /api/diffs to
// the trace of the request that diverged.
func TestTracingSampleNamesTheTrace(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), nil, nil, Options{TracerProvider: tp})
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	e.get("/api/orders/7", "X-User-Id", "u", "Traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if v := e.waitMetric(`strangler_comparisons_total{result="mismatch",route="orders"}`, 1); v != 1 {
		t.Fatalf("mismatches %v, want 1", v)
	}
	_, body := e.adminGet("/api/diffs?route=orders")
	var samples []struct {
		TraceID string `json:"trace_id"`
	}
	if err := json.Unmarshal([]byte(body), &samples); err != nil || len(samples) != 1 {
		t.Fatalf("/api/diffs: %v %s", err, body)
	}
	if samples[0].TraceID != trace {
		t.Errorf("sample trace_id %q, want the request's %s", samples[0].TraceID, trace)
	}
}
