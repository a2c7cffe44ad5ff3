package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

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
	for i := 0; i < 20; i++ {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("user-", i)) // not vip: primary on the monolith
	}
	time.Sleep(300 * time.Millisecond)
	if n := copies.Load(); n != 0 {
		t.Errorf("service on probation (vip traffic can still end it) got %d shadow copies; skipped ejected = %v",
			n, e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`))
	}
}
