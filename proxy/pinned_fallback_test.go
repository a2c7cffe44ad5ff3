package proxy

// Behaviours of the safety net (fallback.go: fallback rules and replays,
// buffered bodies, the ejector) and of the split (split.go: sticky keys,
// the client address behind trusted proxies, buckets) that a hand
// mutation test found no test held: each test below fails when the
// behaviour it names is changed, and says why a user would notice.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A replay gives the monolith the request's whole body, byte for byte,
// also after a failure that came once the service had read it (a 5xx, a
// reset): the buffered body is sent again from its start (bufferedBody's
// again), not what is left of the service's reading of it, which is
// nothing. A body of several KiB is read ahead in growing steps (512
// bytes, doubled), each copied into the next. Without this the monolith
// would run the order with an empty or cut body.
func TestPinnedFallbackReplaysTheWholeBody(t *testing.T) {
	t.Parallel()
	fails503 := answer(503, "") // after reading the body
	var resets atomic.Int32
	long := strings.Repeat("0123456789abcdef", 320) // 5120 bytes: 512, 1024, 2048, 4096, then the rest
	for _, tc := range []struct {
		name    string
		extra   string
		service http.Handler
	}{
		{"after a 5xx", "    fallback: {on: [5xx], methods: [POST]}\n", fails503},
		{"after a reset", "    fallback: {on: [reset], methods: [POST]}\n", resetAfterReading(&resets)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mono atomic.Int32
			e := newEnv(t, fallbackConfig("{{service}}", tc.extra+"    eject: {consecutive_failures: 0}\n"),
				flagJSON("orders-percent", 100), bodyEcho(&mono), tc.service)
			for _, body := range []string{`{"order":7,"qty":3}`, long} {
				resp, got := post(e, "/api/orders/1", body)
				if want := fmt.Sprintf("monolith got POST %q", body); resp.StatusCode != 200 || got != want {
					t.Errorf("replay of a %d-byte POST: %d, monolith answered %.80q..., want it to get the whole body", len(body), resp.StatusCode, got)
				}
			}
		})
	}
}

// A 501 from the service counts towards its ejection like any 5xx (README:
// "5xx answers of the service count as failures"), though it is not
// replayed: the split's users keep getting it until the ejection. A
// service that answers 501 to everything is broken as surely as one that
// answers 503.
func TestPinned501CountsTowardsEjection(t *testing.T) {
	t.Parallel()
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotImplemented) })
	e := newEnv(t, fallbackConfig("{{service}}", "    fallback: {on: [5xx]}\n    eject: {consecutive_failures: 2, base_time: 1h, max_time: 2h}\n"),
		flagJSON("orders-percent", 100), nil, svc)
	for i := range 2 {
		if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != http.StatusNotImplemented {
			t.Fatalf("request %d: status %d, want the service's 501 (not replayed)", i, resp.StatusCode)
		}
	}
	if st := e.routeStatus(); st.State != "ejected" || e.metric(`strangler_ejections_total{route="orders"}`) != 1 {
		t.Errorf("two 501s in a row at consecutive_failures 2: state %q, ejections %v; want ejected once",
			st.State, e.metric(`strangler_ejections_total{route="orders"}`))
	}
}

// Which failures are replayed, for the client's request as the failure
// finds it (routeFallback.replays): a connect failure whatever the method,
// but only while no byte of a streamed body was taken by an upstream (a
// body partly sent cannot be sent whole again); the other reasons only
// for the listed methods and a body buffered whole; no reason that
// fallback.on does not name. A replay of a half-sent body would give the
// monolith a cut request.
func TestPinnedFallbackReplayRules(t *testing.T) {
	t.Parallel()
	f := routeFallback{on: map[string]prometheus.Counter{fallbackConnect: nil, fallbackReset: nil}, methods: []string{"GET"}}
	// A body as trackBody wraps it, of which an upstream took sent bytes.
	streamed := func(sent int) *bufferedBody {
		b := &bufferedBody{rest: strings.NewReader("xyz"), r: strings.NewReader("xyz")}
		if n, _ := b.Read(make([]byte, sent)); n != sent {
			t.Fatalf("setup: read %d bytes of the body, want %d", n, sent)
		}
		return b
	}
	whole := &bufferedBody{data: []byte("x"), whole: true}
	for _, tc := range []struct {
		name   string
		reason string
		method string
		body   io.ReadCloser
		want   bool
	}{
		{"connect, POST, streamed body untouched", fallbackConnect, "POST", streamed(0), true},
		{"connect, POST, streamed body partly sent", fallbackConnect, "POST", streamed(1), false},
		{"connect, POST, no body", fallbackConnect, "POST", http.NoBody, true},
		{"reset, GET, body whole", fallbackReset, "GET", whole, true},
		{"reset, GET, streamed body untouched", fallbackReset, "GET", streamed(0), false},
		{"reset, POST, body whole", fallbackReset, "POST", whole, false},
		{"timeout not in on", fallbackTimeout, "GET", http.NoBody, false},
	} {
		r, _ := http.NewRequest(tc.method, "http://x/", nil)
		r.Body = tc.body
		if got := f.replays(tc.reason, r); got != tc.want {
			t.Errorf("%s: replays = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A route ramped to 0 % (the rollback) and back up starts afresh: the
// count of failures in a row, the doubling of the ejection time and the
// probation after an ejection are all forgotten (ejector.percentIs). Kept,
// one failure after the ramp back up ejected the fixed service at once,
// or for twice base_time, for what it did before the rollback.
func TestPinnedRampFromZeroStartsAfresh(t *testing.T) {
	t.Parallel()
	// The ejector learns a share just after the gauge shows it, both under
	// percentMu: read under it, so that no failure meets the ejector
	// before it has the share the gauge shows.
	shareIs := func(e *env, v float64) bool {
		e.srv.percentMu.Lock()
		defer e.srv.percentMu.Unlock()
		return e.metric(`strangler_route_percent{route="orders"}`) == v
	}
	rollBackAndUp := func(t *testing.T, e *env) {
		writeFile(t, e.flagFile, flagJSON("orders-percent", 0))
		eventually(t, 10*time.Second, "the route at 0 %", func() bool { return shareIs(e, 0) })
		writeFile(t, e.flagFile, flagJSON("orders-percent", 100))
		eventually(t, 10*time.Second, "the route back at 100 %", func() bool { return shareIs(e, 100) })
	}
	fail := func(t *testing.T, e *env) {
		if resp, _ := e.get("/api/orders/1", "X-User-Id", "u", "X-Fail", "1"); resp.StatusCode != 503 {
			t.Fatalf("a failing call: status %d, want the service's 503", resp.StatusCode)
		}
	}
	// held and release are the "in flight at the rollback" subtest's: its
	// call waits at the service until released, then fails.
	var held atomic.Int32
	release := make(chan struct{})
	letGo := sync.OnceFunc(func() { close(release) })
	t.Cleanup(letGo)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			held.Add(1)
			<-release
		}
		if r.Header.Get("X-Fail") != "" {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "service ok")
	})
	ejections := func(e *env) float64 { return e.metric(`strangler_ejections_total{route="orders"}`) }

	t.Run("failures in a row", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 2, base_time: 1h, max_time: 2h}\n"), flagJSON("orders-percent", 100), nil, svc)
		fail(t, e) // one of two
		rollBackAndUp(t, e)
		fail(t, e)
		if n := ejections(e); n != 0 {
			t.Fatalf("one failure before a rollback and one after the ramp back up ejected the service (%v ejections) at consecutive_failures 2", n)
		}
		fail(t, e) // control: two in a row now
		if n := ejections(e); n != 1 {
			t.Errorf("two failures in a row after the ramp: %v ejections, want 1", n)
		}
	})
	t.Run("doubling", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 1, base_time: 1h, max_time: 8h}\n"), flagJSON("orders-percent", 100), nil, svc)
		fail(t, e) // ejected for 1h
		rollBackAndUp(t, e)
		if st := e.routeStatus(); st.State != "serving" {
			t.Fatalf("after the ramp back up: %q, want serving", st.State)
		}
		fail(t, e)
		st := e.routeStatus()
		if st.State != "ejected" || st.EjectedUntil == nil {
			t.Fatalf("a failure at consecutive_failures 1 did not eject: %+v", st)
		}
		if left := time.Until(*st.EjectedUntil); left > 90*time.Minute {
			t.Errorf("first ejection after the ramp back up lasts %v, want base_time (1h), not doubled", left.Round(time.Minute))
		}
	})
	t.Run("probation", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 2, base_time: 100ms, max_time: 1h}\n"), flagJSON("orders-percent", 100), nil, svc)
		fail(t, e)
		fail(t, e) // ejected for 100 ms, then on probation
		eventually(t, 10*time.Second, "the ejection over", func() bool {
			return e.metric(`strangler_service_ejected{route="orders"}`) == 0
		})
		rollBackAndUp(t, e)
		fail(t, e)
		if n := ejections(e); n != 1 {
			t.Errorf("on probation before the rollback, one failure after the ramp back up ejected the service again (%v ejections, want 1) at consecutive_failures 2", n)
		}
	})
	// A call in flight at the rollback that fails once the route is at 0 %
	// is not counted at all, rather than counted and then forgotten by the
	// ramp back up: the way back may not be a ramp from 0 % (a broken flag
	// in between, which is no rollback and forgets nothing), and the fixed
	// service would then be ejected by its first failure.
	t.Run("in flight at the rollback", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 2, base_time: 1h, max_time: 2h}\n"), flagJSON("orders-percent", 100), nil, svc)
		answered := make(chan int, 1)
		go func() {
			resp, _ := e.get("/api/orders/1", "X-User-Id", "u", "X-Hold", "1", "X-Fail", "1")
			answered <- resp.StatusCode
		}()
		eventually(t, 10*time.Second, "the held call at the service", func() bool { return held.Load() == 1 })
		writeFile(t, e.flagFile, flagJSON("orders-percent", 0))
		eventually(t, 10*time.Second, "the route at 0 %", func() bool { return shareIs(e, 0) })
		letGo() // it fails now, at 0 %
		if status := <-answered; status != 503 {
			t.Fatalf("the held call: status %d, want the service's 503", status)
		}
		writeFile(t, e.flagFile, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":"lots"},"defaultVariant":"on"}}}`)
		eventually(t, 10*time.Second, "the flag unusable", func() bool { return e.routeStatus().FlagError != "" })
		writeFile(t, e.flagFile, flagJSON("orders-percent", 100))
		eventually(t, 10*time.Second, "the route back at 100 %", func() bool { return shareIs(e, 100) })
		fail(t, e)
		if n := ejections(e); n != 0 {
			t.Fatalf("one failure after the way back ejected the service (%v ejections) at consecutive_failures 2: the failure at 0 %% was counted", n)
		}
		fail(t, e) // control: two in a row now
		if n := ejections(e); n != 1 {
			t.Errorf("two failures in a row after the way back: %v ejections, want 1", n)
		}
	})
}

// heldService is a service that fails every call (503) but those with
// X-Hold, which it holds until let is called and then answers with
// status; held counts the calls it holds.
func heldService(status int) (svc http.Handler, held *atomic.Int32, let func()) {
	release := make(chan struct{})
	held = new(atomic.Int32)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			held.Add(1)
			<-release
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(503)
	}), held, sync.OnceFunc(func() { close(release) })
}

// A call that was in flight when the service was ejected and fails
// afterwards neither extends the ejection nor doubles it: the service is
// already out, and a hung service's calls time out one by one for up to
// timeouts.response_header after the ejection. Counted, each would eject
// it again for twice as long, and a short incident would keep the service
// out for hours.
func TestPinnedFailureDuringAnEjectionIsNotCounted(t *testing.T) {
	t.Parallel()
	svc, held, let := heldService(503)
	e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 1, base_time: 1h, max_time: 8h}\n"), flagJSON("orders-percent", 100), nil, svc)
	t.Cleanup(let) // before the servers' own cleanups, which wait for the held call
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", "u")
		req.Header.Set("X-Hold", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	eventually(t, 10*time.Second, "the held call at the service", func() bool { return held.Load() == 1 })
	e.get("/api/orders/1", "X-User-Id", "u") // 503: ejected for 1h
	st := e.routeStatus()
	if st.State != "ejected" || st.EjectedUntil == nil {
		t.Fatalf("setup: not ejected: %+v", st)
	}
	first := *st.EjectedUntil
	let() // the call in flight fails now
	if status := <-done; status != 503 {
		t.Fatalf("the held call: status %d, want the service's 503", status)
	}
	if n := e.metric(`strangler_ejections_total{route="orders"}`); n != 1 {
		t.Errorf("a call failing during the ejection ejected the service again: %v ejections, want 1", n)
	}
	if st := e.routeStatus(); st.EjectedUntil == nil || st.EjectedUntil.Sub(first) > time.Minute {
		t.Errorf("ejected until %v, then %v after a call in flight failed: the ejection was extended", first, st.EjectedUntil)
	}
}

// A call that was in flight when the service was ejected and succeeds
// afterwards does not reset the doubling either: it was sent before the
// ejection, and the probe after it is what says the service is back. A
// service that fails fast while its slow calls still succeed (overload)
// was otherwise put back to base_time by each slow success, and never
// kept out longer while its probes kept failing.
func TestPinnedSuccessDuringAnEjectionKeepsTheDoubling(t *testing.T) {
	t.Parallel()
	svc, held, let := heldService(200)
	const base = 3 * time.Second
	e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 1, base_time: 3s, max_time: 1h}\n"), flagJSON("orders-percent", 100), nil, svc)
	t.Cleanup(let)
	done := make(chan int, 1)
	go func() {
		resp, _ := e.get("/api/orders/1", "X-User-Id", "u", "X-Hold", "1")
		done <- resp.StatusCode
	}()
	eventually(t, 10*time.Second, "the held call at the service", func() bool { return held.Load() == 1 })
	e.get("/api/orders/1", "X-User-Id", "u") // 503: ejected for base_time
	if st := e.routeStatus(); st.State != "ejected" {
		t.Fatalf("setup: not ejected: %+v", st)
	}
	let() // the call in flight succeeds now, during the ejection
	if status := <-done; status != 200 {
		t.Fatalf("the held call: status %d, want the service's 200", status)
	}
	eventually(t, pinnedWait, "the ejection over", func() bool { return e.routeStatus().State == "serving" })
	before := time.Now()
	e.get("/api/orders/1", "X-User-Id", "u") // the probe fails: ejected again
	st := e.routeStatus()
	if st.State != "ejected" || st.EjectedUntil == nil {
		t.Fatalf("a failed probe did not eject the service: %+v", st)
	}
	// Twice base_time from the probe's failure, which came after before;
	// reset, it would be base_time from it (under 2×base unless the probe
	// took a whole base_time to fail).
	if d := st.EjectedUntil.Sub(before); d < 2*base-time.Second/2 {
		t.Errorf("ejected again for %v after a failed probe, want twice base_time (%v): a call sent before the first ejection reset the doubling", d.Round(time.Millisecond), 2*base)
	}
}

// The sticky key from the request, where the value is unusual: the first
// of repeated header fields; an empty value as no value (the client
// address is the key, not "" shared by every such client); a cookie in
// any of the Cookie fields (HTTP/2 sends one per cookie); a cookie value
// that is a lone quote, kept; cookie names matched case-sensitively; a
// query name written with '+' for a space; a query value that does not
// unescape, kept as written. Each decides which side a user is held on,
// and a change moves users across the split.
func TestPinnedStickyKeyEdges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sticky, target string
		header               http.Header
		want                 string
	}{
		{"repeated header: the first", "header:X-User-Id", "/", http.Header{"X-User-Id": {"alice", "mallory"}}, "alice"},
		{"empty header: the client address", "header:X-User-Id", "/", http.Header{"X-User-Id": {""}}, "192.0.2.1"},
		{"cookie in the second Cookie field", "cookie:uid", "/", http.Header{"Cookie": {"a=1", "uid=bob"}}, "bob"},
		{"cookie value a lone quote", "cookie:uid", "/", http.Header{"Cookie": {`uid="`}}, `"`},
		{"cookie name case-sensitive", "cookie:uid", "/", http.Header{"Cookie": {"UID=eve; uid=bob"}}, "bob"},
		{"empty cookie: the client address", "cookie:uid", "/", http.Header{"Cookie": {"uid="}}, "192.0.2.1"},
		{"query name with + for a space", "query:a b", "/x?a+b=carol", nil, "carol"},
		{"query value that does not unescape", "query:u", "/x?u=%zz", nil, "%zz"},
		{"query: the first of repeated", "query:u", "/x?u=1&u=2", nil, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "http://x"+tc.target, nil)
			r.RemoteAddr = "192.0.2.1:5"
			if tc.header != nil {
				r.Header = tc.header
			}
			if got := newSticky(tc.sticky).key(r, nil); got != tc.want {
				t.Errorf("key = %q, want %q", got, tc.want)
			}
		})
	}
}

// The client address behind trusted proxies, where X-Forwarded-For is
// unusual (TestXFFKeyIsCanonical holds the spellings of one address):
// empty entries skipped; an entry that is not an address is the key, not
// a step to the entries left of it, which the client itself may have
// written; blanks around entries trimmed; a mapped IPv4 address in
// brackets is the IPv4 client; the first X-Forwarded-For field read when
// the later ones are trusted. And a peer address without a port is the
// key as it is. Each decides which side a client is held on, and a
// spoofable one lets a client pick its side.
func TestPinnedClientIPEdges(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"empty entries skipped", "10.1.1.1:5", []string{"203.0.113.9, , 10.2.2.2,"}, "203.0.113.9"},
		{"not an address: the key", "10.1.1.1:5", []string{"198.51.100.1, unknown, 10.2.2.2"}, "unknown"},
		{"blanks trimmed", "10.1.1.1:5", []string{"198.51.100.1,\t203.0.113.9 ,10.2.2.2"}, "203.0.113.9"},
		{"mapped IPv4 in brackets", "10.1.1.1:5", []string{"[::ffff:203.0.113.7]"}, "203.0.113.7"},
		{"first field when the later are trusted", "10.1.1.1:5", []string{"203.0.113.7", "10.2.2.2"}, "203.0.113.7"},
		{"peer without a port", "192.0.2.1", nil, "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			if got := clientIP(r, trusted); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

// A body the shadow read ahead up to its own max_body, and found longer,
// is read on up to the fallback's larger max_body (bufferBody goes on from
// what the shadow read): a chunked POST of exactly fallback.max_body bytes,
// one more than shadow.max_body, is buffered whole and replayed after a
// 5xx. Taken as too long, it was not replayed, and the client got the
// service's 503 for a body the fallback was configured to keep.
func TestPinnedFallbackReadsOnPastTheShadowsLimit(t *testing.T) {
	t.Parallel()
	svc := answer(503, "") // after reading the body
	var mono atomic.Int32
	extra := "    fallback: {on: [5xx], methods: [POST], max_body: 16}\n" +
		"    shadow: {percent: 100, methods: [POST], max_body: 15}\n" +
		"    eject: {consecutive_failures: 0}\n"
	e := newEnv(t, fallbackConfig("{{service}}", extra), flagJSON("orders-percent", 100), bodyEcho(&mono), svc)
	body := strings.Repeat("z", 16)
	// No length: sent chunked, so the shadow reads it to learn its size.
	req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", io.MultiReader(strings.NewReader(body)))
	req.Header.Set("X-User-Id", "u")
	resp, got := e.do(req)
	if want := fmt.Sprintf("monolith got POST %q", body); resp.StatusCode != 200 || got != want {
		t.Errorf("chunked POST of fallback.max_body bytes after a 503: %d %q, want the monolith's answer to the whole body", resp.StatusCode, got)
	}
}

// A body read ahead for a comparison is charged to shadow_memory by the
// array it is read into (README: "from 512 bytes, doubling up to its
// length or max_body"), exactly what was taken and no more: an announced
// length bounds the array at length+1 (one byte to see the end), a
// chunked body grows by doubling, max_body+1 bounds both; the charge the
// request holds (held) is what the budget lost. Where the budget has no
// room, reading stops, what was read is kept charged, and the body still
// reaches the primary whole. Charged too much, comparisons were refused
// as overload that fitted; charged less than taken, shadow_memory leaked
// until every comparison was refused.
func TestPinnedBodyReadAheadIsChargedByItsArray(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		size     int
		chunked  bool
		limit    int64
		budget   int64
		held     int64
		whole    bool
		refused  bool
		buffered int // bytes of data read ahead
	}{
		{"announced 600 bytes", 600, false, 64 << 10, 1 << 20, 601, true, false, 600},
		{"announced 512 bytes", 512, false, 64 << 10, 1 << 20, 513, true, false, 512},
		{"chunked 600 bytes", 600, true, 64 << 10, 1 << 20, 1024, true, false, 600},
		{"chunked 5000 bytes", 5000, true, 64 << 10, 1 << 20, 8192, true, false, 5000},
		{"announced past max_body", 100000, false, 1000, 1 << 20, 1001, false, false, 1001},
		{"chunked past max_body", 100000, true, 1000, 1 << 20, 1001, false, false, 1001},
		{"budget for 512 bytes only", 600, true, 64 << 10, 1000, 512, false, true, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payload := strings.Repeat("p", tc.size)
			r, _ := http.NewRequest("POST", "http://x/", io.NopCloser(strings.NewReader(payload)))
			r.ContentLength = int64(tc.size)
			if tc.chunked {
				r.ContentLength = -1
			}
			budget := &memBudget{limit: tc.budget}
			bb, refused := bufferBody(r, tc.limit, budget)
			if bb.held != tc.held || budget.used.Load() != tc.held {
				t.Errorf("held %d, budget used %d; want both %d", bb.held, budget.used.Load(), tc.held)
			}
			if bb.whole != tc.whole || refused != tc.refused || len(bb.data) != tc.buffered {
				t.Errorf("whole %v, refused %v, %d bytes read ahead; want %v, %v, %d", bb.whole, refused, len(bb.data), tc.whole, tc.refused, tc.buffered)
			}
			if got, err := io.ReadAll(r.Body); err != nil || string(got) != payload {
				t.Errorf("the primary reads %d bytes (%v), want the whole %d-byte body", len(got), err, tc.size)
			}
		})
	}
}

// The first request on probation is the probe even within probeTimeout
// (5 s) of the proxy's start: no probe yet is no probe in flight
// (admitAt's start != 0), not one that started when the clock did. A
// service ejected as the proxy starts (it was down for the deploy) with a
// base_time under 5 s otherwise got no request until 5 s after the start.
func TestPinnedFirstProbeRightAfterStart(t *testing.T) {
	t.Parallel()
	e := &ejector{
		ejected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}),
		ejections: prometheus.NewCounter(prometheus.CounterOpts{Name: "c"}),
		percent:   -1,
	}
	e.cfg.Store(&ejectConfig{threshold: 1, base: 100 * time.Millisecond, max: time.Second})
	e.until.Store(monoNanos(clockStart.Add(500 * time.Millisecond))) // an ejection that ended 0.5 s after the start
	now := clockStart.Add(time.Second)
	if !e.admitAt(now) {
		t.Fatal("1 s after the start, the first request on probation is refused: no probe is in flight")
	}
	if e.admitAt(now.Add(time.Millisecond)) {
		t.Error("a second request was admitted while the probe is in flight (control)")
	}
}

// With fallback.on naming only connect, no body is read ahead, not even
// one of a method fallback.methods lists (README: "Only the bodies of
// requests fallback.methods lists (when on names more than connect) ...
// are read ahead"): a connect failure replays the body unread, so reading
// it ahead buys nothing, and a client that streams its body and waits for
// each piece's answer would stall until max_body or the end of its body.
func TestPinnedConnectOnlyFallbackStreamsBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"    fallback: {on: [connect], methods: [GET, POST]}\n", flagJSON("orders-percent", 100), fullDuplexEcho, fullDuplexEcho)
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			pr, pw := io.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
			defer stop()
			req, _ := http.NewRequestWithContext(ctx, method, e.proxyURL+"/api/orders/1", pr)
			req.Header.Set("X-User-Id", "u")
			go pw.Write([]byte("first piece\n"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("no answer while the body was still open: %v", err)
			}
			defer resp.Body.Close()
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "first piece\n" {
				t.Fatalf("first piece not echoed while the body was still open: %q %v", line, err)
			}
			pw.Close()
		})
	}
}
