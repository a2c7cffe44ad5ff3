package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A call in flight at a rollback to 0 % (a hung service's, timing out up
// to 30 s later) that fails afterwards does not eject the service: at 0 %
// outcomes are ignored. It did, and the probation after that ejection,
// which no request of the route's own could end at 0 %, then kept every
// shadow copy from the service for good, while /api/routes said
// "serving" and strangler_service_ejected was 0.
func TestFailureAtZeroDoesNotStopShadowCopies(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var held, copies atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get(shadowHeader) != "" {
			copies.Add(1)
			io.WriteString(w, "monolith") // same answer as the monolith's whoAmI body
			return
		}
		if r.Header.Get("X-Hold") != "" {
			held.Add(1)
			<-release // hung until after the rollback
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "service")
	})
	cfg := shadowConfig("      percent: 100\n      timeout: 2s\n") +
		"    timeouts: {response_header: 10s}\n" +
		"    eject: {consecutive_failures: 1, base_time: 100ms, max_time: 1s}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), nil, svc)

	// A call in flight when the route is rolled back.
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", "u")
		req.Header.Set("X-Hold", "1")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "the call at the service", func() bool { return held.Load() == 1 })
	writeFile(t, e.flagFile, flagJSON("orders-percent", 0)) // the rollback
	eventually(t, 5*time.Second, "the route at 0 %", func() bool {
		return e.metric(`strangler_route_percent{route="orders"}`) == 0
	})
	// At 0 %, copies go to the service (control).
	before := copies.Load()
	e.get("/api/orders/1", "X-User-Id", "a")
	eventually(t, 5*time.Second, "a shadow copy at 0 % before the late failure", func() bool { return copies.Load() > before })

	close(release) // the in-flight call fails now, after the rollback
	<-done
	if n := e.metric(`strangler_ejections_total{route="orders"}`); n != 0 {
		t.Errorf("a call failing after the rollback to 0 %% ejected the service (%v ejections)", n)
	}
	if !e.copyArrives(&copies, 3*time.Second) {
		t.Errorf("route at 0 %%, ejection over (/api/routes %q, gauge 0), yet no shadow copy reached the service in 3 s "+
			"(strangler_shadow_skipped_total{reason=\"ejected\"} = %v): probation at 0 %% never ends",
			e.routeStatus().State, e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`))
	}
}

// An unusable flag (out of range, missing, wrong type) is not a rollback
// to 0 %: it keeps the ejection, and the flag becoming usable again is not
// a ramp up from 0 %. Counted as one, a typo fixed in the flag file during
// an ejection gave the still-failing service its whole share at once.
func TestFlagErrorKeepsEjection(t *testing.T) {
	t.Parallel()
	var svcHits atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svcHits.Add(1)
		w.WriteHeader(503)
	})
	var mono atomic.Int32
	e := newEnv(t, fallbackConfig("{{service}}", "    eject: {consecutive_failures: 1, base_time: 1h, max_time: 2h}\n"),
		flagJSON("orders-percent", 50), bodyEcho(&mono), svc)
	// Eject it: one failure of a user the split sends to the service.
	var user string
	for i := 0; i < 200 && user == ""; i++ {
		u := fmt.Sprint("user-", i)
		if resp, _ := e.get("/api/orders/1", "X-User-Id", u); resp.StatusCode == 503 {
			user = u
		}
	}
	if user == "" || e.routeStatus().State != "ejected" {
		t.Fatalf("setup: not ejected (%+v)", e.routeStatus())
	}
	// A typo (150), then fixed back to the same 50 %: no rollback meant.
	writeFile(t, e.flagFile, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"}}}`)
	eventually(t, 5*time.Second, "the flag unusable", func() bool { return e.routeStatus().FlagError != "" })
	writeFile(t, e.flagFile, flagJSON("orders-percent", 50))
	eventually(t, 5*time.Second, "the flag back at 50", func() bool {
		st := e.routeStatus()
		return st.FlagError == "" && st.Percent == 50
	})
	hits := svcHits.Load()
	for range 10 {
		e.get("/api/orders/1", "X-User-Id", user)
	}
	if n := svcHits.Load() - hits; n != 0 || e.routeStatus().State != "ejected" {
		t.Errorf("after a flag typo and its fix, the failing service (ejected for 1h) got %d requests; state %q",
			n, e.routeStatus().State)
	}
}

// A probe whose outcome never comes (its client went away) holds the
// probation's one slot for probeTimeout, not longer when the clock steps
// back (NTP, a VM resumed): a start in the future counts as timed out.
// (Measured on the wall clock, an hour's step kept the service out for
// the hour.)
func TestProbeTimeoutSurvivesClockStepBack(t *testing.T) {
	e := &ejector{
		ejected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}),
		ejections: prometheus.NewCounter(prometheus.CounterOpts{Name: "c"}),
		percent:   -1,
	}
	e.cfg.Store(&ejectConfig{threshold: 1, base: time.Second, max: time.Minute})
	t0 := time.Unix(1_700_000_000, 0)
	e.until.Store(monoNanos(t0.Add(-time.Second))) // an ejection that just ended
	if !e.admitAt(t0) {
		t.Fatal("setup: the first request on probation is not admitted as the probe")
	}
	// The probe's client goes away (no outcome). The clock steps back an
	// hour; a minute of real time later, requests still cannot probe.
	stepped := t0.Add(-time.Hour)
	if e.admitAt(stepped.Add(time.Minute)) {
		return
	}
	t.Errorf("a minute after a probe that never answered, the clock having stepped back 1h, no request may try the service " +
		"(until the wall clock passes the probe's start): guard now < start")
}

// While a route's flag cannot be used, no request of its own reaches the
// service, as at 0 %: an ejection that ends meanwhile puts the service on
// a probation no probe can end, which must not keep shadow copies from it
// (they were skipped as "ejected" until the flag was fixed, while the
// gauge said 0 and /api/routes "serving").
func TestFlagErrorProbationKeepsShadowCopies(t *testing.T) {
	t.Parallel()
	var copies atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get(shadowHeader) != "" {
			copies.Add(1)
			io.WriteString(w, "monolith")
			return
		}
		w.WriteHeader(503)
	})
	cfg := shadowConfig("      percent: 100\n") +
		"    eject: {consecutive_failures: 1, base_time: 200ms, max_time: 1s}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), nil, svc)
	e.get("/api/orders/1", "X-User-Id", "u") // 503: ejected for 200 ms
	if e.metric(`strangler_ejections_total{route="orders"}`) != 1 {
		t.Fatalf("setup: not ejected")
	}
	writeFile(t, e.flagFile, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"}}}`)
	eventually(t, 5*time.Second, "the flag unusable", func() bool { return e.routeStatus().FlagError != "" })
	eventually(t, 5*time.Second, "the ejection over", func() bool {
		return e.metric(`strangler_service_ejected{route="orders"}`) == 0
	})
	if !e.copyArrives(&copies, 2*time.Second) {
		t.Errorf("flag unusable (all on the monolith), ejection over (state %q, gauge 0): no shadow copy in 2 s "+
			"(skipped ejected = %v): probation with no primary traffic never ends",
			e.routeStatus().State, e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`))
	}
}

// A flag with a targeting rule whose fallback is 0 (vip users -> 100 %,
// everyone else 0 %) sends the service primary traffic, so its probation
// can end: the route is not dark, and shadow copies to a service on
// probation are skipped. (ce539e2 marked it dark from the fallback value
// alone, and let every sampled copy through.)
func TestTargetedFlagProbationSkipsShadowCopies(t *testing.T) {
	var copies, probation atomic.Int32
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get(shadowHeader) != "" {
			if probation.Load() == 1 {
				copies.Add(1)
			}
			io.WriteString(w, "monolith")
			return
		}
		w.WriteHeader(503)
	})
	flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"all":100,"ramp":0},"defaultVariant":"ramp",
	  "targeting":{"if":[{"in":[{"var":"targetingKey"},["vip-1"]]},"all",null]}}}}`
	cfg := shadowConfig("      percent: 100\n") +
		"    eject: {consecutive_failures: 1, base_time: 200ms, max_time: 1s}\n"
	e := newEnv(t, cfg, flags, nil, svc)
	e.get("/api/orders/1", "X-User-Id", "vip-1") // 503: ejected
	if e.metric(`strangler_ejections_total{route="orders"}`) != 1 {
		t.Fatalf("setup: not ejected")
	}
	eventually(t, 5*time.Second, "the ejection over", func() bool {
		return e.metric(`strangler_service_ejected{route="orders"}`) == 0
	})
	probation.Store(1)
	for i := range 20 {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("user-", i)) // not vip: primary on the monolith
	}
	// Each request's copy is either skipped (counted as it is decided) or
	// sent (counted when it arrives).
	skipped := func() float64 { return e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`) }
	eventually(t, 5*time.Second, "every copy skipped or sent", func() bool { return skipped()+float64(copies.Load()) >= 20 })
	if n := copies.Load(); n != 0 {
		t.Errorf("service on probation (vip traffic can still end it) got %d shadow copies; skipped ejected = %v",
			n, e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`))
	}
}

// copyArrives sends requests of new users until a shadow copy arrives
// (copies grows), for up to d, and reports whether one did.
func (e *env) copyArrives(copies *atomic.Int32, d time.Duration) bool {
	before := copies.Load()
	deadline := time.Now().Add(d)
	for i := 0; copies.Load() == before && time.Now().Before(deadline); i++ {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("user-", i))
		time.Sleep(50 * time.Millisecond)
	}
	return copies.Load() != before
}
