package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// strangler_service_ejected is 1 while ejected and drives the
// StranglerServiceEjected alert. It must go back to 0 when the ejection
// ends even if no request goes to the service after it (the route ramped
// to 0 % after the incident, or no traffic): else the alert fires for ever
// while /api/routes says "serving".
func TestEjectedGaugeClearsWhenTheEjectionEnds(t *testing.T) {
	t.Parallel()
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	e := newEnv(t, fallbackConfig("{{service}}", "    eject: {consecutive_failures: 1, base_time: 200ms, max_time: 1s}\n"),
		flagJSON("orders-percent", 100), nil, svc)
	if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if st := e.routeStatus(); st.State != "ejected" {
		t.Fatalf("not ejected: %+v", st)
	}
	if g := e.metric(`strangler_service_ejected{route="orders"}`); g != 1 {
		t.Fatalf("strangler_service_ejected = %v while ejected", g)
	}
	// No request to the route from now on.
	eventually(t, 3*time.Second, "the gauge back to 0 after base_time", func() bool {
		return e.metric(`strangler_service_ejected{route="orders"}`) == 0
	})
	if st := e.routeStatus(); st.State != "serving" {
		t.Errorf("the gauge is 0 but /api/routes says %q", st.State)
	}
}

// A route ramped to 0 % forgets its service's failures, and a ramp back
// up starts afresh: after a rollback, a fixed service ramped up again got
// nothing for minutes, still ejected by failures from before the rollback
// (calls to a hung service time out after it).
func TestRampToZeroForgetsEjection(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "service ok")
	})
	var mono atomic.Int32
	e := newEnv(t, fallbackConfig("{{service}}", "    eject: {consecutive_failures: 2, base_time: 1h, max_time: 2h}\n"),
		flagJSON("orders-percent", 100), bodyEcho(&mono), svc)
	for range 2 {
		e.get("/api/orders/1", "X-User-Id", "u")
	}
	if st := e.routeStatus(); st.State != "ejected" {
		t.Fatalf("after 2 failures: %+v", st)
	}
	writeFile(t, e.flagFile, flagJSON("orders-percent", 0)) // the rollback
	eventually(t, 5*time.Second, "ejection forgotten at 0 %", func() bool {
		return e.routeStatus().State == "serving" && e.metric(`strangler_service_ejected{route="orders"}`) == 0
	})
	failing.Store(false) // fixed
	writeFile(t, e.flagFile, flagJSON("orders-percent", 100))
	eventually(t, 5*time.Second, "the fixed service serves after the ramp up", func() bool {
		_, body := e.get("/api/orders/1", "X-User-Id", "u")
		return body == "service ok"
	})
}

// The log says what an on-call engineer needs without /api/routes: each
// route's share when it changes, why a flag is unusable, how the service
// failed when it is ejected, and when an ejection ends.
func TestLogSaysSharesFlagsAndEjections(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	var mono atomic.Int32
	e := newEnvWith(t, fallbackConfig("{{service}}", "    eject: {consecutive_failures: 2, base_time: 100ms, max_time: 1s}\n"),
		flagJSON("orders-percent", 10), bodyEcho(&mono), svc, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	writeFile(t, e.flagFile, flagJSON("orders-percent", 100))
	eventually(t, 5*time.Second, "the share change logged", func() bool {
		return strings.Contains(logs.String(), `msg="route share changed" route=orders flag=orders-percent from=10 to=100`)
	})
	for range 2 {
		e.get("/api/orders/1", "X-User-Id", "u")
	}
	if !strings.Contains(logs.String(), `last_failure="status 503"`) {
		t.Errorf("ejection logged without how the service failed:\n%s", logs.String())
	}
	eventually(t, 5*time.Second, "the ejection's end logged", func() bool {
		e.routeStatus() // a look ends an ejection that is over
		return strings.Contains(logs.String(), "service ejection over")
	})
	writeFile(t, e.flagFile, `{"flags": {"orders-percent": {"state": "ENABLED", "variants": {"on": 150}, "defaultVariant": "on"}}}`)
	eventually(t, 5*time.Second, "the unusable flag logged", func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="route's flag is unusable: its traffic stays on the monolith" route=orders`)
	})
}

// On probation after an ejection, one request at a time tries the
// service; the rest of its share stays on the monolith until that probe
// answers. With a service that hangs, every request of the share used to
// try it at once and wait for the response header timeout.
func TestProbationSendsOneProbeAtATime(t *testing.T) {
	t.Parallel()
	var hanging atomic.Bool
	var svcCalls atomic.Int32
	release := make(chan struct{})
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svcCalls.Add(1)
		if hanging.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(503)
	})
	var mono atomic.Int32
	e := newEnv(t, strings.Replace(fallbackConfig("{{service}}", "    eject: {consecutive_failures: 2, base_time: 200ms, max_time: 1s}\n"),
		"response_header: 300ms", "response_header: 20s", 1), flagJSON("orders-percent", 100), bodyEcho(&mono), svc)
	t.Cleanup(func() { close(release) }) // before the proxy's own cleanup: it waits for the probe
	for range 2 {
		e.get("/api/orders/1", "X-User-Id", "u")
	}
	if st := e.routeStatus(); st.State != "ejected" {
		t.Fatalf("after 2 failures: %+v", st)
	}
	hanging.Store(true)
	eventually(t, 5*time.Second, "the ejection over", func() bool { return e.routeStatus().State == "serving" })
	before := svcCalls.Load()
	// The probe: it hangs.
	probe, err := http.NewRequest("GET", e.proxyURL+"/api/orders/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	probe.Header.Set("X-User-Id", "probe")
	go func() {
		if resp, err := http.DefaultClient.Do(probe); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "the probe at the service", func() bool { return svcCalls.Load() == before+1 })
	// Meanwhile the rest of the share is answered by the monolith, at once.
	for i := range 5 {
		resp, body := e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i))
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "monolith got") {
			t.Fatalf("on probation, with the probe in flight: %d %q, want the monolith's answer", resp.StatusCode, body)
		}
	}
	if n := svcCalls.Load() - before; n != 1 {
		t.Errorf("the service got %d calls on probation, want the 1 probe", n)
	}
}
