package proxy

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Each test here pins a behaviour that a one-token change of the proxy
// (a hand mutation test, 2026-12-07) left unnoticed by the other tests.

// TestBucketIsFrozen pins the split's hash: "it must never
// change: a change of hash moves every user across the split" (bucket).
// A change to the finalizer or to routeSeed's separator byte fails here.
func TestBucketIsFrozen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		route, key string
		want       uint32
	}{
		{"orders", "user-1", 8977},
		{"orders", "user-2", 7182},
		{"orders", "alice", 9942},
		{"checkout", "user-1", 2761},
		{"orders", "", 4702},
		// The separator after the route's name: "ab"+"c" and "a"+"bc" apart.
		{"ab", "c", 794},
		{"a", "bc", 4094},
	} {
		if got := bucket(routeSeed(tc.route), tc.key); got != tc.want {
			t.Errorf("bucket(route %q, key %q) = %d, want %d: the hash changed, every user moves", tc.route, tc.key, got, tc.want)
		}
	}
}

// TestStickyIPv4MappedAddresses: a dual-stack listener reports IPv4
// clients as ::ffff:a.b.c.d, and proxies write them so in X-Forwarded-For,
// with a port too; each is the IPv4 client it stands for (split.go: the
// Unmap in isTrusted and in parseHop's address-and-port case).
func TestStickyIPv4MappedAddresses(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		name, remote, xff, want string
	}{
		{"mapped peer is a trusted proxy", "[::ffff:127.0.0.1]:4000", "203.0.113.7", "203.0.113.7"},
		{"mapped hop with a port is the IPv4 client", "127.0.0.1:4000", "[::ffff:203.0.113.7]:443", "203.0.113.7"},
		{"mapped trusted hop with a port stays trusted", "127.0.0.1:4000", "203.0.113.7, [::ffff:127.0.0.1]:8443", "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.RemoteAddr = tc.remote
			r.Header.Set("X-Forwarded-For", tc.xff)
			if got := newSticky("ip").key(r, trusted); got != tc.want {
				t.Errorf("key = %q, want %q", got, tc.want)
			}
		})
	}
}

// ejectGapConfig is fallbackConfig's route with a long response header
// timeout, so that only the client ends a hung call.
func ejectGapConfig(extra string) string {
	cfg := fallbackConfig("{{service}}", extra)
	long := strings.Replace(cfg, "response_header: 300ms", "response_header: 10s", 1)
	if long == cfg {
		panic("fallbackConfig has no response_header: 300ms to lengthen")
	}
	return long
}

// TestFallback5xxNeedsTheWholeBody: a 5xx is replayed only
// when the request body was buffered whole (fallback.max_body): a POST
// whose body went past it has reached the service in part and cannot be
// sent again, so the client gets the service's answer and the monolith
// nothing (fallback.go: replays5xx's out.GetBody != nil).
func TestFallback5xxNeedsTheWholeBody(t *testing.T) {
	t.Parallel()
	var mono atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
		io.WriteString(w, "service says no")
	})
	e := newEnv(t, fallbackConfig("{{service}}", "    fallback: {on: [5xx], methods: [POST], max_body: 16}\n    eject: {consecutive_failures: 0}\n"),
		flagJSON("orders-percent", 100), bodyEcho(&mono), svc)
	for _, tc := range []struct {
		body string
		want string // who answers
	}{
		{"small", "monolith"},                 // within max_body: replayed (control)
		{strings.Repeat("y", 16), "monolith"}, // exactly max_body: whole, replayed (fallback.go: len(bb.data) <= limit)
		{strings.Repeat("x", 100), "service"}, // past it: not replayable
	} {
		resp, body := post(e, "/api/orders/1", tc.body)
		got := "service"
		if strings.HasPrefix(body, "monolith got") {
			got = "monolith"
		}
		if got != tc.want || (got == "service" && resp.StatusCode != 503) {
			t.Errorf("POST of %d bytes: answered by %s (%d %q), want %s", len(tc.body), got, resp.StatusCode, body, tc.want)
		}
	}
	if n := mono.Load(); n != 2 {
		t.Errorf("monolith hits = %d, want 2 (the replays of the bodies within max_body only)", n)
	}
}

// TestClientCancelDoesNotEject: a client that gives up on a
// slow call is not the service failing; with consecutive_failures 1 it
// must not eject the service (fallback.go: serviceFailed's errCanceled).
// A 503 afterwards does eject it, which shows the count works.
func TestClientCancelDoesNotEject(t *testing.T) {
	t.Parallel()
	var held atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			held.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(503)
	})
	e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 1, base_time: 1h, max_time: 2h}\n"), flagJSON("orders-percent", 100), nil, svc)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.proxyURL+"/api/orders/1", nil)
	req.Header.Set("X-User-Id", "u")
	req.Header.Set("X-Hold", "1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "the call at the service", func() bool { return held.Load() == 1 })
	cancel()
	<-done
	// Once the proxy has counted the client's leaving, it has judged the
	// call: no ejection may follow from it.
	e.waitMetric(`strangler_upstream_errors_total{backend="service",kind="canceled",route="orders"}`, 1)
	if n := e.metric(`strangler_ejections_total{route="orders"}`); n != 0 {
		t.Fatalf("a client giving up ejected the service (%v ejections)", n)
	}
	e.get("/api/orders/1", "X-User-Id", "u") // a real failure
	if n := e.waitMetric(`strangler_ejections_total{route="orders"}`, 1); n != 1 {
		t.Errorf("a 503 with consecutive_failures 1: %v ejections, want 1", n)
	}
}

// TestEjectionCountsConsecutiveFailuresOnly: a success between
// two failures starts the count again, so failure, success, failure does
// not eject at consecutive_failures 2; a second failure in a row does
// (fallback.go: success resets consecutive).
func TestEjectionCountsConsecutiveFailuresOnly(t *testing.T) {
	t.Parallel()
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Fail") != "" {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	})
	e := newEnv(t, ejectGapConfig("    eject: {consecutive_failures: 2, base_time: 1h, max_time: 2h}\n"), flagJSON("orders-percent", 100), nil, svc)
	for i, fail := range []bool{true, false, true} {
		hdr := []string{"X-User-Id", "u"}
		if fail {
			hdr = append(hdr, "X-Fail", "1")
		}
		if resp, _ := e.get("/api/orders/1", hdr...); resp.StatusCode != map[bool]int{true: 503, false: 200}[fail] {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if n := e.metric(`strangler_ejections_total{route="orders"}`); n != 0 {
		t.Fatalf("failure, success, failure ejected the service (%v ejections) at consecutive_failures 2", n)
	}
	e.get("/api/orders/1", "X-User-Id", "u", "X-Fail", "1") // two in a row now
	if n := e.waitMetric(`strangler_ejections_total{route="orders"}`, 1); n != 1 {
		t.Errorf("two failures in a row: %v ejections, want 1", n)
	}
}

// TestShadowBodyAtMaxBody: a request body of exactly
// shadow.max_body bytes, announced by Content-Length, is compared; one
// byte more is skipped as too_large (shadow.go: r.ContentLength >
// sh.maxBody in startShadow).
func TestShadowBodyAtMaxBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size int
		want string
	}{
		{16, "match"},
		{17, "too_large"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			ok := answer(200, `{"ok":true}`)
			e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      max_body: 16\n"), flagJSON("orders-percent", 0), ok, ok)
			req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(strings.Repeat("x", tc.size)))
			req.Header.Set("X-User-Id", "u")
			if resp, _ := e.do(req); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := e.accounted(1); len(got) != 1 || got[tc.want] != 1 {
				t.Errorf("a body of %d bytes at shadow max_body 16: counted %v, want %s 1", tc.size, got, tc.want)
			}
		})
	}
}

// TestUnverifiableTransferEncodingIs501: a Transfer-Encoding
// the guard cannot verify as "chunked" (here "chunked" followed by more
// whitespace than the guard keeps of the value) but net/http accepts
// reaches admit, which answers 501 as net/http does for an unsupported
// coding, not 400, and forwards nothing (limits.go: reason.status()).
func TestUnverifiableTransferEncodingIs501(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), log.backend("service"))
	raw := "POST /api/orders/1 HTTP/1.1\r\nHost: te-pad\r\nTransfer-Encoding: chunked" + strings.Repeat(" ", 40) + "\r\n\r\n0\r\n\r\n"
	resps, _ := exchange(t, e.proxyAddr(), raw, 3*time.Second)
	if got := statuses(resps); len(got) != 1 || got[0] != http.StatusNotImplemented {
		t.Errorf("answers %v, want [501]", got)
	}
	if got := log.requests(t, "te-pad", 0); len(got) != 0 {
		t.Errorf("forwarded %v", got)
	}
}
