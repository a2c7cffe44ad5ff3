package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/flags"
)

// hangUntil is a backend that counts its calls and holds every one until
// release is closed or the caller goes away.
func hangUntil(started *atomic.Int32, release chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	})
}

// shadow_memory must bound the memory comparisons hold. A request body is
// held in the bytes.Buffer array bufferBody read it into, whose capacity
// is up to twice its length (bytes.Buffer.ReadFrom doubles the array once
// more before it sees EOF): it is charged by that capacity, as answers
// are (capture.grow). It was charged len(body).
func TestShadowRequestBodyChargedByCapacity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"content-length 256KiB", 256 << 10, false},
		{"chunked 100KiB", 100 << 10, true},
		{"chunked 64KiB+100", 64<<10 + 100, true},
		{"chunked 520KiB", 520 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var started atomic.Int32
			release := make(chan struct{})
			defer close(release)
			e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      timeout: 10s\n      max_body: 1MiB\n",
				"shadow_workers: 1", "shadow_queue: 4", "shadow_memory: 8MiB"),
				flagJSON("orders-percent", 0), answer(200, `{}`), hangUntil(&started, release))
			// The first copy holds the only worker.
			post(e, "/api/orders/1", `{}`)
			eventually(t, 5*time.Second, "first copy in the worker", func() bool { return started.Load() == 1 })
			body := strings.Repeat("x", tc.size)
			var rd io.Reader = strings.NewReader(body)
			if tc.chunked {
				rd = io.MultiReader(rd) // no Content-Length: sent chunked
			}
			req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/2", rd)
			req.Header.Set("X-User-Id", "u2")
			if resp, _ := e.do(req); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			eventually(t, 5*time.Second, "second copy queued", func() bool { return len(e.srv.pool.jobs) == 1 })
			p := <-e.srv.pool.jobs // look at the queued pair, then put it back
			held, charged := cap(p.body), p.bodyHeld
			e.srv.pool.jobs <- p
			if len(p.body) != tc.size {
				t.Fatalf("setup: body of %d bytes, want %d", len(p.body), tc.size)
			}
			if int64(held) > charged {
				t.Errorf("a %d-byte request body is held in a %d-byte array but charged %d bytes to shadow_memory (%.2fx)",
					tc.size, held, charged, float64(held)/float64(charged))
			}
		})
	}
}

// A shadowed write whose primary is the service, answered 5xx and
// replayed to the monolith (fallback on 5xx): the monolith gets the
// client's write once, never a copy, and the request counts once as
// primary_failed. Both the ReverseProxy path (a body) and the direct path
// (an empty POST) are covered; only the connect case is tested elsewhere.
func TestShadow5xxReplaySendsNoWriteCopy(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"qty":1}`, ""} {
		t.Run(fmt.Sprintf("body %q", body), func(t *testing.T) {
			t.Parallel()
			var mono countingMonolith
			extra := "    fallback: {on: [connect, reset, timeout, 5xx], methods: [GET, POST]}\n    methods: [GET, POST]\n    shadow: {percent: 100, methods: [GET, POST]}\n"
			e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), &mono, answer(503, `{"down":true}`))
			for i := range 3 {
				resp, got := post(e, "/api/orders/new", body)
				if resp.StatusCode != 200 || got != `{"ok":true}` {
					t.Fatalf("client got %d %q, want the monolith's answer", resp.StatusCode, got)
				}
				if got := e.accounted(i + 1); len(got) != 1 || got["primary_failed"] != float64(i+1) {
					t.Errorf("after %d replays: counted %v, want primary_failed %d", i+1, got, i+1)
				}
			}
			e.settled()
			if n, c := mono.writes.Load(), mono.copies.Load(); n != 3 || c != 0 {
				t.Errorf("three client writes reached the monolith %d times, %d as copies; want 3 and 0", n, c)
			}
		})
	}
}

// A write whose primary is the service, answered and then cut mid-body
// by the client going away: counted once, memory given back, and when the
// copy had not started yet it is not sent.
func TestShadowClientGoneMidAnswer(t *testing.T) {
	t.Parallel()
	var mono countingMonolith
	flushed := make(chan struct{})
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":`)
		http.NewResponseController(w).Flush()
		close(flushed)
		<-r.Context().Done() // the proxy gave up: the client went away
	})
	extra := "    methods: [POST]\n    shadow: {percent: 100, methods: [POST]}\n"
	e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), &mono, svc)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", e.proxyURL+"/api/orders/1", strings.NewReader(`{"qty":1}`))
	req.Header.Set("X-User-Id", "u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-flushed
	cancel()
	resp.Body.Close()
	if got := e.accounted(1); len(got) != 1 || (got["primary_failed"] != 1) {
		t.Errorf("a cut write: counted %v, want primary_failed 1", got)
	}
	e.settled()
}

// handServer is a proxy built by hand rather than with newEnv, whose
// cleanup calls Close again (a second Close panics on the closed done
// channel): for tests of Close itself.
type handServer struct {
	srv    *Server
	addr   string // the proxy listener's
	logged *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// serveByHand starts a proxy of the orders route with shadowConfig's
// shadow block and top-level lines, the route's flag at 0 %.
func serveByHand(t *testing.T, mono, svc, shadow string, top ...string) *handServer {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir+"/flags.json", flagJSON("orders-percent", 0))
	writeFile(t, dir+"/strangler.yaml", strings.NewReplacer("{{monolith}}", mono, "{{service}}", svc).Replace(shadowConfig(shadow, top...)))
	cfg, err := LoadConfig(dir + "/strangler.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &handServer{logged: new(lockedBuffer), cancel: cancel, done: make(chan error, 1)}
	h.srv, err = New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(h.logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, admin := listen(t), listen(t)
	h.addr = ln.Addr().String()
	go func() { h.done <- h.srv.Serve(ctx, ln, admin) }()
	return h
}

// stopServing ends Serve, as SIGTERM does, and waits for it to return.
func (h *handServer) stopServing() {
	h.cancel()
	<-h.done
}

// sampledCounts are the route's sampled requests as counted so far, by
// comparison result and skip reason.
func (h *handServer) sampledCounts() map[string]float64 {
	counted := map[string]float64{}
	mfs, _ := h.srv.Registry().Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "strangler_comparisons_total", "strangler_shadow_skipped_total":
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if v := m.GetCounter().GetValue(); (l.GetName() == "result" || l.GetName() == "reason") && v > 0 {
						counted[l.GetValue()] += v
					}
				}
			}
		}
	}
	return counted
}

// Server shutdown with copies queued: the workers end, every sampled
// request is counted once, and shadow_memory is all given back (queued
// copies were left uncounted, holding their memory). The copies not sent
// count as reason shutdown, not overload (which pages for a full queue),
// and the log says how many there were (a review found them dropped
// without a word). Built by hand rather than with newEnv, whose
// cleanup calls Close again (a second Close panics on the closed done
// channel).
func TestShadowShutdownWithQueuedCopies(t *testing.T) {
	t.Parallel()
	var started atomic.Int32
	release := make(chan struct{})
	defer close(release)
	mono := httptestServer(t, answer(200, `{}`))
	svc := httptestServer(t, hangUntil(&started, release))
	h := serveByHand(t, mono, svc, "      percent: 100\n      timeout: 2s\n", "shadow_workers: 1", "shadow_queue: 4", "shutdown_timeout: 1s")
	srv := h.srv
	const n = 3
	for i := range n {
		req, _ := http.NewRequest("GET", "http://"+h.addr+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", fmt.Sprint("u", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	eventually(t, 5*time.Second, "one copy in the worker, the rest queued", func() bool {
		return started.Load() == 1 && len(srv.pool.jobs) == n-1
	})
	h.stopServing()
	t0 := time.Now()
	srv.Close(context.Background())
	closeTook := time.Since(t0)
	byReason, counted := h.sampledCounts(), 0.0
	for _, v := range byReason {
		counted += v
	}
	if byReason["shutdown"] != n-1 || byReason["overload"] != 0 {
		t.Errorf("counted by result and reason: %v; want shutdown %d, overload 0", byReason, n-1)
	}
	if log := h.logged.String(); !strings.Contains(log, "sampled requests not compared") || !strings.Contains(log, fmt.Sprint("queued_not_sent=", n-1)) {
		t.Errorf("the log does not say how many copies were not sent:\n%s", log)
	}
	t.Logf("Close took %v; %d sampled, %v counted; %d bytes of shadow_memory still held; %d pairs left in the queue",
		closeTook, n, counted, srv.shadowMem.used.Load(), len(srv.pool.jobs))
	if counted != n {
		t.Errorf("shutdown with %d copies queued: %v of %d sampled requests counted (compared or skipped)", n-1, counted, n)
	}
	if used := srv.shadowMem.used.Load(); used != 0 || len(srv.pool.jobs) != 0 {
		t.Errorf("after Close: %d bytes of shadow_memory held, %d pairs queued", used, len(srv.pool.jobs))
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// A reload that removes the route while its copies are queued: the copies
// still run on the table they started with, and their memory comes back.
func TestShadowReloadWithQueuedCopies(t *testing.T) {
	t.Parallel()
	var started atomic.Int32
	release := make(chan struct{})
	var once atomic.Bool
	open := func() {
		if once.CompareAndSwap(false, true) {
			close(release)
		}
	}
	defer open()
	e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 10s\n", "shadow_workers: 1", "shadow_queue: 4"),
		flagJSON("orders-percent", 0), answer(200, `{"a":1}`), hangUntil(&started, release))
	for i := range 3 {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i))
	}
	eventually(t, 5*time.Second, "copies queued", func() bool { return started.Load() == 1 && len(e.srv.pool.jobs) == 2 })
	cfg := strings.Replace(shadowConfig("      percent: 100\n      timeout: 10s\n", "shadow_workers: 1", "shadow_queue: 4"),
		"name: orders", "name: renamed", 1)
	cfg = strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(cfg)
	writeFile(t, e.dir+"/strangler.yaml", cfg)
	if err := e.srv.ReloadFile(e.dir + "/strangler.yaml"); err != nil {
		t.Fatal(err)
	}
	open()
	eventually(t, 5*time.Second, "all three copies sent", func() bool { return started.Load() == 3 })
	e.settled()
}

// A shadow call that panics (a bug, not an aborted answer) still does its
// half of the pair: the request is counted once, as a comparison error,
// and its memory comes back. The worker recovered the panic but left the
// pair half done: never counted, holding its share of shadow_memory. In
// either order of the halves: when the client's comes first, the
// worker's recovery is the second half and must hand the pair to the
// comparison itself. A panic cannot be caused from outside: the test runs
// the pair instead of a worker.
func TestShadowCallPanicStillCounted(t *testing.T) {
	t.Parallel()
	for _, primaryFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("primary first ", primaryFirst), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n"), flagJSON("orders-percent", 100), nil, nil)
			rt := e.srv.table.Load().routes[0]
			r := httptest.NewRequest("POST", "/api/orders/1", nil)
			// A write whose primary is the service waits for its answer
			// before it is queued, so no worker takes it.
			p := e.srv.startShadow(rt, r, "u", flags.Attrs{}, true, time.Now())
			if p == nil || !p.pending {
				t.Fatal("not sampled as a pending copy")
			}
			p.pending = false
			if primaryFirst {
				e.srv.primaryDone(p, time.Millisecond)
			}
			p.req = nil // the call dereferences it: a panic inside callShadow
			p.pool.run(p)
			if !primaryFirst {
				e.srv.primaryDone(p, time.Millisecond)
			}
			e.accountedAs(t, map[string]float64{"error": 1})
			e.memoryBack(t)
		})
	}
}
