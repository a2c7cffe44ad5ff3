package proxy

// Contract checks against issues 2, 3, 4 and 7: names of
// metrics, labels, label values, admin JSON fields and config defaults that
// operators, dashboards and alert rules depend on.

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContractUpstreamErrors502And504 checks issue 2's "Upstream
// unreachable: 502; no response headers within timeouts.response_header:
// 504; both ... counted", with the series names and label values of the
// contract (strangler_upstream_errors_total{route,backend,kind},
// strangler_requests_total{route,backend,code}).
func TestContractUpstreamErrors502And504(t *testing.T) {
	t.Parallel()
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		w.Header().Set("X-Served-By", "service")
	})
	e := newEnv(t, basicConfig+`    timeouts: {response_header: 200ms}
    fallback: {on: []}
    eject: {consecutive_failures: 0}
  - name: dead
    path: /api/dead/*
    service: http://127.0.0.1:1
    fallback: {on: []}
    eject: {consecutive_failures: 0}
`, flagJSON("orders-percent", 100, "dead-percent", 100), nil, slow)

	resp, body := e.get("/api/orders/1", "X-User-Id", "u")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow service: got %d %q, want 504", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("504 Content-Type %q, want text/plain", ct)
	}
	if v := e.waitMetric(`strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`, 1); v != 1 {
		t.Errorf(`upstream_errors_total{kind="timeout"} = %v, want 1`, v)
	}
	if v := e.waitMetric(`strangler_requests_total{backend="service",code="504",route="orders"}`, 1); v != 1 {
		t.Errorf(`requests_total{code="504",backend="service"} = %v, want 1`, v)
	}

	resp, body = e.get("/api/dead/1")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead service: got %d %q, want 502", resp.StatusCode, body)
	}
	if strings.Contains(body, "127.0.0.1:1") {
		t.Errorf("502 body names the upstream's address: %q", body)
	}
	if v := e.waitMetric(`strangler_upstream_errors_total{backend="service",kind="connect",route="dead"}`, 1); v != 1 {
		t.Errorf(`upstream_errors_total{kind="connect"} = %v, want 1`, v)
	}
	if v := e.waitMetric(`strangler_requests_total{backend="service",code="502",route="dead"}`, 1); v != 1 {
		t.Errorf(`requests_total{code="502",backend="service"} = %v, want 1`, v)
	}
}

// TestContractEjectionAdminAndMetrics checks issue 7's ejection
// contract: /api/routes "state": "serving"|"ejected", "ejected_until" in
// RFC 3339 only when ejected, strangler_service_ejected{route} 0/1 and
// strangler_ejections_total{route}; 5xx answers are failures.
func TestContractEjectionAdminAndMetrics(t *testing.T) {
	t.Parallel()
	fail := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "service")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	e := newEnv(t, basicConfig+`    fallback: {on: []}
    eject: {consecutive_failures: 2, base_time: 30s, max_time: 1m}
`, flagJSON("orders-percent", 100), nil, fail)

	type entry struct {
		Name         string   `json:"name"`
		Path         string   `json:"path"`
		Service      string   `json:"service"`
		Flag         string   `json:"flag"`
		Percent      *float64 `json:"percent"`
		NoiseFields  []string `json:"noise_fields"`
		State        string   `json:"state"`
		EjectedUntil *string  `json:"ejected_until"`
	}
	routes := func() []entry {
		_, body := e.adminGet("/api/routes")
		var out []entry
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("/api/routes: %v: %s", err, body)
		}
		return out
	}
	r := routes()
	if len(r) != 1 || r[0].Name != "orders" || r[0].Path != "/api/orders/*" || r[0].Flag != "orders-percent" ||
		r[0].Percent == nil || *r[0].Percent != 100 || r[0].State != "serving" || r[0].EjectedUntil != nil || r[0].NoiseFields == nil {
		t.Fatalf("/api/routes before ejection: %+v", r)
	}
	for range 2 {
		resp, _ := e.get("/api/orders/1")
		if resp.StatusCode != 503 {
			t.Fatalf("service answer: %d, want its 503", resp.StatusCode)
		}
	}
	resp, body := e.get("/api/orders/1")
	if resp.StatusCode != 200 || body != "monolith" {
		t.Fatalf("after 2 failures: %d %q, want the monolith", resp.StatusCode, body)
	}
	r = routes()
	if r[0].State != "ejected" || r[0].EjectedUntil == nil {
		t.Fatalf("/api/routes after ejection: %+v", r[0])
	}
	until, err := time.Parse(time.RFC3339, *r[0].EjectedUntil)
	if err != nil {
		t.Errorf("ejected_until %q is not RFC 3339: %v", *r[0].EjectedUntil, err)
	} else if d := time.Until(until); d < 20*time.Second || d > 31*time.Second {
		t.Errorf("ejected_until %v from now, want about base_time 30s", d)
	}
	if v := e.metric(`strangler_service_ejected{route="orders"}`); v != 1 {
		t.Errorf("strangler_service_ejected = %v, want 1", v)
	}
	if v := e.metric(`strangler_ejections_total{route="orders"}`); v != 1 {
		t.Errorf("strangler_ejections_total = %v, want 1", v)
	}
}

// TestContractDiffsJSON checks issue 3's /api/diffs entry shape:
// {"time","route","method","path","primary":{"backend","status",
// "duration_seconds"},"shadow":{…},"differences":[{"kind",...}]}, query
// values redacted, limit default 20, and the comparison metrics' labels.
func TestContractDiffsJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"    shadow: {percent: 100}\n", flagJSON("orders-percent", 0), nil, nil)
	for i := range 25 {
		e.get("/api/orders/1?token=s3cret&n="+string(rune('a'+i)), "X-User-Id", "u")
	}
	if v := e.waitMetric(`strangler_comparisons_total{result="mismatch",route="orders"}`, 25); v != 25 {
		t.Fatalf(`comparisons_total{result="mismatch"} = %v, want 25`, v)
	}
	if v := e.metric(`strangler_mismatches_total{kind="body",route="orders"}`); v != 25 {
		t.Errorf(`mismatches_total{kind="body"} = %v, want 25`, v)
	}
	if v := e.metric(`strangler_request_duration_seconds_count{backend="service",role="shadow",route="orders"}`); v != 25 {
		t.Errorf(`duration{backend="service",role="shadow"} count = %v, want 25`, v)
	}
	code, body := e.adminGet("/api/diffs?route=orders")
	if code != 200 {
		t.Fatalf("/api/diffs: %d %s", code, body)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 20 {
		t.Errorf("default limit: %d entries, want 20", len(raw))
	}
	for _, k := range []string{"time", "route", "method", "path", "primary", "shadow", "differences"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("/api/diffs entry lacks %q: %s", k, body[:min(len(body), 600)])
		}
	}
	if v, ok := raw[0]["trace_id"]; ok {
		t.Errorf("/api/diffs entry has a trace_id %s with tracing off", v)
	}
	var typed []struct {
		Time    time.Time `json:"time"`
		Path    string    `json:"path"`
		Primary struct {
			Backend  string   `json:"backend"`
			Status   int      `json:"status"`
			Duration *float64 `json:"duration_seconds"`
		} `json:"primary"`
		Shadow struct {
			Backend  string   `json:"backend"`
			Status   int      `json:"status"`
			Duration *float64 `json:"duration_seconds"`
		} `json:"shadow"`
		Differences []struct {
			Kind string `json:"kind"`
		} `json:"differences"`
	}
	if err := json.Unmarshal([]byte(body), &typed); err != nil {
		t.Fatal(err)
	}
	s := typed[0]
	if s.Primary.Backend != "monolith" || s.Shadow.Backend != "service" || s.Primary.Status != 200 || s.Primary.Duration == nil || s.Shadow.Duration == nil {
		t.Errorf("sample sides: %+v", s)
	}
	if strings.Contains(body, "s3cret") || !strings.Contains(s.Path, "token=") {
		t.Errorf("query values not redacted (or names lost): %q", s.Path)
	}
	kinds := map[string]bool{}
	for _, d := range s.Differences {
		kinds[d.Kind] = true
	}
	if !kinds["body"] || !kinds["header"] {
		t.Errorf("differences kinds %v, want body and header (X-Served-By)", kinds)
	}
	for i := 1; i < len(typed); i++ {
		if typed[i].Time.After(typed[i-1].Time) {
			t.Errorf("not newest first at %d", i)
		}
	}
}

// TestContractAdminListenDefault checks issue 7's "The admin listener
// defaults to loopback": a config without admin_listen should start with the
// admin API on a loopback address rather than be refused.
func TestContractAdminListenDefault(t *testing.T) {
	t.Parallel()
	cfg, err := loadYAML(t, `
listen: 127.0.0.1:8080
monolith: http://127.0.0.1:8081
flags:
  file: flags.json
routes: []
`)
	if err != nil {
		t.Fatalf("config without admin_listen refused, though the admin listener is documented to default to loopback: %v", err)
	}
	if !loopback(cfg.AdminListen) {
		t.Errorf("admin_listen defaulted to %q, want a loopback address", cfg.AdminListen)
	}
}

// TestContractConfigDefaults checks the documented defaults of the
// optional keys of issues 2, 3 and 7.
func TestContractConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadYAML(t, `
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
monolith: http://127.0.0.1:8081
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
  - name: off
    path: /api/off/*
    service: http://127.0.0.1:8082
    fallback: {on: []}
    eject: {consecutive_failures: 0}
`)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	check := func(what string, got, want any) {
		t.Helper()
		if !equalish(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("shutdown_timeout", time.Duration(cfg.ShutdownTimeout), 15*time.Second)
	check("preserve_host", *cfg.PreserveHost, true)
	check("timeouts.connect", time.Duration(cfg.Timeouts.Connect), 2*time.Second)
	check("timeouts.response_header", time.Duration(cfg.Timeouts.ResponseHeader), 30*time.Second)
	check("timeouts.idle", time.Duration(cfg.Timeouts.Idle), 90*time.Second)
	check("shadow_queue", cfg.ShadowQueue, 1024)
	check("routes[0].flag", r.Flag, "orders-percent")
	check("routes[0].sticky", r.Sticky, "ip")
	check("routes[0].methods (all)", len(r.Methods), 0)
	check("shadow.percent", r.Shadow.Percent, 0.0)
	check("shadow.flag", r.Shadow.Flag, "orders-shadow")
	check("shadow.methods", strings.Join(r.Shadow.Methods, ","), "GET,HEAD,OPTIONS")
	check("shadow.timeout", time.Duration(r.Shadow.Timeout), 5*time.Second)
	check("fallback.on", strings.Join(r.Fallback.On, ","), "connect,reset,timeout")
	check("fallback.methods", strings.Join(r.Fallback.Methods, ","), "GET,HEAD,OPTIONS")
	check("fallback.max_body", int64(r.Fallback.MaxBody), int64(64<<10))
	check("eject.consecutive_failures", *r.Eject.ConsecutiveFailures, 5)
	check("eject.base_time", time.Duration(r.Eject.BaseTime), 30*time.Second)
	check("eject.max_time", time.Duration(r.Eject.MaxTime), 5*time.Minute)
	check("limits.read_header_timeout", time.Duration(cfg.Limits.ReadHeaderTimeout), 10*time.Second)
	check("limits.idle_timeout", time.Duration(cfg.Limits.IdleTimeout), 90*time.Second)
	check("limits.stall_timeout", time.Duration(cfg.Limits.StallTimeout), 60*time.Second)
	check("limits.max_header_bytes", int64(cfg.Limits.MaxHeaderBytes), int64(64<<10))
	check("limits.max_header_count", cfg.Limits.MaxHeaderCount, 100)
	check("limits.underscore_headers", cfg.Limits.UnderscoreHeaders, "drop")
	check("limits.max_body", int64(cfg.Limits.MaxBody), int64(0))
	off := cfg.Routes[1]
	check("fallback {on: []} is off", len(off.Fallback.On), 0)
	check("eject consecutive_failures: 0 is off", *off.Eject.ConsecutiveFailures, 0)
}

func equalish(a, b any) bool { return a == b }

// TestContractAllProblemsReportedAtOnce checks issue 2: "Unknown keys,
// bad URLs, duplicate names, bad patterns, a missing flag file: validate and
// serve exit 1 with one line per problem naming its place" (README: "Every
// problem is reported at once"). One misspelt key must not hide the others.
func TestContractAllProblemsReportedAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "strangler.yaml")
	writeFile(t, path, `
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
monolith: htp:/x
flags:
  file: nope.json
routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
  - name: orders
    path: api/x
    service: http://127.0.0.1:8082
    servce: x
`)
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	for _, want := range []string{"routes[1].servce", "monolith:", "flags.file:", "routes[1].name:", "routes[1].path:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("problem %q not reported; all reported:\n%s", want, msg)
		}
	}
}

// loadYAML loads yaml as a config file beside a flag file, as serve would.
func loadYAML(t *testing.T, yaml string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 0))
	path := filepath.Join(dir, "strangler.yaml")
	writeFile(t, path, yaml)
	return LoadConfig(path)
}
