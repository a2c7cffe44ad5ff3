package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// On loopback without a token, an HTTP/1.0 request without a Host header
// is answered: no browser sends one, so DNS rebinding cannot produce it,
// and scripts and old probes (printf ... | nc 127.0.0.1 9090) do.
func TestAdminAnswersHTTP10WithoutHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	resps, _ := exchange(t, strings.TrimPrefix(e.adminURL, "http://"), "GET /api/routes HTTP/1.0\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusOK {
		t.Errorf("HTTP/1.0 without Host on loopback: %v, want one 200 (no browser can send it)", resps)
	}
}

// A "%252e;v=1" segment is no dot segment at any decoding an upstream does
// once ("%2e" in the decoded path is text, not a dot), so it passes.
func TestDotWithParameterIsJudgedAtOneDecoding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, nil)
	resps, _ := exchange(t, e.proxyAddr(), "GET /api/orders/%252e;v=1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nConnection: close\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusOK {
		t.Errorf("/api/orders/%%252e;v=1 (no dot segment at any decoding the upstream does once): %v, want one 200", resps)
	}
}

// Path parameters' values (;jsessionid=) are redacted in spans as in
// samples: the client span's url.full and the server span's url.path,
// also for a request without a query.
func TestSpansRedactPathParameters(t *testing.T) {
	t.Parallel()
	const secret = "PATH-SECRET-5e1f"
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 100), nil, nil, Options{TracerProvider: tp})
	e.get("/api/orders/7;jsessionid="+secret, "X-User-Id", "u")
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "2 spans ended", func() bool {
		spans = rec.Ended()
		return len(spans) >= 2
	})
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.String(), secret) {
				t.Errorf("%s span %q attribute %s = %q carries the path parameter's value", s.SpanKind(), s.Name(), a.Key, a.Value.String())
			}
		}
	}
}

// CONNECT is refused before routing, so a route that lists it is a config
// problem: it could never be reached.
func TestRouteMethodsRefuseConnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir+"/flags.json", flagJSON("tunnel-percent", 100))
	writeFile(t, dir+"/strangler.yaml", `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: {file: flags.json}
routes:
  - name: tunnel
    path: /*
    methods: [CONNECT]
    service: http://127.0.0.1:2
`)
	_, err := LoadConfig(dir + "/strangler.yaml")
	if err == nil || !strings.Contains(err.Error(), "routes[0].methods[0]: CONNECT is refused before routing") {
		t.Errorf("a route with methods [CONNECT]: %v; want it refused", err)
	}
}
