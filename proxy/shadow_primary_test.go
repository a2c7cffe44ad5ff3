package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shadowOutcomes are every value a sampled request of the orders route is
// counted under: a comparison result or a reason it was skipped.
var shadowOutcomes = []struct{ name, series string }{
	{"match", `strangler_comparisons_total{result="match",route="orders"}`},
	{"mismatch", `strangler_comparisons_total{result="mismatch",route="orders"}`},
	{"error", `strangler_comparisons_total{result="error",route="orders"}`},
	{"method", `strangler_shadow_skipped_total{reason="method",route="orders"}`},
	{"too_large", `strangler_shadow_skipped_total{reason="too_large",route="orders"}`},
	{"overload", `strangler_shadow_skipped_total{reason="overload",route="orders"}`},
	{"ejected", `strangler_shadow_skipped_total{reason="ejected",route="orders"}`},
	{"primary_failed", `strangler_shadow_skipped_total{reason="primary_failed",route="orders"}`},
	{"conditional", `strangler_shadow_skipped_total{reason="conditional",route="orders"}`},
}

// A revalidation carries the validator of the side that served it first;
// the other side's ETag differs, so it answers 200 where the first says
// 304. That is not a divergence a client sees: skipped, as "conditional".
// Both sides "not modified", or a 304 to a request without conditions,
// are compared as usual.
func TestShadowConditionalRequests(t *testing.T) {
	t.Parallel()
	side := func(etag string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag || r.Header.Get("X-Always-304") != "" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":7}`)
		})
	}
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"the primary's validator", []string{"If-None-Match", `"mono"`}, "conditional"},
		{"the other side's validator", []string{"If-None-Match", `"svc"`}, "conditional"},
		{"neither's", []string{"If-None-Match", `"old"`}, "match"},
		{"both not modified", []string{"If-None-Match", `"x"`, "X-Always-304", "1"}, "match"},
		{"a 304 without conditions", []string{"X-Only-Mono", "1"}, "mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mono := side(`"mono"`)
			if tc.name == "a 304 without conditions" {
				mono = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
			}
			e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), mono, side(`"svc"`))
			req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/7", nil)
			req.Header.Set("X-User-Id", "u")
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := e.accounted(1); len(got) != 1 || got[tc.want] != 1 {
				t.Errorf("counted %v, want %s 1", got, tc.want)
			}
		})
	}
}

// accounted polls until n sampled requests are counted, compared or
// skipped, and returns the counts by result and reason. Each sampled
// request must be counted exactly once: callers compare the whole map.
func (e *env) accounted(n int) map[string]float64 {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, total := map[string]float64{}, 0.0
		for _, o := range shadowOutcomes {
			if v := e.metric(o.series); v > 0 {
				got[o.name] = v
				total += v
			}
		}
		if total >= float64(n) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled waits until every comparison in flight has given back its
// shadow_memory: nothing is sent or compared after that.
func (e *env) settled() {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.shadowMem.used.Load() != 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("comparisons still hold %d bytes of shadow_memory", e.srv.shadowMem.used.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cutAfter is a backend that sends the head and the first n bytes of body,
// then closes the connection: an answer cut mid-body. cut decides per
// request; the others get the whole body.
func cutAfter(n int, body string, cut func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if !cut(r) {
			io.WriteString(w, body)
			return
		}
		io.WriteString(w, body[:n])
		rc := http.NewResponseController(w)
		rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
	})
}

// countingMonolith answers {"ok":true} and counts what it got: POSTs
// (writes, and of them copies marked X-Strangler-Shadow) and the rest.
type countingMonolith struct{ writes, copies, reads atomic.Int32 }

func (m *countingMonolith) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	switch {
	case r.Method != http.MethodPost:
		m.reads.Add(1)
	case r.Header.Get(shadowHeader) != "":
		m.writes.Add(1)
		m.copies.Add(1)
	default:
		m.writes.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

func TestShadowCutPrimaryIsNotCompared(t *testing.T) {
	t.Parallel()
	const page = "<html><body>order 7: 3 items</body></html>"
	for _, method := range []string{"GET", "POST"} { // the direct path and ReverseProxy
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			primary := cutAfter(10, page, func(r *http.Request) bool { return r.Header.Get(shadowHeader) == "" })
			e := newEnv(t, shadowConfig("      percent: 100\n      methods: [GET, POST]\n"), flagJSON("orders-percent", 0),
				primary, answer(200, page, "Content-Type", "text/html"))
			req, _ := http.NewRequest(method, e.proxyURL+"/api/orders/7", strings.NewReader("{}"))
			req.Header.Set("X-User-Id", "u")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatalf("setup: the client got a whole answer: %q", b)
				}
			}
			// Half an answer is not the monolith's answer: comparing it
			// would blame the service for a mismatch it did not make.
			if got := e.accounted(1); len(got) != 1 || got["primary_failed"] != 1 {
				t.Errorf("a cut primary answer: counted %v, want primary_failed 1", got)
			}
			if d := e.diffs(""); len(d) != 0 {
				t.Errorf("a cut primary answer left %d mismatch samples", len(d))
			}
		})
	}
}

// With noise on, a cut monolith answer must not be learned from: it
// would make the whole body noise and hide every later body difference.
func TestShadowCutPrimaryTeachesNoNoise(t *testing.T) {
	t.Parallel()
	const page = "<html><body>order 7: 3 items</body></html>"
	var clientCalls atomic.Int32
	mono := cutAfter(10, page, func(r *http.Request) bool {
		return r.Header.Get(shadowHeader) == "" && clientCalls.Add(1) == 1
	})
	svc := answer(200, "<html><body>order 7: 0 items</body></html>", "Content-Type", "text/html")
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n"), flagJSON("orders-percent", 0), mono, svc)
	req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/7", nil)
	req.Header.Set("X-User-Id", "u")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	e.accounted(1)
	for range 3 {
		e.get("/api/orders/7", "X-User-Id", "u")
	}
	if got := e.accounted(4); got["primary_failed"] != 1 || got["mismatch"] != 3 {
		_, routes := e.adminGet("/api/routes")
		t.Errorf("after a cut answer, three real differences: counted %v, want primary_failed 1 and mismatch 3; routes: %s",
			got, strings.Join(strings.Fields(routes), " "))
	}
}

// A proxy-made 502 is not the primary's answer either.
func TestShadowFailedPrimaryIsNotCompared(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fallbackConfig(deadURL(t), "    fallback: {on: []}\n    shadow: {percent: 100}\n"),
		flagJSON("orders-percent", 100), answer(200, `{}`), nil)
	if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 from the dead service", resp.StatusCode)
	}
	if got := e.accounted(1); len(got) != 1 || got["primary_failed"] != 1 {
		t.Errorf("a failed primary call: counted %v, want primary_failed 1", got)
	}
}

func TestShadowFallbackIsCountedAndSendsNoWriteCopy(t *testing.T) {
	t.Parallel()
	var mono countingMonolith
	extra := "    methods: [GET, POST]\n    shadow: {percent: 100, methods: [GET, POST]}\n"
	e := newEnv(t, fallbackConfig(deadURL(t), extra), flagJSON("orders-percent", 100), &mono, nil)
	for i, method := range []string{"GET", "POST", "POST"} {
		req, _ := http.NewRequest(method, e.proxyURL+"/api/orders/new", strings.NewReader(`{"qty":1}`))
		req.Header.Set("X-User-Id", "u")
		if resp, body := e.do(req); resp.StatusCode != 200 {
			t.Fatalf("%s: client got %d %q, want the monolith's answer", method, resp.StatusCode, body)
		}
		// The client got the monolith's answer: there is nothing to
		// compare the monolith's copy with.
		if got := e.accounted(i + 1); len(got) != 1 || got["primary_failed"] != float64(i+1) {
			t.Errorf("after %d fallbacks: counted %v, want primary_failed %d", i+1, got, i+1)
		}
	}
	e.settled()
	// The service was chosen, so the copy would go to the monolith; the
	// fallback sent it the write too. One client write, one write.
	if n, c := mono.writes.Load(), mono.copies.Load(); n != 2 || c != 0 {
		t.Errorf("two client POSTs reached the monolith %d times, %d of them as shadow copies; want 2 and 0", n, c)
	}
}

// A write the service answers is still compared: the copy goes once the
// answer has begun.
func TestShadowWriteCopyFollowsTheServiceAnswer(t *testing.T) {
	t.Parallel()
	var answered atomic.Bool
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		answered.Store(true)
		io.WriteString(w, `{"created":true}`)
	})
	var early atomic.Bool
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get(shadowHeader) != "" && !answered.Load() {
			early.Store(true)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"created":true}`)
	})
	extra := "    methods: [POST]\n    shadow: {percent: 100, methods: [POST]}\n"
	e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), mono, svc)
	for range 5 {
		if resp, _ := post(e, "/api/orders/new", `{"qty":1}`); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if got := e.accounted(5); len(got) != 1 || got["match"] != 5 {
		t.Errorf("five writes the service answered: counted %v, want match 5", got)
	}
	if early.Load() {
		t.Error("a write's copy reached the monolith before the service answered")
	}
}

func TestShadowSamplingKeepsTheFallbackReplay(t *testing.T) {
	t.Parallel()
	// 4 KiB, over the shadow's max_body and under the fallback's: the
	// shadow reads the body first, and the fallback must still be able to
	// replay it whole.
	body := `{"pad":"` + strings.Repeat("x", 4096) + `"}`
	for _, percent := range []int{0, 100} {
		t.Run(fmt.Sprint("shadow ", percent), func(t *testing.T) {
			t.Parallel()
			var mono, svc atomic.Int32
			extra := fmt.Sprintf(`    methods: [POST]
    fallback: {on: [connect, reset, timeout], methods: [POST], max_body: 64KiB}
    shadow: {percent: %d, methods: [POST], max_body: 1KiB}
`, percent)
			e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), bodyEcho(&mono), resetAfterReading(&svc))
			// No Content-Length: chunked, as a streaming client sends it.
			req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", io.MultiReader(strings.NewReader(body)))
			req.Header.Set("X-User-Id", "u")
			resp, got := e.do(req)
			if resp.StatusCode != 200 || got != fmt.Sprintf("monolith got POST %q", body) {
				t.Errorf("client got %d %.60q; want the monolith's answer to the whole body", resp.StatusCode, got)
			}
		})
	}
}

func TestShadowRequestBodiesAreBudgeted(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	const (
		n        = 20
		bodySize = 256 << 10
		budget   = 1 << 20
	)
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      timeout: 10s\n",
		"shadow_workers: 1", "shadow_queue: 64", "shadow_memory: 1MiB"),
		flagJSON("orders-percent", 0), answer(200, `{}`), slow)
	defer close(release)
	body := strings.Repeat("x", bodySize)
	for i := range n {
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(body))
		req.Header.Set("X-User-Id", fmt.Sprint("u", i))
		if resp, _ := e.do(req); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if used := e.srv.shadowMem.used.Load(); used > budget {
			t.Fatalf("comparisons in flight hold %d bytes, over shadow_memory (%d)", used, budget)
		}
	}
	// At most four bodies fit the budget (fewer with the answers held):
	// the rest were refused.
	if got := e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`); got < n-budget/bodySize {
		t.Errorf("overload skips %v, want at least %d", got, n-budget/bodySize)
	}
}

// Trailers reach the client, but the primary's headers are a snapshot
// taken when its answer began; the shadow's must not gain the trailers.
func TestShadowTrailersAreNotCompared(t *testing.T) {
	t.Parallel()
	same := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, `{"a":1}`)
		w.Header().Set("X-Checksum", "abc")
	})
	for _, method := range []string{"GET", "POST"} { // the direct path and ReverseProxy
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig("      percent: 100\n      methods: [GET, POST]\n"), flagJSON("orders-percent", 0), same, same)
			req, _ := http.NewRequest(method, e.proxyURL+"/api/orders/1", strings.NewReader(`{"q":1}`))
			req.Header.Set("X-User-Id", "u")
			resp, got := e.do(req)
			if resp.StatusCode != 200 || got != `{"a":1}` || resp.Trailer.Get("X-Checksum") != "abc" {
				t.Fatalf("client got %d %q, trailer %q", resp.StatusCode, got, resp.Trailer.Get("X-Checksum"))
			}
			if got := e.accounted(1); len(got) != 1 || got["match"] != 1 {
				t.Errorf("identical answers with a trailer: counted %v, want match 1; diffs %+v", got, e.diffs(""))
			}
		})
	}
}

// A copy dropped for waiting too long is counted once, even when the queue
// is full again as its primary answer completes.
func TestShadowLateDropCountedOnce(t *testing.T) {
	t.Parallel()
	gateX, gateY, gateB := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once [3]sync.Once
	open := func(i int, c chan struct{}) { once[i].Do(func() { close(c) }) }
	defer open(0, gateX)
	defer open(1, gateY)
	defer open(2, gateB)
	var xStarted, yStarted atomic.Bool
	wait := func(r *http.Request, c chan struct{}) {
		select {
		case <-c:
		case <-r.Context().Done():
		}
	}
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/orders/slow" && r.Header.Get(shadowHeader) == "" {
			wait(r, gateB)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	})
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/other/1":
			xStarted.Store(true)
			wait(r, gateX)
		case "/api/other/2":
			yStarted.Store(true)
			wait(r, gateY)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	})
	cfg := `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
shadow_workers: 1
shadow_queue: 1
routes:
  - name: orders
    path: /api/orders/*
    service: {{service}}
    sticky: header:X-User-Id
    shadow: {percent: 100, timeout: 300ms}
  - name: other
    path: /api/other/*
    service: {{service}}
    sticky: header:X-User-Id
    shadow: {percent: 100, timeout: 10s}
`
	e := newEnv(t, cfg, flagJSON("orders-percent", 0, "other-percent", 0), mono, svc)
	// X's copy holds the only worker.
	e.get("/api/other/1", "X-User-Id", "u")
	eventually(t, 3*time.Second, "X's copy in the worker", xStarted.Load)
	// B's copy waits in the queue while its primary answer is held.
	bDone := make(chan struct{})
	go func() {
		defer close(bDone)
		e.get("/api/orders/slow", "X-User-Id", "u")
	}()
	eventually(t, 3*time.Second, "B's copy queued", func() bool { return len(e.srv.pool.jobs) == 1 })
	time.Sleep(400 * time.Millisecond) // B's copy is now older than its timeout
	open(0, gateX)
	eventually(t, 3*time.Second, "B's late copy dropped", func() bool {
		return e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`) == 1
	})
	// Fill the pool again: Y in the worker, Z in the queue.
	e.get("/api/other/2", "X-User-Id", "u")
	eventually(t, 3*time.Second, "Y's copy in the worker", yStarted.Load)
	e.get("/api/other/3", "X-User-Id", "u")
	// B's primary answer completes; finish counts before the client is answered.
	open(2, gateB)
	<-bDone
	if got := e.accounted(1); len(got) != 1 || got["overload"] != 1 {
		t.Errorf("one late copy: counted %v, want overload 1", got)
	}
	open(1, gateY)
}

// Noise cancellation sends the monolith a second copy, but not of a
// write: with the monolith primary it would do every write twice.
func TestNoiseSendsNoSecondWrite(t *testing.T) {
	t.Parallel()
	var mono countingMonolith
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n      methods: [GET, POST]\n"),
		flagJSON("orders-percent", 0), &mono, answer(200, `{"ok":true}`))
	if resp, _ := post(e, "/api/orders/new", `{"qty":1}`); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.get("/api/orders/7", "X-User-Id", "u")
	if got := e.accounted(2); len(got) != 1 || got["match"] != 2 {
		t.Errorf("counted %v, want match 2", got)
	}
	e.settled()
	if w, r := mono.writes.Load(), mono.reads.Load(); w != 1 || r != 2 {
		t.Errorf("the monolith got %d writes and %d reads, want 1 (the client's) and 2 (the client's and noise's copy)", w, r)
	}
}

// A write's copy waits for the service's answer before it is queued; its
// age for shadow.timeout counts from then, or a service slower than the
// timeout would have every write dropped unsent.
func TestShadowWriteCopyAgedFromTheServiceAnswer(t *testing.T) {
	t.Parallel()
	slowSvc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(400 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"saved":true}`)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      timeout: 200ms\n"),
		flagJSON("orders-percent", 100), answer(200, `{"saved":true}`), slowSvc)
	if resp, body := post(e, "/api/orders/1", `{"qty":3}`); resp.StatusCode != 200 || body != `{"saved":true}` {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if got := e.accounted(1); len(got) != 1 || got["match"] != 1 {
		t.Errorf("a write to a service slower than shadow.timeout: counted %v, want match 1", got)
	}
}

// A body the client stops sending is not too large: the copy is skipped as
// primary_failed, since the primary call fails with it.
func TestShadowStalledBodyIsNotTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n", "limits: {stall_timeout: 300ms}"),
		flagJSON("orders-percent", 0), answer(200, `{}`), answer(200, `{}`))
	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("s", 100))
	if got := e.accounted(1); len(got) != 1 || got["primary_failed"] != 1 {
		t.Errorf("a stalled body: counted %v, want primary_failed 1", got)
	}
}
