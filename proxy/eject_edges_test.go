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

// Fixed (found reviewing 612f0fe + 43af2d2): percentIs(0) forgets
// the ejection only at the moment of the ramp. A call that was in flight
// at the rollback (the SRE scenario: a hung service's calls time out up to
// 30 s later) fails afterwards and ejected the service again, at 0 %; outcomes at 0 % are now ignored. When
// that ejection ends the ejector goes on probation, and at 0 % no probe
// can ever end it, so resting() stays true and the route's shadow copies
// to the service (the dark launch a rolled-back route is left with) are
// skipped as "ejected" for good, until some later flag change or reload,
// while /api/routes says "serving" and strangler_service_ejected is 0.
// Before 612f0fe the copies resumed when the ejection ended.
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
	before = copies.Load()
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline) && copies.Load() == before; i++ {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("user-", i))
		time.Sleep(50 * time.Millisecond)
	}
	if copies.Load() == before {
		t.Errorf("route at 0 %%, ejection over (/api/routes %q, gauge 0), yet no shadow copy reached the service in 3 s "+
			"(strangler_shadow_skipped_total{reason=\"ejected\"} = %v): probation at 0 %% never ends",
			e.routeStatus().State, e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`))
	}
}

// Fixed (found reviewing 43af2d2): publishPercents hands percentIs 0 for a flag
// that is unusable (out of range, missing, wrong type), not only for a
// ramp to 0 %; and the flag becoming usable again is "a ramp up from 0 %".
// So a typo in the flag file that is fixed (or any flag error that clears)
// during an ejection wipes the ejection: the still-failing service gets its
// whole share at once, without probation. Before 43af2d2 a flag error did
// not touch the ejector. Before the fix the service, ejected
// for an hour, gets the requests.
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

// Fixed (found by a review, low): admitAt measures the probe's age on the wall
// clock (UnixNano). A backward step of the clock (NTP, a VM resumed) just
// after a probe whose outcome never comes (its client went away) makes
// now-start negative, so admitAt refuses every request until the wall
// clock catches up with the probe's start: an hour's step keeps the
// service out for an hour, not probeTimeout.
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
