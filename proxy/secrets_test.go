package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// rawAnswerUpstream is an HTTP/1.1 upstream that reads each request (head
// and Content-Length body) and answers with the raw bytes of resp, then
// closes the connection. It returns the upstream's base URL.
func rawAnswerUpstream(t *testing.T, resp string) string {
	t.Helper()
	up := startEchoUpstream(t, func(_ *http.Request, c net.Conn) bool {
		io.WriteString(c, resp)
		return false
	})
	return "http://" + up.addr
}

// oneRouteConfig is one route to a service at a literal URL (or
// {{service}}), with extra top-level and route keys.
func oneRouteConfig(service, top, routeExtra string) string {
	return `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
` + top + `
routes:
  - name: orders
    path: /api/orders/*
    service: ` + service + `
    sticky: header:X-User-Id
` + routeExtra
}

// An upstream that sends a malformed header line carrying a cookie must
// not get the line into the proxy's "upstream error" warning: the error
// strings of the direct path's parser ("malformed header line %q") and of
// net/http's (textproto) quote the line, and onError logged err verbatim.
// The contract: Set-Cookie values are never logged.
func TestSecretsNotInUpstreamErrorLog(t *testing.T) {
	t.Parallel()
	const secret = "SESSION-SECRET-7f3a"
	for _, tc := range []struct{ name, head, method string }{
		// GET: the direct path (h1.go, h1read.go).
		{"direct/space-before-colon", "Set-Cookie : session=" + secret + "; HttpOnly\r\n", "GET"},
		{"direct/no-colon", "Set-Cookie session=" + secret + "\r\n", "GET"},
		{"direct/folded", "Set-Cookie: a=1;\r\n session=" + secret + "\r\n", "GET"},
		// POST with a body: ReverseProxy over net/http's Transport.
		{"reverseproxy/no-colon", "Set-Cookie session=" + secret + "\r\n", "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc := rawAnswerUpstream(t, "HTTP/1.1 200 OK\r\n"+tc.head+"Content-Length: 2\r\n\r\nok")
			var logs lockedBuffer
			e := newEnvWith(t, oneRouteConfig(svc, "", ""), flagJSON("orders-percent", 100), nil, nil,
				Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("x=1")
			}
			req, _ := http.NewRequest(tc.method, e.proxyURL+"/api/orders/1", body)
			req.Header.Set("X-User-Id", "u")
			resp, got := e.do(req)
			if strings.Contains(got, secret) || strings.Contains(got, "127.0.0.1") {
				t.Errorf("client answer: %d %q", resp.StatusCode, got)
			}
			eventually(t, 2*time.Second, "upstream error logged", func() bool {
				return strings.Contains(logs.String(), `"msg":"upstream error"`)
			})
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, secret) {
					t.Errorf("log line leaks the Set-Cookie value:\n%s", line)
				}
			}
		})
	}
}

// With tracing on, the client spans of the primary and shadow calls carry
// url.full with the query's values redacted, as samples have them
// (otelhttp's own only strips userinfo, so ?token=... reached the trace
// backend).
func TestSecretsClientSpansRedactQuery(t *testing.T) {
	t.Parallel()
	const secret = "QUERY-SECRET-91bd"
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 100), nil, nil,
		Options{TracerProvider: tp})
	e.get("/api/orders/7?token="+secret, "X-User-Id", "u")
	e.comparisons(1)
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "3 spans ended", func() bool {
		spans = rec.Ended()
		return len(spans) >= 3
	})
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.String(), secret) {
				t.Errorf("span %q attribute %s = %q carries the query value", s.Name(), a.Key, a.Value.String())
			}
		}
	}
}

// With tracing on, otelhttp records the transport's error on the client
// span (status description and an exception event): a malformed header
// line carrying a Set-Cookie value must not reach the trace backend.
func TestSecretsNotInClientSpanErrors(t *testing.T) {
	t.Parallel()
	const secret = "SESSION-SECRET-0c41"
	svc := rawAnswerUpstream(t, "HTTP/1.1 200 OK\r\nSet-Cookie session="+secret+"\r\nContent-Length: 2\r\n\r\nok")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, oneRouteConfig(svc, "", ""), flagJSON("orders-percent", 100), nil, nil,
		Options{TracerProvider: tp})
	e.get("/api/orders/1", "X-User-Id", "u")
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "server span ended", func() bool {
		spans = rec.Ended()
		for _, s := range spans {
			if s.SpanKind() == trace.SpanKindServer {
				return true
			}
		}
		return false
	})
	for _, s := range spans {
		if strings.Contains(s.Status().Description, secret) {
			t.Errorf("span %q status description carries the Set-Cookie value: %q", s.Name(), s.Status().Description)
		}
		for _, ev := range s.Events() {
			for _, a := range ev.Attributes {
				if strings.Contains(a.Value.String(), secret) {
					t.Errorf("span %q event %q attribute %s carries the Set-Cookie value: %q", s.Name(), ev.Name, a.Key, a.Value.String())
				}
			}
		}
	}
}

// Span names do not take the request's method verbatim: any token is a
// valid method, so a client could mint a new span name per request, and
// span-metrics pipelines (Tempo, Jaeger SPM, the spanmetrics connector)
// turn span names into metric labels. Methods outside the standard set
// are "_OTHER", as in otelhttp's own attributes.
func TestSpanNamesFoldUnknownMethods(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 100), nil, nil, Options{TracerProvider: tp})
	for i := range 3 {
		req, _ := http.NewRequest("M"+strconv.Itoa(1000+i), e.proxyURL+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", "u")
		e.do(req)
	}
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "6 spans ended", func() bool {
		spans = rec.Ended()
		return len(spans) >= 6
	})
	names := map[string]bool{}
	for _, s := range spans {
		names[s.Name()] = true
	}
	for n := range names {
		if strings.Contains(n, "M100") {
			t.Errorf("span name %q carries the client's method (%d distinct names from 3 requests)", n, len(names))
		}
	}
}

// A query part with no "=" (/reset?<token>, /api/orders/1?<api key>) is
// redacted in samples like any value; redactQuery kept it whole as a
// "name".
func TestSecretsBareQueryValueRedacted(t *testing.T) {
	t.Parallel()
	const secret = "sk_live_BARE-SECRET-5c2e"
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), answer(200, `{"v":1}`), answer(200, `{"v":2}`))
	e.get("/api/orders/1?"+secret, "X-User-Id", "u")
	e.comparisons(1)
	_, body := e.adminGet("/api/diffs")
	if strings.Contains(body, secret) {
		t.Errorf("/api/diffs keeps a bare query value:\n%s", body)
	}
}

// Header differences in samples, with names spelled in other cases,
// repeated lines, a secret on one side only, Authorization and a
// configured secret header answered by an upstream, and Set-Cookie
// values without a name: no value is shown. (Coverage beyond
// TestSecretsNeverInDiffs: raw upstreams, so the spellings are the
// upstream's, on both the direct and the ReverseProxy paths.)
func TestSecretsDiffHeaderVariants(t *testing.T) {
	t.Parallel()
	mono := rawAnswerUpstream(t, "HTTP/1.1 200 OK\r\n"+
		"set-cookie: session=MONO-COOKIE-1\r\n"+
		"SET-COOKIE: MONO-UNNAMED-2\r\n"+
		"x-api-key: MONO-KEY-3\r\n"+
		"X-API-KEY: MONO-KEY-4\r\n"+
		"authorization: Bearer MONO-AUTH-5\r\n"+
		"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"v\":1}")
	svc := rawAnswerUpstream(t, "HTTP/1.1 200 OK\r\n"+
		"Set-Cookie: =SVC-COOKIE-6; Path=/\r\n"+
		"X-Api-Key: SVC-KEY-7\r\n"+
		"WWW-Authenticate: Bearer realm=x\r\n"+
		"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"v\":2}")
	cfg := strings.Replace(shadowConfig("      percent: 100\n      methods: [GET, PUT]\n", "secret_headers: [x-API-key]"), "monolith: {{monolith}}", "monolith: "+mono, 1)
	cfg = strings.Replace(cfg, "service: {{service}}", "service: "+svc, 1)
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil)
	e.get("/api/orders/1", "X-User-Id", "u") // direct path
	req, _ := http.NewRequest("PUT", e.proxyURL+"/api/orders/1", strings.NewReader("{}"))
	req.Header.Set("X-User-Id", "u")
	e.do(req) // ReverseProxy path
	e.comparisons(2)
	_, body := e.adminGet("/api/diffs")
	if got := strings.Count(body, `"header": "X-Api-Key"`); got != 2 {
		t.Errorf("want the X-Api-Key difference in both samples, got %d:\n%s", got, body)
	}
	for _, s := range []string{"COOKIE-1", "UNNAMED-2", "KEY-3", "KEY-4", "AUTH-5", "COOKIE-6", "KEY-7"} {
		if strings.Contains(body, s) {
			t.Errorf("/api/diffs leaks %q:\n%s", s, body)
		}
	}
}

// Text logs (serve --log-format text) with access_log: a path with
// encoded CR/LF and ESC, a raw request line with odd bytes, and a method
// that net/http accepts cannot start a new log line or carry an escape.
func TestTextLogInjection(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig+"access_log: true\n", flagJSON("orders-percent", 100), nil, nil,
		Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	e.get("/api/orders/x%0d%0aFAKE=1%1b[31m%e2%80%ae", "X-User-Id", "u")
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	for _, raw := range []string{
		"GET /api/orders/\xe2\x80\xaeFAKE HTTP/1.1\r\nHost: x\r\n\r\n",
		"FAKE\x7fMETHOD /api/orders/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/orders/1\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: a\x1b[31mb\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, raw)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	eventually(t, 2*time.Second, "access line", func() bool { return strings.Contains(logs.String(), "%0d%0aFAKE=1") })
	for i, line := range strings.Split(strings.TrimRight(logs.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "time=") || strings.ContainsAny(line, "\r\x1b\u202e") {
			t.Errorf("log line %d injected: %q", i, line)
		}
	}
}
