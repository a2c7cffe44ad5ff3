package proxy

// Behaviours of the server (server.go: the route table's install, a
// request from top to bottom, the access log, shutdown), of forwarding
// (forward.go) and of tracing (tracing.go) that a hand mutation test
// found no test held: each test below fails when the behaviour it names
// is changed, and says why a user would notice.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// With sticky: random the split still names the client to the flag: a
// targeting rule on targetingKey sees the client's address (as
// trusted_proxies read it), so an operator can send one office or one
// canary client to the service while the rest are split at random.
func TestPinnedServerRandomStickyTargetsByClientAddress(t *testing.T) {
	t.Parallel()
	const cfg = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - {name: orders, path: /api/orders/*, service: "{{service}}", sticky: random}
`
	flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"all":100,"none":0},"defaultVariant":"none",
	  "targeting":{"if":[{"==":[{"var":"targetingKey"},"127.0.0.1"]},"all","none"]}}}}`
	e := newEnv(t, cfg, flags, nil, nil)
	for range 5 {
		if resp, _ := e.get("/api/orders/1"); resp.Header.Get("X-Served-By") != "service" {
			t.Fatalf("served by %q: the rule naming this client's address did not place it on the service", resp.Header.Get("X-Served-By"))
		}
	}
}

// The proxy's own answers to what it does not forward: CONNECT is 405
// with the methods a route may serve in Allow (RFC 9110 §15.5.6, and what
// a client or an API gateway shows the caller), and the asterisk target is
// for OPTIONS only: any other method with it is 400, OPTIONS * is 200
// with an empty body, and none of them reaches an upstream.
func TestPinnedServerOwnAnswers(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), log.backend("monolith"), log.backend("service"))
	for _, tc := range []struct {
		raw       string
		status    int
		allow, cl string
	}{
		{"CONNECT own-1:443 HTTP/1.1\r\nHost: own-1:443\r\n\r\n", http.StatusMethodNotAllowed, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", ""},
		{"POST * HTTP/1.1\r\nHost: own-2\r\nContent-Length: 0\r\n\r\n", http.StatusBadRequest, "", ""},
		{"DELETE * HTTP/1.1\r\nHost: own-3\r\n\r\n", http.StatusBadRequest, "", ""},
		{"OPTIONS * HTTP/1.1\r\nHost: own-4\r\n\r\n", http.StatusOK, "", "0"},
	} {
		target, _, _ := strings.Cut(tc.raw, "\r\n")
		resps, _ := exchange(t, e.proxyAddr(), tc.raw, 3*time.Second)
		if len(resps) == 0 || resps[0].status != tc.status {
			t.Errorf("%s: answers %v, want %d first", target, statuses(resps), tc.status)
			continue
		}
		if got := resps[0].header.Get("Allow"); got != tc.allow {
			t.Errorf("%s: Allow %q, want %q", target, got, tc.allow)
		}
		if tc.cl != "" && (resps[0].header.Get("Content-Length") != tc.cl || resps[0].body != "") {
			t.Errorf("%s: Content-Length %q body %q, want an empty answer", target, resps[0].header.Get("Content-Length"), resps[0].body)
		}
	}
	for _, host := range []string{"own-1:443", "own-2", "own-3", "own-4"} {
		if got := log.requests(t, host, 0); len(got) != 0 {
			t.Errorf("Host %s: upstreams received %v", host, got)
		}
	}
}

// A route's flag series outlive a reload that keeps the route: the
// reload must delete only the strangler_flag_errors_total series of
// flags no route reads any more. Deleted while the route still reads the
// flag, the series vanishes from /metrics for good (the route's counter
// is bound at compile time), and a dashboard or an alert on flag errors
// goes blind after the first reload, for the split's flag and the shadow
// flag alike.
func TestPinnedServerReloadKeepsFlagSeriesOfKeptRoutes(t *testing.T) {
	t.Parallel()
	// Both flags broken: each request is a flag error of both.
	e := newEnvNoCheck(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", `"lots"`, "orders-shadow", `"lots"`))
	e.rewriteConfig(shadowConfig("      percent: 100\n", "access_log: true"))
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i))
	}
	for _, flag := range []string{"orders-percent", "orders-shadow"} {
		series := `strangler_flag_errors_total{flag="` + flag + `"}`
		if v := e.waitMetric(series, n); v != n {
			t.Errorf("after a reload that kept route orders: %s = %v, want %d", series, v, n)
		}
	}
}

// A route taken out by a reload and put back later starts afresh: its
// share is logged again (the log says what the route does from then
// on), and its mismatch samples from before are gone from /api/diffs
// (they describe a config that was removed, and an operator reading them
// would chase differences the new route never had). The first share,
// 0 included, is logged at start: "route share ... percent=0" is how a
// log reader knows the route is dark rather than never set up.
func TestPinnedServerRouteBackAfterAReloadStartsAfresh(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0, "orders-shadow", 100),
		answer(200, `{"v":1}`), answer(200, `{"v":2}`), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const share = `msg="route share" route=orders flag=orders-percent percent=0`
	if n := strings.Count(logs.String(), share); n != 1 {
		t.Fatalf("at start, %q logged %d times, want once:\n%s", share, n, logs.String())
	}
	e.get("/api/orders/1", "X-User-Id", "u")
	eventually(t, pinnedWait, "a mismatch sample", func() bool { return len(e.diffs("?route=orders")) == 1 })
	for _, cfg := range []string{configHead() + "  - {name: users, path: /api/users/*, service: \"{{service}}\"}\n", shadowConfig("      percent: 100\n")} {
		e.rewriteConfig(cfg)
		if err := e.srv.ReloadFile(e.configPath()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), share); n != 2 {
		t.Errorf("route orders back: %q logged %d times in all, want twice", share, n)
	}
	if got := e.diffs("?route=orders"); len(got) != 0 {
		t.Errorf("route orders back: /api/diffs still has %d samples from before its removal", len(got))
	}
}

// An upstream's unsolicited 100 Continue (the proxy drops the client's
// Expect, so the upstream was never asked) does not reach the client, on
// either forwarding path: the client's own 100 comes from the proxy's
// server when its body is read, and a second interim answer confuses
// clients that count them (curl waits for the final answer after the
// first 100 it expected only once).
func TestPinnedServerUnaskedContinueIsNotPassedOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw string }{
		{"direct path", "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"ReverseProxy", "POST /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startScripted(t, func(n, k int, c net.Conn) bool {
				_, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return err == nil
			})
			all, _ := exchange(t, s.proxyAddr, tc.raw, 5*time.Second)
			if got := statuses(all); !slices.Equal(got, []int{200}) || all[0].body != "ok" {
				t.Errorf("answers %v, want the 200 alone", got)
			}
		})
	}
}

// The access log's duration_seconds is the request's time in the proxy,
// not a constant: latency is what an SRE greps the access log for when
// the histogram says a route got slow.
func TestPinnedServerAccessLogHasTheDuration(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig+"access_log: true\n", flagJSON("orders-percent", 0), nil, nil,
		Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	e.get("/api/orders/1", "X-User-Id", "u")
	line := firstAccessLine(t, &logs)
	if d, ok := line["duration_seconds"].(float64); !ok || d <= 0 || d > pinnedWait.Seconds() {
		t.Errorf("access log duration_seconds %v, want the request's time in seconds", line["duration_seconds"])
	}
}

// At shutdown, a WebSocket tunnel (a hijacked connection, which
// http.Server.Shutdown neither waits for nor closes) gets what is left of
// shutdown_timeout and is then closed: a rollout's old pod must not keep
// a client's socket, and its upstream's, open past its grace period, nor
// leave the client waiting for a close that never comes.
func TestPinnedServerShutdownClosesTunnelsAtTheTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"shutdown_timeout: 300ms\n", flagJSON("orders-percent", 0), wsUpstream(func(c net.Conn) { io.Copy(c, c) }), nil)
	c, br := openTunnel(t, e)
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(pinnedWait))
	if b, err := br.ReadByte(); err != nil || b != 'x' {
		t.Fatalf("tunnel echo: %q %v", b, err)
	}
	e.stop()
	if _, err := io.Copy(io.Discard, br); isTimeout(err) {
		t.Errorf("the tunnel was still open %v after shutdown began, with shutdown_timeout 300ms", pinnedWait)
	}
}

// Abort (a second SIGTERM) before the shutdown began still cuts it short
// when it comes: the operator who pressed Ctrl-C twice, or a supervisor
// that sent its kill early, must not wait shutdown_timeout for requests
// in flight.
func TestPinnedServerAbortBeforeShutdownCutsItShort(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	held := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	e := newEnv(t, basicConfig+"shutdown_timeout: 10m\n", flagJSON("orders-percent", 0), held, nil)
	go func() {
		if resp, err := http.Get(e.proxyURL + "/held"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-arrived
	e.srv.Abort()
	e.stop()
	select {
	case err := <-e.done:
		e.done <- err // for the env's cleanup
	case <-time.After(pinnedWait):
		t.Fatalf("Serve still draining %v after an Abort and the shutdown, with shutdown_timeout 10m", pinnedWait)
	}
}

// A proxy listener that fails makes Serve return its error: the process
// then exits non-zero and its supervisor restarts it, where returning nil
// would look like a clean shutdown with no one serving.
func TestPinnedServerServeReturnsAFailedListenersError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 0))
	cfgPath := filepath.Join(dir, "strangler.yaml")
	writeFile(t, cfgPath, strings.NewReplacer("{{monolith}}", "http://127.0.0.1:1", "{{service}}", "http://127.0.0.1:1").Replace(basicConfig))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	ln := listen(t)
	ln.Close() // fails on its first Accept
	admin := listen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, admin) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve returned nil after its proxy listener failed")
		}
	case <-time.After(pinnedWait):
		t.Fatal("Serve did not return after its proxy listener failed")
	}
}

// A client that goes away before the upstream answered is counted under
// kind="canceled" but not logged as an upstream error: clients leave all
// the time (a closed tab, a mobile network), and a WARN line for each
// would bury the upstream failures an SRE greps the log for.
func TestPinnedForwardClientGoneIsCountedNotLogged(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	arrived := make(chan struct{}, 1)
	held := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 0), held, nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.proxyURL+"/api/orders/1", nil)
	go func() {
		<-arrived
		cancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the client got %d after it went away", resp.StatusCode)
	}
	const series = `strangler_upstream_errors_total{backend="monolith",kind="canceled",route="orders"}`
	if v := e.waitMetric(series, 1); v != 1 {
		t.Fatalf("%s = %v, want 1", series, v)
	}
	if strings.Contains(logs.String(), "upstream error") {
		t.Errorf("a client going away was logged as an upstream error:\n%s", logs.String())
	}
}

// A client that came over TLS is forwarded with "X-Forwarded-Proto:
// https" through ReverseProxy too (a request with a body), as on the
// direct path: an upstream that builds absolute URLs or redirects from it
// would otherwise send the client to plain http, and a login form's POST
// is just the request that redirects.
func TestPinnedForwardForwardedProtoOfATLSClientWithABody(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(headerEcho("monolith"))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	var ts transports
	tr := ts.get(testTimeouts)
	t.Cleanup(tr.CloseIdleConnections)
	u := newUpstream(upstreamOptions{
		route: "r", backend: backendMonolith, target: target, transport: tr,
		buffers: newBufferPool(), metrics: NewMetrics(prometheus.NewRegistry()).bindBackend("r", backendMonolith),
		log: slog.New(slog.DiscardHandler),
	})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { u.serve(w, r) }))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL+"/login", "text/plain", strings.NewReader("user=u"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h http.Header
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if got := h.Values("X-Forwarded-Proto"); !slices.Equal(got, []string{"https"}) {
		t.Errorf("upstream got X-Forwarded-Proto %q, want https", got)
	}
}

// A TLS upstream is asked for HTTP/1.1 by ALPN, as net/http's transport
// asks: TLS terminators that require ALPN refuse a hello without it
// (RFC 7301's no_application_protocol), and the service would be
// unreachable through the proxy while a browser reaches it.
func TestPinnedForwardTLSUpstreamIsOfferedHTTP11(t *testing.T) {
	t.Parallel()
	offered := make(chan []string, 1)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		offered <- hello.SupportedProtos
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	d := &net.Dialer{}
	// The test server's certificate is not trusted: the handshake fails
	// after the hello, which is all this looks at.
	if c, err := dialTLS(d.DialContext, pinnedWait)(context.Background(), "tcp", srv.Listener.Addr().String()); err == nil {
		c.Close()
	}
	select {
	case got := <-offered:
		if !slices.Equal(got, []string{"http/1.1"}) {
			t.Errorf("ALPN offered %q, want [http/1.1]", got)
		}
	case <-time.After(pinnedWait):
		t.Fatal("no TLS hello reached the upstream")
	}
}

// The proxy's answer to a failed upstream call names the route, the side
// and what went wrong in plain text, never an address or a Go error: the
// body is what a developer pastes into an incident channel, and "monolith
// unreachable" and "connection failed" send them to different places (a
// down pod, a crashing one). It is served as text with nosniff, so that
// no browser renders it as a page.
func TestPinnedForwardErrorAnswersSayWhatFailed(t *testing.T) {
	t.Parallel()
	hangUp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	})
	for _, tc := range []struct {
		name     string
		monolith string // {{monolith}} or a dead address
		handler  http.Handler
		status   int
		body     string
	}{
		{"unreachable", "dead", nil, http.StatusBadGateway, "Bad Gateway: route orders: monolith unreachable\n"},
		{"hung up", "{{monolith}}", hangUp, http.StatusBadGateway, "Bad Gateway: route orders: monolith connection failed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mono := tc.monolith
			if mono == "dead" {
				mono = deadURL(t)
			}
			e := newEnv(t, strings.Replace(basicConfig, "{{monolith}}", mono, 1), flagJSON("orders-percent", 0), tc.handler, nil)
			resp, body := e.get("/api/orders/1", "X-User-Id", "u")
			if resp.StatusCode != tc.status || body != tc.body {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if ct, nosniff := resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"); ct != "text/plain; charset=utf-8" || nosniff != "nosniff" {
				t.Errorf("Content-Type %q, X-Content-Type-Options %q; want plain text, nosniff", ct, nosniff)
			}
		})
	}
}

// X-Idempotency-Key makes a write retryable as Idempotency-Key does, as
// net/http's transport takes both: a POST with either, sent on a pooled
// connection the service closes as it arrives, is retried on a new one
// (its body read ahead for that) rather than answered 502. Payment and
// order APIs send the X- spelling; a client that set it expects exactly
// the retry it asked for.
func TestPinnedForwardEitherIdempotencyKeyMakesAWriteRetryable(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"Idempotency-Key", "X-Idempotency-Key"} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, strings.Replace(basicConfig, "{{service}}", closesSecondRequest(t), 1), flagJSON("orders-percent", 100), nil, nil)
			for i := range 2 {
				req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(`{"qty":1}`))
				req.Header.Set("X-User-Id", "u1")
				req.Header.Set(key, fmt.Sprint("k", i))
				if resp, body := e.do(req); resp.StatusCode != 200 || body != "service" {
					t.Fatalf("POST %d: %d %q; want the transport's retry on a new connection to answer", i, resp.StatusCode, body)
				}
			}
		})
	}
}

// With tracing on, the proxy owns the trace context fields its
// propagator writes: the client's are dropped from the upstream call
// before the proxy writes its own, so that a tracestate left behind a
// traceparent the proxy could not read, or the other B3 encoding's
// fields, do not reach the service beside the proxy's (into another
// trace, or naming the client's span as the parent and skipping the
// proxy's). Baggage is the application's data: one the proxy cannot
// parse passes as sent. A broken trace in Jaeger or lost baggage is
// what a platform team sees otherwise.
func TestPinnedTracingOwnsTheTraceContextItWrites(t *testing.T) {
	t.Parallel()
	b3, err := autoprop.TextMapPropagator("b3")
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name string
		prop propagation.TextMapPropagator
		sent []string          // header pairs from the client
		want map[string]string // what the upstream must get ("" = absent)
	}{
		{"tracestate behind an unreadable traceparent", nil,
			[]string{"Traceparent", "garbage", "Tracestate", "vendor=client"},
			map[string]string{"Tracestate": ""}},
		{"unparsable baggage", nil,
			[]string{"Baggage", "=no-key"},
			map[string]string{"Baggage": "=no-key"}},
		{"the other B3 encoding", b3,
			[]string{"X-B3-Traceid", traceID, "X-B3-Spanid", "00f067aa0ba902b7", "X-B3-Parentspanid", "1111111111111111", "X-B3-Sampled", "1"},
			map[string]string{"X-B3-Traceid": "", "X-B3-Spanid": "", "X-B3-Parentspanid": "", "X-B3-Sampled": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tp, _ := recordSpans(t)
			e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 0), headerEcho("monolith"), nil, Options{TracerProvider: tp, Propagator: tc.prop})
			_, body := e.get("/api/orders/1", tc.sent...)
			var h http.Header
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatalf("upstream's echo %q: %v", body, err)
			}
			for k, v := range tc.want {
				if h.Get(k) != v {
					t.Errorf("upstream got %s %q, want %q", k, h.Get(k), v)
				}
			}
			if tc.prop == nil {
				if tp := h.Get("Traceparent"); len(tp) != 55 {
					t.Errorf("upstream got Traceparent %q, want the proxy's", tp)
				}
			} else if b := h.Get("B3"); !strings.HasPrefix(b, traceID+"-") {
				t.Errorf("upstream got b3 %q, want the proxy's in the client's trace", b)
			}
		})
	}
}

// A request refused before routing (here: too many header lines) keeps
// the name its server span got on arrival, which folds a method outside
// the standard set into "_OTHER" as a routed request's does: span names
// become metric labels in span-metrics pipelines, and a client that
// sends a new random method on each request must not mint a series each
// time on the tracing backend's dashboards.
func TestPinnedTracingRefusedRequestsSpanFoldsUnknownMethods(t *testing.T) {
	t.Parallel()
	tp, ended := recordSpans(t)
	e := newEnvWith(t, basicConfig+"limits: {max_header_count: 10}\n", flagJSON("orders-percent", 0), nil, nil, Options{TracerProvider: tp})
	req, _ := http.NewRequest("RANDOM-1234", e.proxyURL+"/api/orders/1", nil)
	for i := range 12 {
		req.Header.Set(fmt.Sprint("X-H", i), "v")
	}
	if resp, _ := e.do(req); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	server := spanOfKind(ended(1), trace.SpanKindServer)
	if len(server) != 1 || server[0].Name() != "_OTHER" {
		t.Errorf("server span %v, want one named _OTHER", server)
	}
}

// Spans are named for what a trace view lists: a client span "<role>
// <backend> <method>" (the primary call and the shadow copy of one
// request go to upstreams with the same method, and the name alone tells
// the call the client waited for from the copy), and the server span of
// a request no route matched "<method> _default", the route name its
// metrics carry, rather than a name ending in a blank.
func TestPinnedTracingSpanNames(t *testing.T) {
	t.Parallel()
	tp, ended := recordSpans(t)
	e := newEnvWith(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), nil, nil, Options{TracerProvider: tp})
	e.get("/api/orders/1", "X-User-Id", "u")
	e.get("/elsewhere")
	names := map[string]bool{}
	for _, s := range ended(5) {
		names[s.Name()] = true
	}
	for _, want := range []string{"primary monolith GET", "shadow service GET", "GET /api/orders/*", "GET _default"} {
		if !names[want] {
			t.Errorf("spans %v: none named %q", names, want)
		}
	}
}

// The duration histogram's exemplar names only a sampled trace: an
// unsampled one was never exported, and a dashboard's "go to trace" link
// from a slow bucket would open a trace the backend does not have.
func TestPinnedTracingNoExemplarForAnUnsampledTrace(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 0), nil, nil, Options{TracerProvider: tp})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	e.get("/api/orders/1", "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	const series = `strangler_requests_total{backend="monolith",code="200",route="orders"}`
	if v := e.waitMetric(series, 1); v != 1 {
		t.Fatalf("%s = %v, want 1", series, v)
	}
	req, _ := http.NewRequest("GET", e.adminURL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	_, body := e.do(req)
	if strings.Contains(body, traceID) {
		t.Error("an exemplar names a trace that was not sampled")
	}
}

// A flag with no default variant and no targeting rule (an edit that
// dropped "defaultVariant") is unusable, and the log says so at WARN:
// every request of its route stays on the monolith. Logged today as the
// targeted case's INFO note ("its targeting rule decides each request"),
// it tells an operator a rule is at work where none is, at a level no
// alert looks at.
func TestPinnedServerFlagWithoutDefaultIsUnusable(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := startEnv(t, basicConfig, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":100}}}}`, nil, nil, false,
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const want = `level=WARN msg="route's flag is unusable: its traffic stays on the monolith" route=orders`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log has no %q:\n%s", want, logs.String())
	}
	if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.Header.Get("X-Served-By") != "monolith" {
		t.Errorf("served by %q, want the monolith", resp.Header.Get("X-Served-By"))
	}
}
