package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// configHead is a config's top-level part, with extra lines, up to its
// routes.
func configHead(top ...string) string {
	return `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
` + strings.Join(top, "\n") + `
routes:
`
}

// shadowConfig routes /api/orders/* with shadow options spliced in.
func shadowConfig(shadow string, top ...string) string {
	return configHead(top...) + `  - name: orders
    path: /api/orders/*
    methods: [GET, HEAD, POST, PUT]
    service: {{service}}
    sticky: header:X-User-Id
    shadow:
` + shadow
}

// answer is a backend that always gives the same response.
func answer(status int, body string, hdr ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

// comparisons waits until route orders has n comparisons in all and
// returns them by result.
func (e *env) comparisons(n int) map[string]float64 {
	e.t.Helper()
	return e.comparisonsOf("orders", n)
}

func (e *env) comparisonsOf(route string, n int) map[string]float64 {
	e.t.Helper()
	got := map[string]float64{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		total := 0.0
		for _, r := range []string{"match", "mismatch", "error"} {
			v := e.metric(fmt.Sprintf(`strangler_comparisons_total{result=%q,route=%q}`, r, route))
			got[r] = max(v, 0)
			total += got[r]
		}
		if total >= float64(n) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) diffs(query string) []DiffSample {
	e.t.Helper()
	code, body := e.adminGet("/api/diffs" + query)
	if code != 200 {
		e.t.Fatalf("/api/diffs%s: %d %s", query, code, body)
	}
	var out []DiffSample
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestShadowComparisons(t *testing.T) {
	t.Parallel()
	const doc = `{"id":7,"total":42.5,"items":[{"sku":"a","qty":1}],"meta":{"requestId":"r1"}}`
	cases := []struct {
		name              string
		shadowCfg         string
		monolith, service http.Handler
		want              string // match or mismatch
		wantDiff          string // kind:pointer-or-header of the first difference
	}{
		{"identical", "", answer(200, doc), answer(200, doc), "match", ""},
		{"status differs", "", answer(200, doc), answer(500, doc), "mismatch", "status:"},
		{"header differs", "", answer(200, doc, "X-Version", "1"), answer(200, doc, "X-Version", "2"), "mismatch", "header:X-Version"},
		{"json field differs", "", answer(200, doc), answer(200, strings.Replace(doc, "42.5", `"42.50"`, 1)), "mismatch", "body:/total"},
		{"nested array field", "", answer(200, doc), answer(200, strings.Replace(doc, `"qty":1`, `"qty":2`, 1)), "mismatch", "body:/items/0/qty"},
		{"key order and 1 vs 1.0", "", answer(200, `{"a":1,"b":2}`), answer(200, `{"b":2.0,"a":1.0}`), "match", ""},
		{"ignored pointer", "      ignore_json: [/meta/requestId]\n", answer(200, doc), answer(200, strings.Replace(doc, "r1", "r2", 1)), "match", ""},
		{"unordered list", "      unordered_json: [/items]\n", answer(200, `{"items":[{"sku":"a"},{"sku":"b"}]}`), answer(200, `{"items":[{"sku":"b"},{"sku":"a"}]}`), "match", ""},
		{"ordered list", "", answer(200, `{"items":[{"sku":"a"},{"sku":"b"}]}`), answer(200, `{"items":[{"sku":"b"},{"sku":"a"}]}`), "mismatch", "body:/items/0/sku"},
		{"ignored header", "      ignore_headers: [X-Version]\n", answer(200, doc, "X-Version", "1"), answer(200, doc, "X-Version", "2"), "match", ""},
		{"built-in ignored header", "", answer(200, doc, "Date", "Mon, 01 Jan 2024 00:00:00 GMT"), answer(200, doc, "Date", "Tue, 02 Jan 2024 00:00:00 GMT"), "match", ""},
		{"gzip vs plain", "", answer(200, doc), answer(200, gzipped(doc), "Content-Encoding", "gzip"), "match", ""},
		{"text bodies", "", answer(200, "hello", "Content-Type", "text/plain"), answer(200, "hellO", "Content-Type", "text/plain"), "mismatch", "body:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig("      percent: 100\n"+c.shadowCfg), flagJSON("orders-percent", 0), c.monolith, c.service)
			if resp, body := e.get("/api/orders/7", "X-User-Id", "u1"); resp.StatusCode != 200 {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			got := e.comparisons(1)
			if got[c.want] != 1 {
				t.Fatalf("comparisons %v, want one %s", got, c.want)
			}
			samples := e.diffs("?route=orders")
			if c.want == "match" {
				if len(samples) != 0 {
					t.Errorf("samples for a match: %+v", samples)
				}
				return
			}
			if len(samples) != 1 || len(samples[0].Differences) == 0 {
				t.Fatalf("samples: %+v", samples)
			}
			d := samples[0].Differences[0]
			if got := d.Kind.String() + ":" + d.Pointer + d.Header; got != c.wantDiff {
				t.Errorf("first difference %s, want %s (%+v)", got, c.wantDiff, d)
			}
			s := samples[0]
			if s.Route != "orders" || s.Method != "GET" || s.Path != "/api/orders/7" || s.Primary.Backend != "monolith" || s.Shadow.Backend != "service" || s.Primary.Status == 0 {
				t.Errorf("sample %+v", s)
			}
			kind, _, _ := strings.Cut(c.wantDiff, ":")
			if v := e.metric(fmt.Sprintf(`strangler_mismatches_total{kind=%q,route="orders"}`, kind)); v != 1 {
				t.Errorf("strangler_mismatches_total{kind=%s} = %v", kind, v)
			}
		})
	}
}

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func TestShadowGoesToTheOtherSide(t *testing.T) {
	t.Parallel()
	var monolithShadows, serviceShadows atomic.Int32
	side := func(name string, n *atomic.Int32) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Strangler-Shadow") == "1" {
				n.Add(1)
			}
			w.Header().Set("X-Served-By", name)
			io.WriteString(w, `{"ok":true}`)
		})
	}
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 100), side("monolith", &monolithShadows), side("service", &serviceShadows))
	resp, _ := e.get("/api/orders/1", "X-User-Id", "u")
	if resp.Header.Get("X-Served-By") != "service" {
		t.Fatal("primary is not the service at 100%")
	}
	e.comparisons(1)
	if monolithShadows.Load() != 1 || serviceShadows.Load() != 0 {
		t.Errorf("shadow copies: monolith %d, service %d; want the monolith to get the copy", monolithShadows.Load(), serviceShadows.Load())
	}
	if v := e.metric(`strangler_request_duration_seconds_count{backend="monolith",role="shadow",route="orders"}`); v != 1 {
		t.Errorf("shadow latency observations = %v", v)
	}
}

// A request asking for an upgrade other than WebSocket (h2c, which
// Java's HttpClient asks for on every new plain-HTTP connection) is
// proxied without it, and compared like any other.
func TestShadowComparesRequestsAskingForH2C(t *testing.T) {
	t.Parallel()
	var upgrades atomic.Int32
	side := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			upgrades.Add(1)
		}
		io.WriteString(w, `{"ok":true}`)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 100), side, side)
	resp, _ := e.get("/api/orders/1", "X-User-Id", "u", "Upgrade", "h2c", "Connection", "Upgrade, HTTP2-Settings", "HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := e.comparisons(1); got["match"] != 1 {
		t.Errorf("comparisons %v, want one match", got)
	}
	if upgrades.Load() != 0 {
		t.Errorf("%d upstream calls asked for the upgrade", upgrades.Load())
	}
}

func TestShadowWrites(t *testing.T) {
	t.Parallel()
	type seen struct{ method, body, mark string }
	record := func(ch chan seen) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			ch <- seen{r.Method, string(b), r.Header.Get("X-Strangler-Shadow")}
			io.WriteString(w, `{"saved":true}`)
		})
	}
	t.Run("not by default", func(t *testing.T) {
		t.Parallel()
		mono, svc := make(chan seen, 4), make(chan seen, 4)
		e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), record(mono), record(svc))
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(`{"qty":3}`))
		e.do(req)
		if got := <-mono; got.body != `{"qty":3}` || got.mark != "" {
			t.Errorf("primary got %+v", got)
		}
		eventually(t, 2*time.Second, "skip counted", func() bool {
			return e.metric(`strangler_shadow_skipped_total{reason="method",route="orders"}`) == 1
		})
		if len(svc) != 0 {
			t.Errorf("a POST reached the service as a shadow: %+v", <-svc)
		}
	})
	t.Run("when listed", func(t *testing.T) {
		t.Parallel()
		mono, svc := make(chan seen, 4), make(chan seen, 4)
		e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n"), flagJSON("orders-percent", 0), record(mono), record(svc))
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(`{"qty":3}`))
		req.Header.Set("X-Strangler-Shadow", "1") // a client's mark must not survive
		e.do(req)
		if got := <-mono; got.body != `{"qty":3}` || got.mark != "" {
			t.Errorf("primary got %+v", got)
		}
		select {
		case got := <-svc:
			if got.method != "POST" || got.body != `{"qty":3}` || got.mark != "1" {
				t.Errorf("shadow got %+v", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no shadow POST")
		}
		if got := e.comparisons(1); got["match"] != 1 {
			t.Errorf("comparisons %v", got)
		}
	})
}

func TestSlowShadowLeavesThePrimaryAlone(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var shadowStarted atomic.Bool
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shadowStarted.Store(true)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 10s\n"), flagJSON("orders-percent", 0), answer(200, `{"a":1}`), hang)
	defer close(release)
	// The client's answers come while the shadow side still holds every
	// copy: nothing here waits for the shadow.
	for i := range 20 {
		resp, body := e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i))
		if resp.StatusCode != 200 || body != `{"a":1}` {
			t.Fatalf("client got %d %q", resp.StatusCode, body)
		}
	}
	eventually(t, 5*time.Second, "shadow call reached the service", shadowStarted.Load)
	if got := e.comparisons(0); got["match"]+got["mismatch"]+got["error"] != 0 {
		t.Errorf("comparisons finished although the shadow hangs: %v", got)
	}
}

func TestShadowTimeoutIsAnError(t *testing.T) {
	t.Parallel()
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 100ms\n"), flagJSON("orders-percent", 0), answer(200, `{}`), hang)
	e.get("/api/orders/1", "X-User-Id", "u")
	if got := e.comparisons(1); got["error"] != 1 {
		t.Errorf("comparisons %v, want one error", got)
	}
	if v := e.metric(`strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`); v != 0 {
		t.Errorf("a shadow timeout was counted as the route's upstream error: %v", v)
	}
}

// TestShadowDeadlineBoundsTheWholeCall: shadow.timeout covers the body as
// well as the head, on the direct path (GET, bounded by the connection's
// deadline) and through ReverseProxy (POST with a body, by a context).
func TestShadowDeadlineBoundsTheWholeCall(t *testing.T) {
	t.Parallel()
	stall := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, `{"partial":`)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 200ms\n      methods: [GET, POST]\n"), flagJSON("orders-percent", 0), answer(200, `{"a":1}`), stall)
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader(`{"order":1}`)
			}
			req, _ := http.NewRequest(method, e.proxyURL+"/api/orders/1", body)
			req.Header.Set("X-User-Id", "u")
			resp, got := e.do(req)
			if resp.StatusCode != 200 || got != `{"a":1}` {
				t.Fatalf("client got %d %q", resp.StatusCode, got)
			}
			if got := e.comparisons(1); got["error"] != 1 {
				t.Errorf("comparisons %v, want one error", got)
			}
		})
	}
}

// TestShadowDeadlineDoesNotOutliveTheCall: a copy's deadline is cleared
// before its connection is pooled, so a connection idle for longer than
// shadow.timeout still serves the next copy.
func TestShadowDeadlineDoesNotOutliveTheCall(t *testing.T) {
	t.Parallel()
	var conns connsSeen
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.note(r)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"a":1}`)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 100ms\n"), flagJSON("orders-percent", 0), answer(200, `{"a":1}`), service)
	for i := range 2 {
		e.get("/api/orders/1", "X-User-Id", "u")
		if got := e.comparisons(i + 1); got["match"] != float64(i+1) {
			t.Fatalf("comparisons %v, want %d matches", got, i+1)
		}
		time.Sleep(300 * time.Millisecond) // idle for longer than the timeout: the condition under test
	}
	if n := conns.count(); n != 1 {
		t.Errorf("the copies came over %d connections, want 1 (the pooled one)", n)
	}
}

// connsSeen counts the client connections a backend was called over.
type connsSeen struct {
	mu sync.Mutex
	m  map[string]bool
}

func (c *connsSeen) note(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]bool{}
	}
	c.m[r.RemoteAddr] = true
}

// count returns how many connections were seen, and forgets them.
func (c *connsSeen) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.m)
	clear(c.m)
	return n
}

func TestShadowGarbageAndResetsNeverReachTheClient(t *testing.T) {
	t.Parallel()
	reset := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte(`{"partial":`))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), answer(200, `{"a":1}`), reset)
	for i := range 10 {
		resp, body := e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i))
		if resp.StatusCode != 200 || body != `{"a":1}` {
			t.Fatalf("client got %d %q", resp.StatusCode, body)
		}
	}
	if got := e.comparisons(10); got["error"] != 10 {
		t.Errorf("comparisons %v, want 10 errors", got)
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 10s\n", "shadow_workers: 1", "shadow_queue: 2"),
		flagJSON("orders-percent", 0), answer(200, `{}`), hang)
	defer close(release)
	for i := range 10 {
		if resp, _ := e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i)); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// One copy in the worker, two queued: the other seven are dropped.
	if v := e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`); v < 7 {
		t.Errorf("overload skips = %v, want >= 7", v)
	}
}

func TestShadowMemoryIsBounded(t *testing.T) {
	t.Parallel()
	big := `{"pad":"` + strings.Repeat("x", 600) + `"}`
	both := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/orders/small" {
			io.WriteString(w, `{"a":1}`)
			return
		}
		io.WriteString(w, big)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n", "shadow_memory: 1KiB"), flagJSON("orders-percent", 0), both, both)
	// Two answers of 600 bytes do not fit in 1 KiB: not compared, counted
	// as overload, and the client still gets its whole answer.
	if _, body := e.get("/api/orders/big", "X-User-Id", "u"); body != big {
		t.Fatal("client answer cut")
	}
	eventually(t, 5*time.Second, "overload skip", func() bool {
		return e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`) == 1
	})
	// The budget was given back: small answers are compared again.
	e.get("/api/orders/small", "X-User-Id", "u")
	if got := e.comparisons(1); got["match"] != 1 {
		t.Errorf("after the budget was released: %v", got)
	}
	eventually(t, 2*time.Second, "budget released", func() bool { return e.srv.shadowMem.used.Load() == 0 })
}

func TestShadowSkipsLargeBodies(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 2048)
	var primaryGot atomic.Value
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		primaryGot.Store(string(b))
		if r.URL.Path == "/api/orders/big-answer" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "ok")
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      max_body: 1KiB\n      methods: [POST, GET]\n"), flagJSON("orders-percent", 0), mono, answer(200, "ok"))
	// Request body over max_body, sent chunked so the proxy must read to find out.
	req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", io.MultiReader(strings.NewReader(big)))
	resp, _ := e.do(req)
	if resp.StatusCode != 200 || primaryGot.Load() != big {
		t.Fatalf("primary did not get the whole body: %d, %d bytes", resp.StatusCode, len(primaryGot.Load().(string)))
	}
	// Declared too large: skipped without reading.
	req, _ = http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(big))
	e.do(req)
	// Answer over max_body.
	if _, body := e.get("/api/orders/big-answer", "X-User-Id", "u"); body != big {
		t.Fatalf("client did not get the whole answer")
	}
	eventually(t, 5*time.Second, "3 too_large skips", func() bool {
		return e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`) == 3
	})
	if got := e.comparisons(0); got["match"]+got["mismatch"] != 0 {
		t.Errorf("compared anyway: %v", got)
	}
}

func TestNoiseCancellation(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	fresh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":7,"generatedAt":%d,"total":10}`, n.Add(1))
	})
	for _, noise := range []bool{false, true} {
		t.Run(fmt.Sprint("noise=", noise), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig(fmt.Sprintf("      percent: 100\n      noise: %v\n", noise)), flagJSON("orders-percent", 0), fresh, fresh)
			for i := range 5 {
				e.get("/api/orders/7", "X-User-Id", fmt.Sprint("u", i))
			}
			got := e.comparisons(5)
			if noise && got["match"] != 5 {
				t.Errorf("with noise: %v, want 5 matches", got)
			}
			if !noise && got["mismatch"] != 5 {
				t.Errorf("without noise: %v, want 5 mismatches", got)
			}
			_, body := e.adminGet("/api/routes")
			var routes []RouteStatus
			json.Unmarshal([]byte(body), &routes)
			if noise && (len(routes) != 1 || strings.Join(routes[0].NoiseFields, ",") != "/generatedAt") {
				t.Errorf("noise_fields %v, want [/generatedAt]", routes)
			}
			if noise && e.metric(`strangler_noise_fields{route="orders"}`) != 1 {
				t.Errorf("strangler_noise_fields != 1")
			}
		})
	}
	t.Run("real differences still count", func(t *testing.T) {
		t.Parallel()
		svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":7,"generatedAt":%d,"total":11}`, n.Add(1))
		})
		e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n"), flagJSON("orders-percent", 0), fresh, svc)
		e.get("/api/orders/7", "X-User-Id", "u")
		if got := e.comparisons(1); got["mismatch"] != 1 {
			t.Fatalf("comparisons %v", got)
		}
		d := e.diffs("")[0].Differences
		if len(d) != 1 || d[0].Pointer != "/total" {
			t.Errorf("differences %+v, want only /total", d)
		}
	})
}

func TestSecretsNeverInDiffs(t *testing.T) {
	t.Parallel()
	mono := answer(200, `{"user":"a"}`, "Set-Cookie", "session=monolith-secret-cookie; HttpOnly", "X-Api-Key", "mono-api-key-secret")
	svc := answer(200, `{"user":"b"}`, "Set-Cookie", "session=service-secret-cookie; HttpOnly", "Set-Cookie", "extra=1", "X-Api-Key", "svc-api-key-secret")
	e := newEnv(t, shadowConfig("      percent: 100\n", "secret_headers: [X-Api-Key]"), flagJSON("orders-percent", 0), mono, svc)
	req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1?token=query-secret&page=2", nil)
	req.Header.Set("Authorization", "Bearer auth-secret")
	req.Header.Set("Cookie", "session=request-cookie-secret")
	req.Header.Set("X-Api-Key", "request-api-key-secret")
	e.do(req)
	e.comparisons(1)
	_, body := e.adminGet("/api/diffs")
	if !strings.Contains(body, `"header": "X-Api-Key"`) || !strings.Contains(body, `"header": "Set-Cookie"`) {
		t.Errorf("header differences missing:\n%s", body)
	}
	for _, secret := range []string{"secret-cookie", "api-key-secret", "auth-secret", "request-cookie", "query-secret"} {
		if strings.Contains(body, secret) {
			t.Errorf("/api/diffs leaks %q:\n%s", secret, body)
		}
	}
	if !strings.Contains(body, `/api/orders/1?token=[redacted]\u0026page=[redacted]`) {
		t.Errorf("path not redacted:\n%s", body)
	}
}

func TestShadowFlagOverridesPercentLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shadowConfig("      percent: 0\n"), flagJSON("orders-percent", 0), answer(200, "{}"), answer(200, "{}"))
	e.get("/api/orders/1", "X-User-Id", "u")
	writeFile(t, e.flagFile, flagJSON("orders-percent", 0, "orders-shadow", 100))
	eventually(t, 3*time.Second, "shadow flag applied", func() bool {
		e.get("/api/orders/1", "X-User-Id", "u")
		return e.metric(`strangler_comparisons_total{result="match",route="orders"}`) >= 1
	})
}

func TestDiffsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), answer(200, `{"v":1}`), answer(200, `{"v":2}`))
	for i := range 5 {
		e.get(fmt.Sprintf("/api/orders/%d", i), "X-User-Id", "u")
	}
	e.comparisons(5)
	all := e.diffs("?limit=3")
	if len(all) != 3 || all[0].Path != "/api/orders/4" || all[1].Path != "/api/orders/3" || all[2].Path != "/api/orders/2" {
		t.Errorf("limit=3: want the 3 newest first, got %d: %+v", len(all), all)
	}
	// At most 100 are kept: a larger limit asks for all of them.
	if got := e.diffs("?limit=500"); len(got) != 5 {
		t.Errorf("limit=500: %d samples, want all 5", len(got))
	}
	for _, bad := range []string{"0", "-1", "ten"} {
		if code, _ := e.adminGet("/api/diffs?limit=" + bad); code != 400 {
			t.Errorf("limit=%s: %d, want 400", bad, code)
		}
	}
	if code, _ := e.adminGet("/api/diffs?route=nope"); code != 404 {
		t.Errorf("unknown route: %d", code)
	}
	if got := e.diffs("?route=orders"); len(got) != 5 {
		t.Errorf("route=orders: %d samples", len(got))
	}
}

// BenchmarkShadowedRequest measures a request compared at 100 %: the
// client's cost includes reading the (empty) body and teeing the answer;
// the shadow call and comparison run in the pool.
func BenchmarkShadowedRequest(b *testing.B) {
	body := strings.Repeat(`{"k":"v"},`, 100)
	backend := answer(200, "["+body+`{"k":"v"}]`)
	e := newEnv(b, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 10), backend, backend)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", "u")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// Request bodies held for comparison count in shadow_memory from their
// first byte: a body read whole before the budget was asked, or read
// ahead past max_body (a chunked upload), stayed in memory, uncounted,
// for the whole primary call. Not parallel: it measures the live heap.
func TestShadowRequestBodiesAreBoundedByShadowMemory(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxBody  string
		n        int
		size     int64
		chunked  bool
		compared int // of n
	}{
		// Each charged its length (and a byte) while it is read and held:
		// three fit in 4 MiB, twelve do not.
		{"within shadow_memory", "16MiB", 3, 1 << 20, false, 3},
		{"past shadow_memory", "16MiB", 12, 8 << 20, false, 0},
		// Without a length, charged max_body while it is read ahead, and
		// what was read ahead of a body past it while the primary call
		// sends it.
		{"chunked, max_body past shadow_memory", "16MiB", 6, 24 << 20, true, 0},
		{"chunked, past max_body", "1MiB", 3, 4 << 20, true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			var arrived sync.WaitGroup
			arrived.Add(c.n)
			slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.Header.Get(shadowHeader) == "" {
					arrived.Done()
					<-release
				}
				io.WriteString(w, "ok")
			})
			e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      max_body: "+c.maxBody+"\n", "shadow_memory: 4MiB"), flagJSON("orders-percent", 0), slow, slow)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			var done sync.WaitGroup
			for i := range c.n {
				done.Add(1)
				go func() {
					defer done.Done()
					req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", io.LimitReader(zeros{}, c.size))
					if !c.chunked {
						req.ContentLength = c.size
					}
					req.Header.Set("X-User-Id", fmt.Sprint("u", i))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}()
			}
			arrived.Wait() // every primary call in flight, its body sent
			runtime.GC()
			var during runtime.MemStats
			runtime.ReadMemStats(&during)
			close(release)
			done.Wait()
			if held := int64(during.HeapAlloc) - int64(before.HeapAlloc); held > 24<<20 {
				t.Errorf("%d MiB of live heap with %d uploads of %d MiB in flight, shadow_memory 4 MiB", held>>20, c.n, c.size>>20)
			}
			got := e.comparisons(c.compared)
			overload := e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`)
			tooLarge := e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`)
			if int(got["match"]) != c.compared || int(max(overload, 0)+max(tooLarge, 0)) != c.n-c.compared {
				t.Errorf("comparisons %v, overload %v, too_large %v; want %d compared, the rest skipped", got, overload, tooLarge, c.compared)
			}
			eventually(t, 5*time.Second, "shadow_memory given back", func() bool { return e.srv.shadowMem.used.Load() == 0 })
		})
	}
}

// zeros is an endless body that holds no memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Request bodies are charged to shadow_memory as they arrive, not for
// what max_body allows: 64 clients trickling chunked uploads (a few bytes
// each, then nothing) hold a few KiB of it, and comparisons on every
// route go on.
func TestTricklingUploadsDoNotStarveComparisons(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [GET, POST]\n"),
		flagJSON("orders-percent", 0), answer(200, `{"a":1}`), answer(200, `{"a":1}`))
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	const n = 64
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u%d\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", i)
	}
	// Each is being read into its first array, of 512 bytes.
	eventually(t, 10*time.Second, "every upload charged its first array", func() bool {
		return e.srv.shadowMem.used.Load() == n*512
	})
	e.get("/api/orders/2", "X-User-Id", "reader")
	if got := e.comparisons(1); got["match"] != 1 {
		t.Errorf("a GET's comparison while %d uploads trickle: %v, want a match (overload %v)", n, got,
			e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`))
	}
}
