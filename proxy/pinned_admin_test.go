package proxy

// Behaviours of the operator's side (admin.go: probes and the admin API;
// diffs.go: the mismatch samples of GET /api/diffs; limits.go: the
// refusals at the edge; metrics.go: the series dashboards read) that a
// hand mutation test found no test held: each test below fails when the
// behaviour it names is changed, and says why a user would notice.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// While the proxy drains at shutdown, /readyz answers 503 "not ready",
// and /healthz still 200: a load balancer or Kubernetes takes the
// instance out of rotation then, while the requests in flight finish;
// a /readyz that said 200 would keep new requests coming to a proxy that
// is about to close its listener.
func TestPinnedAdminReadyzSaysNotReadyWhileDraining(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	markStarted, open := sync.OnceFunc(func() { close(started) }), sync.OnceFunc(func() { close(release) })
	defer open()
	held := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		markStarted()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "monolith")
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), held, nil)
	if code, body := e.adminGet("/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz while serving: %d %q, want 200 \"ready\\n\"", code, body)
	}
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get(e.proxyURL + "/api/orders/1")
		if err != nil {
			answered <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case <-started:
	case <-time.After(pinnedWait):
		t.Fatal("the request never reached the monolith")
	}
	e.stop() // shutdown begins; the held request keeps it draining
	var code int
	var body string
	eventually(t, pinnedWait, "/readyz says not ready while draining", func() bool {
		code, body = e.adminGet("/readyz")
		return body != "ready\n"
	})
	if code != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("/readyz while draining: %d %q, want 503 \"not ready\\n\"", code, body)
	}
	if code, body := e.adminGet("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz while draining: %d %q, want 200 \"ok\\n\": the process is alive", code, body)
	}
	open()
	if got := <-answered; got != 200 {
		t.Errorf("the request in flight at shutdown got %d, want 200", got)
	}
}

// Every admin answer says what it is and that it must not be cached: the
// probes and refusals as UTF-8 text, the API as indented JSON (read by
// scripts and by operators with curl), and none stored by a caching proxy
// or browser between the operator and the admin listener (the samples
// hold request paths and answer excerpts). An empty sample list is [],
// not null: a script's `jq '.[]'` or `len()` works on a quiet route too.
// /metrics offers OpenMetrics to a scraper that asks for it, which is the
// format that carries exemplars and created timestamps.
func TestPinnedAdminAnswerHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), nil, nil)
	const text, js = "text/plain; charset=utf-8", "application/json"
	for _, tc := range []struct {
		path       string
		status     int
		ctype      string
		bodyPrefix string
	}{
		{"/healthz", 200, text, "ok\n"},
		{"/readyz", 200, text, "ready\n"},
		{"/api/routes", 200, js, "[\n  {\n    \"name\": \"orders\",\n"},
		{"/api/diffs", 200, js, "[]\n"},
		{"/api/diffs?limit=0", 400, text, "limit: want a whole number from 1"},
		{"/api/diffs?route=nope", 404, text, "route \"nope\": no such route\n"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(e.adminURL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.HasPrefix(string(b), tc.bodyPrefix) {
				t.Errorf("%d %q, want %d starting %q", resp.StatusCode, b, tc.status, tc.bodyPrefix)
			}
			if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != tc.ctype || cc != "no-store" {
				t.Errorf("Content-Type %q, Cache-Control %q; want %q, no-store", ct, cc, tc.ctype)
			}
		})
	}
	req, _ := http.NewRequest("GET", e.adminURL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(string(b), "# EOF\n") {
		t.Errorf("/metrics asked for OpenMetrics: Content-Type %q, want application/openmetrics-text ending in # EOF", ct)
	}
}

// mismatchingRoutes is a config of two shadowed routes, orders and users,
// whose every request mismatches (the service answers another body).
func mismatchingRoutes(t *testing.T) *env {
	t.Helper()
	cfg := configHead() + `  - name: orders
    path: /api/orders/*
    service: {{service}}
    shadow: {percent: 100}
  - name: users
    path: /api/users/*
    service: {{service}}
    shadow: {percent: 100}
`
	return newEnv(t, cfg, flagJSON("orders-percent", 0, "users-percent", 0), answer(200, `{"v":1}`), answer(200, `{"v":2}`))
}

// paths are the samples' request paths, in the order /api/diffs gave them.
func paths(samples []DiffSample) string {
	var out []string
	for _, s := range samples {
		out = append(out, s.Path)
	}
	return strings.Join(out, " ")
}

// A route keeps its last 100 samples, and /api/diffs gives 20 unless
// asked for more, newest request first: the operator opening the page
// sees what is failing now, and memory stays flat however often a route
// mismatches. The 101st sample pushes out the oldest one, and no sample
// shows twice.
func TestPinnedDiffsRingKeepsTheLast100NewestFirst(t *testing.T) {
	t.Parallel()
	e := mismatchingRoutes(t)
	const n = 105
	for i := range n {
		if resp, _ := e.get(fmt.Sprintf("/api/orders/%d", i)); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		// One at a time: each sample's time is its request's, so the
		// order below is the order they were sent.
		if got := e.comparisons(i + 1); got["mismatch"] != float64(i+1) {
			t.Fatalf("comparisons %v, want %d mismatches", got, i+1)
		}
	}
	want := func(newest, count int) string {
		var out []string
		for i := newest; i > newest-count; i-- {
			out = append(out, fmt.Sprintf("/api/orders/%d", i))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		query string
		count int
	}{{"", 20}, {"?limit=7", 7}, {"?limit=100", 100}, {"?limit=1000&route=orders", 100}} {
		if got := paths(e.diffs(tc.query)); got != want(n-1, tc.count) {
			t.Errorf("/api/diffs%s:\n%s\nwant the %d newest, newest first:\n%s", tc.query, got, tc.count, want(n-1, tc.count))
		}
	}
}

// Without ?route, /api/diffs merges every route's samples by request
// time, newest first, and applies limit to the merged list; with ?route,
// only that route's. The operator asking "what mismatched last" gets the
// last ones across the proxy, not one route's followed by another's.
func TestPinnedDiffsMergesRoutesByTime(t *testing.T) {
	t.Parallel()
	e := mismatchingRoutes(t)
	for i, path := range []string{"/api/orders/1", "/api/users/2", "/api/orders/3", "/api/users/4"} {
		if resp, _ := e.get(path); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		route := strings.Split(path, "/")[2]
		eventually(t, pinnedWait, path+" compared", func() bool {
			return e.metric(fmt.Sprintf(`strangler_comparisons_total{result="mismatch",route=%q}`, route)) == float64(i/2+1)
		})
	}
	for _, tc := range []struct{ query, want string }{
		{"", "/api/users/4 /api/orders/3 /api/users/2 /api/orders/1"},
		{"?limit=3", "/api/users/4 /api/orders/3 /api/users/2"},
		{"?route=orders", "/api/orders/3 /api/orders/1"},
		{"?route=users&limit=1", "/api/users/4"},
	} {
		if got := paths(e.diffs(tc.query)); got != tc.want {
			t.Errorf("/api/diffs%s: %s, want %s", tc.query, got, tc.want)
		}
	}
}

// A sample's time is when its request came, not when the comparison
// finished: a request whose shadow call was slow is listed after the
// requests that came after it, at its own place, so the operator can line
// the sample up with the access log and the trace.
func TestPinnedDiffsSampleTimeIsTheRequests(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	open := sync.OnceFunc(func() { close(release) })
	defer open()
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/orders/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		answer(200, `{"v":2}`).ServeHTTP(w, r)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 30s\n"), flagJSON("orders-percent", 0), answer(200, `{"v":1}`), svc)
	sent := time.Now()
	e.get("/api/orders/slow", "X-User-Id", "u")
	e.get("/api/orders/fast", "X-User-Id", "u")
	e.samplesOf(t, "orders", 1)
	open()
	got, _ := e.samplesOf(t, "orders", 2)
	if paths(got) != "/api/orders/fast /api/orders/slow" {
		t.Errorf("samples %s, want fast (the later request) first", paths(got))
	}
	if slow := got[1].Time; slow.Before(sent) || !slow.Before(got[0].Time) {
		t.Errorf("the slow request's sample is dated %v; want when it was sent (after %v, before the next request's %v)", slow, sent, got[0].Time)
	}
}

// A sample shows each side's status, how long it took, and the start of
// its body when that is readable text: up to 4 KiB, body_truncated only
// when more was cut, an "identity" Content-Encoding read as none, and no
// excerpt of a compressed or non-UTF-8 body (bytes that would show as
// garbage, or be mangled into U+FFFD by JSON). The same holds when the
// request carries a secret and the excerpt is searched for its echoes.
func TestPinnedDiffsSampleSides(t *testing.T) {
	t.Parallel()
	exact := strings.Repeat("a", 4<<10)
	for _, tc := range []struct {
		name          string
		body          string
		hdr           []string
		auth          bool
		want          string
		wantTruncated bool
	}{
		{"past 4 KiB", exact + "bcd", nil, false, exact, true},
		{"exactly 4 KiB", exact, nil, false, exact, false},
		{"exactly 4 KiB, with a secret", exact, nil, true, exact, false},
		{"identity encoding", "plain words", []string{"Content-Encoding", "identity"}, false, "plain words", false},
		{"gzip", gzipped("plain words"), []string{"Content-Encoding", "gzip"}, false, "", false},
		{"not UTF-8", "ab\xff\xfecd", nil, false, "", false},
		{"not UTF-8, with a secret", "ab\xff\xfecd", nil, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mono := answer(200, tc.body, append([]string{"Content-Type", "text/plain"}, tc.hdr...)...)
			e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), mono, answer(201, "other"))
			req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/7", nil)
			req.Header.Set("X-User-Id", "u")
			if tc.auth {
				req.Header.Set("Authorization", "Bearer a-long-enough-token")
			}
			if resp, _ := e.do(req); resp.StatusCode != 200 {
				t.Fatalf("client got %d", resp.StatusCode)
			}
			got, _ := e.samplesOf(t, "orders", 1)
			p, s := got[0].Primary, got[0].Shadow
			if p.Body != tc.want || p.BodyTruncated != tc.wantTruncated {
				t.Errorf("primary body %d bytes %.20q… truncated %v; want %d bytes %.20q… truncated %v", len(p.Body), p.Body, p.BodyTruncated, len(tc.want), tc.want, tc.wantTruncated)
			}
			if got[0].Method != "GET" || p.Status != 200 || s.Status != 201 || s.Body != "other" || p.DurationSeconds <= 0 || s.DurationSeconds <= 0 {
				t.Errorf("sample %s, primary %d in %vs, shadow %d %q in %vs; want GET, 200 and 201 \"other\", with their durations",
					got[0].Method, p.Status, p.DurationSeconds, s.Status, s.Body, s.DurationSeconds)
			}
		})
	}
}

// A difference's JSON Pointer is shown whole up to 1 KiB and cut past it
// (with "…" and a note saying so): an answer whose keys are as long as
// its values (a key taken from the request) must not store megabytes per
// sample, and a pointer of exactly 1 KiB, which fits, is shown as it is.
func TestPinnedDiffsPointerShownWholeUpTo1KiB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		keyLen int
		cut    bool
	}{{1023, false}, {1024, true}} {
		t.Run(fmt.Sprint(tc.keyLen+1), func(t *testing.T) {
			t.Parallel()
			key := strings.Repeat("k", tc.keyLen)
			e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0),
				answer(200, `{"`+key+`":1}`), answer(200, `{"`+key+`":2}`))
			e.get("/api/orders/7", "X-User-Id", "u")
			got, _ := e.samplesOf(t, "orders", 1)
			if len(got[0].Differences) != 1 {
				t.Fatalf("differences %+v, want the one", got[0].Differences)
			}
			d := got[0].Differences[0]
			want, note := "/"+key, ""
			if tc.cut {
				want, note = want[:samplePointerBytes]+"…", "pointer longer than 1024 bytes is shown as its start"
			}
			if d.Pointer != want || d.Note != note {
				t.Errorf("pointer of %d bytes shown as %d bytes (note %q); want %d bytes (note %q)", tc.keyLen+1, len(d.Pointer), d.Note, len(want), note)
			}
		})
	}
}

// A secret header's value is searched for in what a sample keeps only
// from 8 bytes on: a shorter one ("en", "eu-1") is found everywhere in
// ordinary answers, and replacing it would garble the sample without
// protecting anything, while an 8-byte one is redacted where echoed.
func TestPinnedDiffsShortSecretValuesAreNotSearched(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value  string
		hidden bool
	}{{"acme-eu", false}, {"acme-eu1", true}} {
		t.Run(tc.value, func(t *testing.T) {
			t.Parallel()
			echo := func(v int) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprintf(w, `{"tenant":%q,"v":%d}`, r.Header.Get("X-Tenant"), v)
				})
			}
			e := newEnv(t, shadowConfig("      percent: 100\n", "secret_headers: [X-Tenant]"), flagJSON("orders-percent", 0), echo(1), echo(2))
			e.get("/api/orders/7", "X-User-Id", "u", "X-Tenant", tc.value)
			got, _ := e.samplesOf(t, "orders", 1)
			body := got[0].Primary.Body
			if shown := strings.Contains(body, `"tenant":"`+tc.value+`"`); shown == tc.hidden || strings.Contains(body, "[redacted]") != tc.hidden {
				t.Errorf("X-Tenant %q (%d bytes) echoed: sample body %q; want it redacted: %v", tc.value, len(tc.value), body, tc.hidden)
			}
		})
	}
}

// Every series a route has exists from the start, at 0, under the names,
// label names and label values dashboards and alert rules query: a
// series born at its first increment loses that increment to rate(), and
// a renamed one silently empties a panel. The proxy-wide series start as
// a healthy proxy: the config and flags loaded now. The latency
// histogram has the 30 s and 60 s buckets that tell requests that waited
// for the response header timeout from the rest.
func TestPinnedMetricsSeriesExistFromTheStart(t *testing.T) {
	t.Parallel()
	before := time.Now()
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), nil, nil)
	want := map[string]float64{
		`strangler_route_percent{route="orders"}`:                                                               0,
		`strangler_flag_errors_total{flag="orders-percent"}`:                                                    0,
		`strangler_flag_reload_errors_total`:                                                                    0,
		`strangler_flag_last_reload_successful`:                                                                 1,
		`strangler_config_reload_errors_total`:                                                                  0,
		`strangler_config_last_reload_successful`:                                                               1,
		`strangler_panics_total`:                                                                                0,
		`strangler_service_ejected{route="orders"}`:                                                             0,
		`strangler_ejections_total{route="orders"}`:                                                             0,
		`strangler_noise_fields{route="orders"}`:                                                                0,
		`strangler_fallbacks_total{reason="connect",route="orders"}`:                                            0,
		`strangler_comparisons_total{result="match",route="orders"}`:                                            0,
		`strangler_comparisons_total{result="error",route="orders"}`:                                            0,
		`strangler_mismatches_total{kind="body",route="orders"}`:                                                0,
		`strangler_shadow_skipped_total{reason="too_large",route="orders"}`:                                     0,
		`strangler_upstream_errors_total{backend="service",kind="canceled",route="orders"}`:                     0,
		`strangler_upstream_errors_total{backend="monolith",kind="timeout",route="orders"}`:                     0,
		`strangler_request_duration_seconds_bucket{backend="monolith",role="primary",route="orders",le="30"}`:   0,
		`strangler_request_duration_seconds_bucket{backend="service",role="primary",route="orders",le="60"}`:    0,
		`strangler_request_duration_seconds_bucket{backend="service",role="primary",route="orders",le="+Inf"}`:  0,
		`strangler_request_duration_seconds_bucket{backend="proxy",role="primary",route="_default",le="+Inf"}`:  0,
		`strangler_request_duration_seconds_bucket{backend="monolith",role="primary",route="_default",le="10"}`: 0,
	}
	for series, v := range want {
		if got := e.metric(series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	at := e.metric("strangler_config_last_reload_success_timestamp_seconds")
	if at < float64(before.Unix()) || at > float64(time.Now().Unix()+1) {
		t.Errorf("strangler_config_last_reload_success_timestamp_seconds = %v, want the start, between %d and now", at, before.Unix())
	}
}

// /api/routes lists a route's methods when it is limited to some (an
// operator checking why a DELETE went to the monolith sees the route does
// not take it), and a flag note gives the flag's own reason after the
// explanation: which flag, and what its provider said of the empty
// context, so the operator can tell a rule that decides per request from
// a flag that cannot be evaluated at all.
func TestPinnedAdminRouteEntryMethodsAndFlagNote(t *testing.T) {
	t.Parallel()
	flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"v-GET":100,"v-POST":0},"defaultVariant":"v-GET",
	  "targeting":{"cat":["v-",{"var":"method"}]}}}}`
	e := newEnv(t, basicConfig+"    methods: [GET, POST]\n", flags, nil, nil)
	st := e.routeStatus()
	if strings.Join(st.Methods, ",") != "GET,POST" {
		t.Errorf("/api/routes methods %v, want [GET POST]", st.Methods)
	}
	const note = "route's flag has no value without a request's context; its targeting rule decides each request: "
	if reason, ok := strings.CutPrefix(st.FlagNote, note); !ok || !strings.Contains(reason, `flag "orders-percent"`) {
		t.Errorf("/api/routes flag_note %q, want %q and the flag's reason", st.FlagNote, note)
	}
	// A route that takes every method says nothing of methods.
	_, body := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil).adminGet("/api/routes")
	if strings.Contains(body, `"methods"`) {
		t.Errorf("/api/routes of a route taking every method: %s", body)
	}
}

// A Server embedded as an http.Handler (served by the embedder's own
// net/http server, without the guard that counts raw header lines)
// enforces max_header_count and underscore_headers as Serve does, Host
// included in the count: the limits in the config hold however the proxy
// is run, and a header count one under the limit is not refused.
func TestPinnedLimitsHoldWhenEmbedded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"limits: {max_header_count: 6, underscore_headers: reject}\n", flagJSON("orders-percent", 0), nil, nil)
	embedded := strings.TrimPrefix(httptestServer(t, e.srv), "http://")
	head := func(lines ...string) string {
		return "GET /api/orders/1 HTTP/1.1\r\nHost: x\r\n" + strings.Join(lines, "\r\n") + "\r\nConnection: close\r\n\r\n"
	}
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"6 lines with Host", head("A: 1", "B: 1", "C: 1", "D: 1"), 200},
		{"7 lines with Host", head("A: 1", "B: 1", "C: 1", "D: 1", "E: 1"), 431},
		{"an underscore", head("X_Forwarded_For: 10.0.0.1"), 400},
	} {
		for _, addr := range []string{e.proxyAddr(), embedded} {
			resps, _ := exchange(t, addr, tc.raw, pinnedWait)
			if got := statuses(resps); len(got) != 1 || got[0] != tc.status {
				t.Errorf("%s, served at %s: answers %v, want %d", tc.name, addr, got, tc.status)
			}
		}
	}
}

// A sample kept from before a reload named a header secret shows that
// header's difference as a sample compared after the reload does: values
// "[redacted]" and the note that they differ. The operator still sees
// that the header differs (the reason for the mismatch), and the two
// samples read the same.
func TestPinnedDiffsKeptSampleOfANewSecretHeaderReadsAsANewOne(t *testing.T) {
	t.Parallel()
	cfg := shadowConfig("      percent: 100\n")
	e := newEnv(t, cfg, flagJSON("orders-percent", 0),
		answer(200, `{"a":1}`, "X-Api-Key", "monolith-key-123"), answer(200, `{"a":1}`, "X-Api-Key", "service-key-456"))
	e.get("/api/orders/1", "X-User-Id", "u")
	e.samplesOf(t, "orders", 1)
	e.rewriteConfig("secret_headers: [x-api-key]\n" + cfg)
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	e.get("/api/orders/2", "X-User-Id", "u")
	got, _ := e.samplesOf(t, "orders", 2)
	const note = "secret header: the values differ and are not shown"
	for _, s := range got {
		if len(s.Differences) != 1 {
			t.Fatalf("%s: differences %+v, want the X-Api-Key one", s.Path, s.Differences)
		}
		d := s.Differences[0]
		if d.Header != "X-Api-Key" || string(d.Primary) != `"[redacted]"` || string(d.Shadow) != `"[redacted]"` || d.Note != note {
			t.Errorf("%s: difference %s %s/%s note %q; want X-Api-Key, both [redacted], note %q", s.Path, d.Header, d.Primary, d.Shadow, d.Note, note)
		}
	}
}

// A keep-alive connection left idle is closed after limits.idle_timeout:
// idle clients (a pool that never closes, or a slowloris that stopped
// after one request) must not hold the proxy's file descriptors for ever.
func TestPinnedIdleConnectionClosedAfterIdleTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"limits: {idle_timeout: 1s}\n", flagJSON("orders-percent", 0), nil, nil)
	c, br := dialRaw(t, e.proxyAddr(), "GET /api/orders/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !closedWithin(c, br, pinnedWait) {
		t.Errorf("an idle keep-alive connection still open after %v, with idle_timeout 1s", pinnedWait)
	}
}

// A panic while serving a route's request is answered 500 naming that
// route, as the log line does: the operator reading the client's error
// or the log finds the route's code path, not "_default". (Served
// embedded, through a body that panics when read, as an embedding
// middleware's might.)
func TestPinnedPanicAnswerNamesTheRoute(t *testing.T) {
	t.Parallel()
	// As TestFallbackBodyPanicGivesShadowChargeBack: the body is read on
	// the request's goroutine (the shadow's share, then the fallback's),
	// where the panic is the request's.
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      max_body: 1KiB\n"+
		"    fallback: {on: [connect, reset], methods: [POST], max_body: 64KiB}\n"),
		flagJSON("orders-percent", 100), nil, nil)
	front := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &panicAfter{rc: r.Body, n: 2048}
		e.srv.ServeHTTP(w, r)
	}))
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(strings.Repeat("x", 8<<10)))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", front+"/api/orders/1", pr) // chunked: length unknown
	req.Header.Set("X-User-Id", "u")
	resp, body := e.do(req)
	if want := "Internal Server Error: route orders: internal error\n"; resp.StatusCode != 500 || body != want {
		t.Errorf("answer %d %q, want 500 %q", resp.StatusCode, body, want)
	}
	if v := e.waitMetric("strangler_panics_total", 1); v != 1 {
		t.Errorf("strangler_panics_total = %v, want 1", v)
	}
}

// A scraper that takes Prometheus's protobuf format (as Prometheus does
// with native histograms on) gets strangler_request_duration_seconds as
// a native histogram too, at schema 3 (buckets 1.1 apart): latency
// quantiles at any resolution without more classic buckets, and
// dashboards built on native histograms find it.
func TestPinnedMetricsDurationIsANativeHistogram(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	e.get("/api/orders/1", "X-User-Id", "u")
	e.waitMetric(`strangler_request_duration_seconds_count{backend="monolith",role="primary",route="orders"}`, 1)
	req, _ := http.NewRequest("GET", e.adminURL+"/metrics", nil)
	req.Header.Set("Accept", `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			t.Fatalf("/metrics in protobuf has no strangler_request_duration_seconds (%v)", err)
		}
		if mf.GetName() != "strangler_request_duration_seconds" {
			continue
		}
		checked := 0
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h.GetSampleCount() != 1 {
				continue
			}
			checked++
			if h.Schema == nil || h.GetSchema() != 3 || len(h.GetBucket()) != len(durationBuckets) {
				t.Errorf("%v: schema %v, %d classic buckets; want a native histogram of schema 3 beside the %d classic buckets", m.GetLabel(), h.Schema, len(h.GetBucket()), len(durationBuckets))
			}
		}
		if checked == 0 {
			t.Error("strangler_request_duration_seconds in protobuf has no series with the request")
		}
		return
	}
}
