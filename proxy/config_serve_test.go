package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// These tests start a proxy on configs that validation accepts at its
// edges, and check that what validation promised is what the proxy does.

// Patterns that differ only in parameter names may share a path when their
// methods do not overlap: chi keeps one endpoint per method, so both routes
// get their requests.
func TestConfigPatternsWithOtherParameterNamesServeTheirMethods(t *testing.T) {
	t.Parallel()
	cfgYAML := `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - {name: users-read, path: '/api/users/{id}', methods: [GET], service: '{{service}}', sticky: random}
  - {name: users-write, path: '/api/users/{uid}', methods: [POST], service: '{{service}}', sticky: random}
`
	e := newEnv(t, cfgYAML, flagJSON("users-read-percent", 100, "users-write-percent", 100), nil, nil)
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, e.proxyURL+"/api/users/7", nil)
		if resp, _ := e.do(req); resp.Header.Get("X-Served-By") != "service" {
			t.Errorf("%s /api/users/7 (its route at 100 %%) served by %s", method, resp.Header.Get("X-Served-By"))
		}
	}
}

// fallback.methods: [] replays no request that may have reached the
// service, but still replays a connect failure, which never did.
func TestConfigFallbackEmptyMethodsReplaysOnlyConnectFailures(t *testing.T) {
	t.Parallel()
	extra := "    fallback: {methods: []}\n    eject: {consecutive_failures: 0}\n"
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		var mono, svc atomic.Int32
		e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), bodyEcho(&mono), resetAfterReading(&svc))
		resp, body := e.get("/api/orders/1", "X-User-Id", "u")
		if resp.StatusCode != http.StatusBadGateway || mono.Load() != 0 {
			t.Errorf("GET reset by the service: %d %q, monolith hits %d; want 502 and no replay", resp.StatusCode, body, mono.Load())
		}
	})
	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		var mono atomic.Int32
		e := newEnv(t, fallbackConfig(deadURL(t), extra), flagJSON("orders-percent", 100), bodyEcho(&mono), nil)
		resp, body := e.get("/api/orders/1", "X-User-Id", "u")
		if resp.StatusCode != 200 || body != `monolith got GET ""` {
			t.Errorf("GET refused at connect: %d %q; want the monolith's answer", resp.StatusCode, body)
		}
	})
}

// A sticky header with an underscore is accepted only with
// limits.underscore_headers: allow, and then it splits users.
func TestConfigStickyHeaderWithUnderscoreSplitsWhenAllowed(t *testing.T) {
	t.Parallel()
	cfgYAML := strings.Replace(basicConfig, "header:X-User-Id", "header:X_User_Id", 1) + "limits: {underscore_headers: allow}\n"
	e := newEnv(t, cfgYAML, flagJSON("orders-percent", 50), nil, nil)
	seen := map[string]int{}
	for i := range 100 {
		req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1", nil)
		req.Header["X_User_Id"] = []string{fmt.Sprintf("user-%d", i)}
		resp, _ := e.do(req)
		seen[resp.Header.Get("X-Served-By")]++
	}
	if seen["service"] == 0 || seen["monolith"] == 0 {
		t.Errorf("100 users at 50 %% all went one way (%v): the split did not see X_User_Id", seen)
	}
}

// The largest shadow queue starts, and the largest ejection threshold is
// counted as written (a threshold cut to 32 bits ejected after 1 failure).
func TestConfigMaximumsServe(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	extra := fmt.Sprintf("    eject: {consecutive_failures: %d}\nshadow_queue: %d\n", maxConsecutiveFailures, maxShadowQueue)
	e := newEnv(t, fallbackConfig(deadURL(t), extra), flagJSON("orders-percent", 100), bodyEcho(&mono), nil)
	for range 3 {
		if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 200 || mono.Load() == 0 {
			t.Fatalf("connect failure not replayed to the monolith: %d", resp.StatusCode)
		}
	}
	if v := e.waitMetric(`strangler_fallbacks_total{reason="connect",route="orders"}`, 3); v != 3 {
		t.Errorf("fallbacks = %v, want 3", v)
	}
	if v := e.metric(`strangler_service_ejected{route="orders"}`); v != 0 {
		t.Errorf("ejected after 3 failures with consecutive_failures: %d (strangler_service_ejected = %v)", maxConsecutiveFailures, v)
	}
}
