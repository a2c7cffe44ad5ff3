package proxy

import (
	"bufio"
	"context"
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

// Tests from a hand mutation test of the shadow pipeline (shadow.go): each
// pins behaviour the other tests left free, found by changing the code and
// seeing them all still pass.

// pinnedWait is how long these tests wait for what happens off the request
// path (a copy, a comparison, memory given back): far past anything the
// code waits for itself, so that a loaded machine does not fail them.
const pinnedWait = 20 * time.Second

// accountedAs waits until the orders route's sampled requests are counted
// exactly as want (by result and reason: nothing else counted), and fails
// the test if they are not.
func (e *env) accountedAs(t *testing.T, want map[string]float64) {
	t.Helper()
	eventually(t, pinnedWait, fmt.Sprintf("sampled requests counted as %v", want), func() bool {
		got := e.accounted(0)
		if len(got) != len(want) {
			return false
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
}

// memoryBack waits until every comparison has given back its
// shadow_memory: each pair holds the charge for its primary's head from
// before the client is answered until it is counted, so once it is all
// back, every sampled request so far is counted.
func (e *env) memoryBack(t *testing.T) {
	t.Helper()
	eventually(t, pinnedWait, "shadow_memory all given back", func() bool { return e.srv.shadowMem.used.Load() == 0 })
}

// A broken shadow flag (a value that is not a percentage) turns comparing
// off for the route and counts as a flag error, whatever shadow.percent
// says: an operator who set the flag to stop the copies (a service that
// must not get writes tonight) must not get them at the configured share
// because of a typo, and strangler_flag_errors_total is how the typo shows.
func TestPinnedShadowBrokenFlagTurnsComparingOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, variant string }{
		{"not a number", `"lots"`},
		{"out of range", `150`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":0},"defaultVariant":"on"},` +
				`"orders-shadow":{"state":"ENABLED","variants":{"on":` + tc.variant + `},"defaultVariant":"on"}}}`
			e := newEnvNoCheck(t, shadowConfig("      percent: 100\n"), flags)
			const n = 5
			for i := range n {
				if resp, _ := e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i)); resp.StatusCode != 200 {
					t.Fatalf("client got %d", resp.StatusCode)
				}
			}
			if v := e.waitMetric(`strangler_flag_errors_total{flag="orders-shadow"}`, n); v != n {
				t.Errorf("strangler_flag_errors_total{flag=orders-shadow} = %v, want %d", v, n)
			}
			e.memoryBack(t)
			if got := e.accounted(0); len(got) != 0 {
				t.Errorf("with a broken shadow flag and percent 100: counted %v, want nothing sampled", got)
			}
		})
	}
}

// Every kind of conditional request, not only If-None-Match, is skipped
// as "conditional" when one side answers "not modified" (304) or
// "precondition failed" (412) and the other 2xx: the validator came from
// one side, so such pairs would be a mismatch on every revalidation and
// drown the real ones. A 304 against an error is still a difference: the
// other side failed, and that must show. (TestShadowConditionalRequests
// covers If-None-Match against 200.)
func TestPinnedShadowConditionalSplits(t *testing.T) {
	t.Parallel()
	const date = "Mon, 01 Jan 2024 00:00:00 GMT"
	for _, tc := range []struct {
		name, header, value string
		mono, svc           int // the two sides' statuses
		want                string
	}{
		{"If-Modified-Since 304", "If-Modified-Since", date, 304, 200, "conditional"},
		{"If-Match 412", "If-Match", `"v1"`, 412, 200, "conditional"},
		{"If-Unmodified-Since 412", "If-Unmodified-Since", date, 412, 200, "conditional"},
		{"If-None-Match 304 against 404", "If-None-Match", `"v1"`, 304, 404, "mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"v1"`)
				w.WriteHeader(tc.mono)
			})
			e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), mono, answer(tc.svc, `{"id":7}`))
			if resp, _ := e.get("/api/orders/7", "X-User-Id", "u", tc.header, tc.value); resp.StatusCode != tc.mono {
				t.Fatalf("client got %d, want the monolith's %d", resp.StatusCode, tc.mono)
			}
			e.accountedAs(t, map[string]float64{tc.want: 1})
		})
	}
}

// An answer of exactly max_body bytes is compared; one byte more is
// skipped as too_large. The bound is the one the README gives ("larger
// ... bodies are not compared"), so a route whose answers are max_body
// long is compared.
func TestPinnedShadowAnswerAtMaxBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size int
		want string
	}{{64, "match"}, {65, "too_large"}} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			t.Parallel()
			body := `{"pad":"` + strings.Repeat("x", tc.size-10) + `"}`
			e := newEnv(t, shadowConfig("      percent: 100\n      max_body: 64\n"), flagJSON("orders-percent", 0), answer(200, body), answer(200, body))
			if _, got := e.get("/api/orders/7", "X-User-Id", "u"); got != body {
				t.Fatalf("client got %q", got)
			}
			e.accountedAs(t, map[string]float64{tc.want: 1})
		})
	}
}

// An answer whose Content-Length is past max_body holds none of
// shadow_memory for its body, from its first byte: it will not be
// compared, so a slow download on the route (the client's answer stalls
// well before max_body) must not hold up to max_body of the budget and
// turn the route's other comparisons into overload.
func TestPinnedShadowAnnouncedPastMaxBodyHoldsNothing(t *testing.T) {
	t.Parallel()
	const size, first = 3 << 20, 256 << 10
	big := strings.Repeat("x", size)
	release := make(chan struct{})
	open := sync.OnceFunc(func() { close(release) })
	defer open()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.WriteString(w, big[:first])
		http.NewResponseController(w).Flush()
		if r.Header.Get(shadowHeader) == "" { // the client's: a slow download
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, big[first:])
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      max_body: 1MiB\n      timeout: 30s\n"), flagJSON("orders-percent", 0), h, h)
	req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/big", nil)
	req.Header.Set("X-User-Id", "u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The proxy tees each piece of the answer before the client gets it:
	// what the comparison holds now is what it holds for those bytes.
	if _, err := io.ReadFull(resp.Body, make([]byte, first)); err != nil {
		t.Fatal(err)
	}
	if used := e.srv.shadowMem.used.Load(); used >= 64<<10 {
		t.Errorf("a download announced past max_body, %d KiB of it sent, holds %d KiB of shadow_memory; want only the heads", first>>10, used>>10)
	}
	open()
	if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != size-first {
		t.Fatalf("client read %d more bytes (%v), want %d", n, err, size-first)
	}
	e.accountedAs(t, map[string]float64{"too_large": 1})
	e.memoryBack(t)
}

// With noise on, the monolith's second copy is sent only when the first
// copy got an answer: with the service down (every copy reset) the
// comparison is an error whatever the second answer says, and sending it
// would double the monolith's load from comparisons exactly when the
// service is failing.
func TestPinnedShadowNoNoiseCopyAfterAFailedCopy(t *testing.T) {
	t.Parallel()
	var mono countingMonolith
	reset := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n"), flagJSON("orders-percent", 0), &mono, reset)
	const n = 3
	for i := range n {
		if resp, _ := e.get("/api/orders/7", "X-User-Id", fmt.Sprint("u", i)); resp.StatusCode != 200 {
			t.Fatalf("client got %d", resp.StatusCode)
		}
	}
	e.accountedAs(t, map[string]float64{"error": n})
	e.memoryBack(t)
	if got := mono.reads.Load(); got != n {
		t.Errorf("the monolith got %d GETs for %d client requests whose copies failed, want %d (no noise copy)", got, n, n)
	}
}

// pinnedPoolConfig is the orders route with a fallback (for the service's
// failures) and GET and POST shadowed, on a pool of one worker and a queue
// of one, so that a test can hold the worker and fill the queue.
const pinnedPoolConfig = `  - name: orders
    path: /api/orders/*
    methods: [GET, POST]
    service: {{service}}
    sticky: header:X-User-Id
    fallback: {on: [connect, reset, timeout]}
    shadow: {percent: 100, methods: [GET, POST], timeout: 30s}
`

// A write whose copy waited for the service's answer (the route has a
// fallback) and then finds the queue full is given up there and then:
// counted once, as overload, as soon as the service's answer begins (not
// sent later, should the queue free up while the answer streams), and its
// memory given back. A burst of writes under load must neither vanish
// from the counts (every sampled request is counted once) nor leak
// shadow_memory until no comparison fits.
func TestPinnedShadowPendingWriteRefusedByAFullQueue(t *testing.T) {
	t.Parallel()
	var held, copies atomic.Int32
	gate, release := make(chan struct{}), make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	openRelease := sync.OnceFunc(func() { close(release) })
	defer openRelease()
	defer openGate()
	hold := hangUntil(&held, release)
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/orders/hold"):
			hold.ServeHTTP(w, r)
			return
		case r.Method == http.MethodPost:
			copies.Add(1)
		}
		answer(200, `{}`).ServeHTTP(w, r)
	})
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost { // the head now, the body later
			w.WriteHeader(200)
			http.NewResponseController(w).Flush()
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, `{}`)
	})
	e := newEnv(t, configHead("shadow_workers: 1", "shadow_queue: 1")+pinnedPoolConfig, flagJSON("orders-percent", 100), mono, svc)
	e.get("/api/orders/hold1", "X-User-Id", "u") // its copy holds the worker
	eventually(t, pinnedWait, "first copy in the worker", func() bool { return held.Load() == 1 })
	e.get("/api/orders/hold2", "X-User-Id", "u") // its copy fills the queue
	eventually(t, pinnedWait, "second copy queued", func() bool { return len(e.srv.pool.jobs) == 1 })
	posted := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/new", strings.NewReader(`{"qty":1}`))
		req.Header.Set("X-User-Id", "u")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			posted <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		posted <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	// The service's head came, its body has not: the copy found the
	// queue full then.
	e.accountedAs(t, map[string]float64{"overload": 1})
	openRelease() // the queue frees up while the answer streams
	eventually(t, pinnedWait, "the pool idle", func() bool { return len(e.srv.pool.jobs) == 0 && held.Load() == 2 })
	e.accountedAs(t, map[string]float64{"overload": 1, "match": 2})
	openGate()
	if got := <-posted; got != "200 {}" {
		t.Fatalf("client got %s", got)
	}
	e.memoryBack(t)
	e.accountedAs(t, map[string]float64{"overload": 1, "match": 2})
	if n := copies.Load(); n != 0 {
		t.Errorf("the monolith got %d copies of a write counted as overload, want 0", n)
	}
}

// slowPrimaryBackends are a monolith that holds the primary of
// /api/orders/slow until openGate, and a service that notes that
// request's copy (slowCopied) and holds the copies of /api/orders/hold…
// until openRelease: with one shadow worker and a queue of one, the tests
// below fill the pool while a pair waits for its primary. Callers defer
// openRelease and openGate (before the servers' cleanups, which wait for
// the held calls).
type slowPrimaryBackends struct {
	held                  atomic.Int32
	slowCopied            atomic.Bool
	openGate, openRelease func()
	mono, svc             http.Handler
}

func newSlowPrimaryBackends() *slowPrimaryBackends {
	b := &slowPrimaryBackends{}
	gate, release := make(chan struct{}), make(chan struct{})
	b.openGate = sync.OnceFunc(func() { close(gate) })
	b.openRelease = sync.OnceFunc(func() { close(release) })
	hold := hangUntil(&b.held, release)
	b.mono = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/orders/slow" {
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
		answer(200, `{}`).ServeHTTP(w, r)
	})
	b.svc = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/orders/slow":
			b.slowCopied.Store(true)
		case strings.HasPrefix(r.URL.Path, "/api/orders/hold"):
			hold.ServeHTTP(w, r)
			return
		}
		answer(200, `{}`).ServeHTTP(w, r)
	})
	return b
}

// A pair whose copy answered first and whose primary then finds the queue
// full (the comparison must go through the queue) is counted once, as
// overload, and gives its memory back: a slow primary under load must not
// leave its request uncounted or its answers held.
func TestPinnedShadowComparisonRefusedByAFullQueue(t *testing.T) {
	t.Parallel()
	b := newSlowPrimaryBackends()
	defer b.openRelease()
	defer b.openGate()
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 30s\n", "shadow_workers: 1", "shadow_queue: 1"), flagJSON("orders-percent", 0), b.mono, b.svc)
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/slow", nil)
		req.Header.Set("X-User-Id", "u")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	eventually(t, pinnedWait, "the slow request's copy answered", b.slowCopied.Load)
	e.get("/api/orders/hold1", "X-User-Id", "u") // its copy holds the worker, once the slow one's is done
	eventually(t, pinnedWait, "next copy in the worker", func() bool { return b.held.Load() == 1 })
	e.get("/api/orders/hold2", "X-User-Id", "u") // its copy fills the queue
	eventually(t, pinnedWait, "last copy queued", func() bool { return len(e.srv.pool.jobs) == 1 })
	b.openGate()
	<-slowDone
	e.accountedAs(t, map[string]float64{"overload": 1})
	b.openRelease()
	e.accountedAs(t, map[string]float64{"overload": 1, "match": 2})
	e.memoryBack(t)
}

// A copy still queued when its primary call fails is never sent: the
// README promises "a copy not yet sent is not sent". For a write, sending
// it would do to the other side a write the client was told failed.
func TestPinnedShadowQueuedCopyOfAFailedPrimaryIsNotSent(t *testing.T) {
	t.Parallel()
	var held, resets, posts atomic.Int32
	release := make(chan struct{})
	open := sync.OnceFunc(func() { close(release) })
	defer open()
	hold := hangUntil(&held, release)
	reset := resetAfterReading(&resets)
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			reset.ServeHTTP(w, r)
			return
		}
		answer(200, `{}`).ServeHTTP(w, r)
	})
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		if r.URL.Path == "/api/orders/hold" {
			hold.ServeHTTP(w, r)
			return
		}
		answer(200, `{}`).ServeHTTP(w, r)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [GET, POST]\n      timeout: 30s\n", "shadow_workers: 1", "shadow_queue: 1"),
		flagJSON("orders-percent", 0), mono, svc)
	e.get("/api/orders/hold", "X-User-Id", "u") // its copy holds the worker
	eventually(t, pinnedWait, "first copy in the worker", func() bool { return held.Load() == 1 })
	if resp, _ := post(e, "/api/orders/new", `{"qty":1}`); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("client got %d, want 502 from the monolith's reset", resp.StatusCode)
	}
	e.accountedAs(t, map[string]float64{"primary_failed": 1})
	open()
	e.accountedAs(t, map[string]float64{"primary_failed": 1, "match": 1})
	e.memoryBack(t) // the write's pair too: the worker has taken it from the queue
	if n := posts.Load(); n != 0 {
		t.Errorf("the service got %d copies of a write whose primary call failed while the copy was queued, want 0", n)
	}
}

// At shutdown with its context already over, a pair whose copy was sent
// and answered and which waits in the queue for its comparison is
// compared, not dropped as "shutdown" ("a copy already sent is
// compared"), and a copy still in flight is abandoned and said so in the
// log: the counts an operator reads after a deploy must say what was
// compared, and the log why a sampled request is missing from them.
// Built by hand: Close with an ended context leaves the flag source and
// the in-flight copy's connection for the test to close.
func TestPinnedShadowShutdownComparesSentCopies(t *testing.T) {
	t.Parallel()
	b := newSlowPrimaryBackends()
	defer b.openRelease()
	defer b.openGate()
	h := serveByHand(t, httptestServer(t, b.mono), httptestServer(t, b.svc), "      percent: 100\n      timeout: 30s\n", "shadow_workers: 1", "shadow_queue: 1")
	srv := h.srv
	get := func(path string) {
		req, _ := http.NewRequest("GET", "http://"+h.addr+path, nil)
		req.Header.Set("X-User-Id", "u")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		get("/api/orders/slow")
	}()
	eventually(t, pinnedWait, "the slow request's copy answered", b.slowCopied.Load)
	get("/api/orders/hold") // its copy holds the worker, once the slow one's is done
	eventually(t, pinnedWait, "next copy in the worker", func() bool { return b.held.Load() == 1 })
	b.openGate()
	<-slowDone
	eventually(t, pinnedWait, "the slow request's pair queued for its comparison", func() bool { return len(srv.pool.jobs) == 1 })
	h.stopServing()
	ended, end := context.WithCancel(context.Background())
	end()
	srv.Close(ended)
	// The copy in flight ends, then what Close left behind is closed.
	b.openRelease()
	srv.pool.wg.Wait()
	srv.shadowTS.closeIdle()
	srv.flags.Close(context.Background())

	counted := h.sampledCounts()
	// The copy in flight may have been compared since (it was released
	// above): only the sent-and-queued pair's outcome is pinned.
	if counted["match"] < 1 || counted["shutdown"] != 0 {
		t.Errorf("counted %v; want the queued pair whose copy was sent compared (match), nothing skipped as shutdown", counted)
	}
	if log := h.logged.String(); !strings.Contains(log, "sampled requests not compared") ||
		!strings.Contains(log, "in_flight_abandoned=1") || !strings.Contains(log, "queued_not_sent=0") {
		t.Errorf("the log does not say that one copy in flight was abandoned:\n%s", log)
	}
}

// An interim answer (103 Early Hints) before the final one is not what is
// compared: on either side, the final status, headers and body are. A
// service that sends Early Hints (a CDN-fronted page does) would
// otherwise be a status mismatch on every request, its real headers lost.
func TestPinnedShadowEarlyHintsAreNotTheAnswer(t *testing.T) {
	t.Parallel()
	const doc = `{"id":7}`
	hinted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Version", "1")
		io.WriteString(w, doc)
	})
	plain := answer(200, doc, "X-Version", "1")
	for _, tc := range []struct {
		name      string
		mono, svc http.Handler
	}{
		{"on the copy's side", plain, hinted},
		{"on the primary's side", hinted, plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), tc.mono, tc.svc)
			if resp, body := e.get("/api/orders/7", "X-User-Id", "u"); resp.StatusCode != 200 || body != doc {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			e.accountedAs(t, map[string]float64{"match": 1})
		})
	}
}

// An answer without a Content-Length grows its array by doubling, but
// never past max_body, and when shadow_memory has no room for the doubled
// array it takes exactly what the answer needs; an answer that fills
// shadow_memory to the byte fits. So shadow_memory and max_body are the
// bounds the README gives: an answer within both is compared, and none
// holds more than max_body. (Written piece by piece into the capture, as
// the copy's call and the primary's tee do: a listener would merge or
// split the pieces at random.)
func TestPinnedShadowCaptureGrowthBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		max, budget int64
		writes      []int
		wantCap     int // the array holding the answer
	}{
		{"doubling stops at max_body", 1000, 1 << 20, []int{600, 300}, 1000},
		{"no room to double, room for the answer", 1 << 20, 1600, []int{600, 300}, 900},
		{"an answer filling shadow_memory exactly", 1 << 20, 600, []int{600}, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			budget := &memBudget{limit: tc.budget}
			c := &capture{max: tc.max, budget: budget}
			var want []byte
			for i, n := range tc.writes {
				piece := []byte(strings.Repeat(string(rune('a'+i)), n))
				want = append(want, piece...)
				if k, err := c.Write(piece); k != n || err != nil {
					t.Fatalf("write %d of %d bytes: %d, %v", i, n, k, err)
				}
			}
			if c.truncated || c.overBudget || string(c.body) != string(want) {
				t.Fatalf("truncated %v, over budget %v, %d bytes kept of %d: the answer is within max_body and shadow_memory", c.truncated, c.overBudget, len(c.body), len(want))
			}
			if cap(c.body) != tc.wantCap || budget.used.Load() != int64(cap(c.body)) {
				t.Errorf("held in an array of %d bytes, %d charged; want %d, all of it charged", cap(c.body), budget.used.Load(), tc.wantCap)
			}
			c.release()
			if used := budget.used.Load(); used != 0 {
				t.Errorf("%d bytes still charged after release", used)
			}
		})
	}
}

// A WebSocket upgrade on a compared route is a tunnel, not a request and
// answer to compare: no copy goes to the other side (a second handshake
// there would open a second session with the user's credentials) and
// nothing is counted.
func TestPinnedShadowWebSocketIsNotCopied(t *testing.T) {
	t.Parallel()
	var copies atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		copies.Add(1)
		answer(200, `{}`).ServeHTTP(w, r)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), wsUpstream(func(c net.Conn) { io.Copy(c, c) }), svc)
	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /api/orders/ws HTTP/1.1\r\nHost: ws\r\nX-User-Id: u\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(pinnedWait))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "ping")
	if got := make([]byte, 4); func() error { _, err := io.ReadFull(br, got); return err }() != nil || string(got) != "ping" {
		t.Fatalf("the tunnel echoed %q", got)
	}
	c.Close()
	e.memoryBack(t)
	if n := copies.Load(); n != 0 {
		t.Errorf("the service got %d copies of a WebSocket upgrade, want 0", n)
	}
	if got := e.accounted(0); len(got) != 0 {
		t.Errorf("a WebSocket tunnel was counted as a sampled request: %v", got)
	}
}

// On probation after an ejection, the one request let through to the
// service is still compared: its copy goes to the monolith, which is not
// resting. The probe decides whether the service gets its share back, so
// a wrong answer from it must show as a mismatch, not be skipped as
// "ejected" (only copies to a resting service are).
func TestPinnedShadowProbeOnProbationIsCompared(t *testing.T) {
	t.Parallel()
	var copies atomic.Int32
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(shadowHeader) != "" {
			copies.Add(1)
		}
		answer(200, `{"v":1}`).ServeHTTP(w, r)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 100), mono, answer(200, `{"v":2}`))
	ej := e.srv.table.Load().routes[0].eject
	ej.mu.Lock()
	ej.setProbation(true) // as when an ejection ends
	ej.recovering.Store(true)
	ej.mu.Unlock()
	if _, body := e.get("/api/orders/7", "X-User-Id", "u"); body != `{"v":2}` {
		t.Fatalf("client got %q, want the service's answer (the probe)", body)
	}
	e.accountedAs(t, map[string]float64{"mismatch": 1})
	if n := copies.Load(); n != 1 {
		t.Errorf("the monolith got %d copies of the probe, want 1", n)
	}
}

// With noise on, a second monolith answer that broke (the monolith cut it
// mid-body) says nothing about what varies, and must not cancel
// anything: the pair is compared with the noise learned so far. Used, the
// rest of the page after the cut would count as the monolith's own
// variation for that request, and a service whose page differs there
// would pass as a match. (An extra answer cut at max_body is covered by
// TestShadowComparedWhenExtraAnswerIsCut.)
func TestPinnedShadowBrokenNoiseCopyCancelsNothing(t *testing.T) {
	t.Parallel()
	const page = "<html><body>order 7: 3 items</body></html>"
	const wrong = "<html><body>order 7: 0 items</body></html>"
	// The monolith's second copy is marked, as every copy is; the client's
	// own request is not.
	mono := cutAfter(10, page, func(r *http.Request) bool { return r.Header.Get(shadowHeader) != "" })
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n"), flagJSON("orders-percent", 0),
		mono, answer(200, wrong, "Content-Type", "text/html"))
	if _, body := e.get("/api/orders/7", "X-User-Id", "u"); body != page {
		t.Fatalf("client got %q", body)
	}
	e.accountedAs(t, map[string]float64{"mismatch": 1})
}

// When shadow_memory has no room for one side's answer (here its head),
// the request is skipped as overload, whichever side it was, not as
// too_large: overload tells the operator to raise shadow_memory (or that
// the pool is swamped), too_large to raise max_body, and the two call for
// different fixes.
func TestPinnedShadowOneSideOverBudgetIsOverload(t *testing.T) {
	t.Parallel()
	big := answer(200, `{"ok":1}`, "X-Blob", strings.Repeat("b", 100<<10))
	small := answer(200, `{"ok":1}`)
	for _, tc := range []struct {
		name      string
		mono, svc http.Handler
	}{
		{"the primary's answer", big, small},
		{"the copy's answer", small, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig("      percent: 100\n", "shadow_memory: 64KiB"), flagJSON("orders-percent", 0), tc.mono, tc.svc)
			if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 200 {
				t.Fatalf("client got %d", resp.StatusCode)
			}
			e.accountedAs(t, map[string]float64{"overload": 1})
			e.memoryBack(t)
		})
	}
}

// With noise on, a request whose primary call failed while its copy was
// out gets no second copy to the monolith: it will not be compared
// (primary_failed), so that call would only load a monolith that may be
// the one failing.
func TestPinnedShadowNoNoiseCopyForAFailedPrimary(t *testing.T) {
	t.Parallel()
	var extras, resets, held atomic.Int32
	release := make(chan struct{})
	open := sync.OnceFunc(func() { close(release) })
	defer open()
	reset := resetAfterReading(&resets)
	// The primary fails only once the copy is at the service: failed
	// first, it would leave the copy unsent in the queue.
	copyOut := make(chan struct{})
	markOut := sync.OnceFunc(func() { close(copyOut) })
	hold := hangUntil(&held, release)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		markOut()
		hold.ServeHTTP(w, r)
	})
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(shadowHeader) == "" {
			select {
			case <-copyOut:
			case <-r.Context().Done():
				return
			}
			reset.ServeHTTP(w, r) // the client's call fails
			return
		}
		extras.Add(1)
		answer(200, `{}`).ServeHTTP(w, r)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n      timeout: 30s\n"), flagJSON("orders-percent", 0), mono, svc)
	if resp, _ := e.get("/api/orders/7", "X-User-Id", "u"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("client got %d, want 502 from the monolith's reset", resp.StatusCode)
	}
	e.accountedAs(t, map[string]float64{"primary_failed": 1})
	open() // the copy answers after its primary failed
	e.memoryBack(t)
	if n := extras.Load(); n != 0 {
		t.Errorf("the monolith got %d noise copies for a request whose primary call failed, want 0", n)
	}
}

// A copy is held back until the service has answered only where a
// fallback could replay the request to the monolith, and only for a write
// (README: "A write is not sent twice to the monolith"): elsewhere it goes
// at once, as every copy does, so that the two answers are of the same
// moment and a slow service does not age its copies past shadow.timeout.
// Here the service answers only once the monolith has the copy.
func TestPinnedShadowCopyWaitsOnlyForAReplayableWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, fallback, method string }{
		{"a write on a route without fallback", "{on: []}", http.MethodPost},
		{"a read on a route with fallback", "{on: [connect, reset, timeout]}", http.MethodGet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			copied := make(chan struct{})
			markCopied := sync.OnceFunc(func() { close(copied) })
			mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get(shadowHeader) != "" {
					markCopied()
				}
				answer(200, `{}`).ServeHTTP(w, r)
			})
			var first atomic.Bool // the copy reached the monolith before the service answered
			svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-copied:
					first.Store(true)
				case <-time.After(pinnedWait): // the copy waits for this answer: answer anyway
				case <-r.Context().Done():
				}
				answer(200, `{}`).ServeHTTP(w, r)
			})
			cfg := configHead() + `  - name: orders
    path: /api/orders/*
    methods: [GET, POST]
    service: {{service}}
    sticky: header:X-User-Id
    fallback: ` + tc.fallback + `
    shadow: {percent: 100, methods: [GET, POST], timeout: 30s}
`
			e := newEnv(t, cfg, flagJSON("orders-percent", 100), mono, svc)
			var rd io.Reader
			if tc.method == http.MethodPost {
				rd = strings.NewReader(`{"qty":1}`)
			}
			req, _ := http.NewRequest(tc.method, e.proxyURL+"/api/orders/1", rd)
			req.Header.Set("X-User-Id", "u")
			if resp, body := e.do(req); resp.StatusCode != 200 || body != `{}` {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			if !first.Load() {
				t.Errorf("the monolith's copy of a %s waited for the service's answer", tc.method)
			}
			e.accountedAs(t, map[string]float64{"match": 1})
		})
	}
}

// A comparison that decodes compressed answers holds one of the decoding
// turns while it does: their scratch buffers (up to four of max_decoded
// each) are outside shadow_memory, and the turns are what keeps them
// within twice shadow_memory whatever the workers and the answers (a gzip
// bomb on every answer). TestDecodingComparisonsTakeTurns counts the
// turns; this sees one taken.
func TestPinnedShadowDecodingHoldsATurn(t *testing.T) {
	// Not parallel: it replaces a package variable, which only this test's
	// comparisons call while it runs.
	// The hook is set before the proxy starts its workers, and learns the
	// proxy through an atomic: the request reaches a worker over a socket,
	// which orders nothing for the race detector.
	saved := beforeHeavyCompare
	t.Cleanup(func() { beforeHeavyCompare = saved }) // after the proxy's own cleanup
	var calls, held atomic.Int32
	var srv atomic.Pointer[Server]
	beforeHeavyCompare = func() {
		calls.Add(1)
		if s := srv.Load(); s != nil {
			held.Store(int32(len(s.pool.decoding)))
		}
	}
	doc := gzipLevel(bigJSON(4<<10), 6)
	side := answer(200, string(doc), "Content-Encoding", "gzip")
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), side, side)
	srv.Store(e.srv)
	if resp, _ := e.get("/api/orders/7", "X-User-Id", "u", "Accept-Encoding", "gzip"); resp.StatusCode != 200 {
		t.Fatalf("client got %d", resp.StatusCode)
	}
	e.accountedAs(t, map[string]float64{"match": 1})
	if calls.Load() != 1 || held.Load() != 1 {
		t.Errorf("a comparison of two gzipped answers began with %d decoding turns held (%d heavy comparisons), want 1", held.Load(), calls.Load())
	}
}
