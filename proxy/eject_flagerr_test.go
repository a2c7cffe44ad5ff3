package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Fixed (found by a review; shadow.go resting, fallback.go percentIs): the commit
// stopped probation at 0 % from skipping shadow copies for good (atZero),
// but a flag error now publishes -1, so atZero is false while the route
// sends the service nothing, exactly as at 0 %. An ejection that ends
// while the flag is unusable puts the service on probation that no probe
// can end, and every shadow copy is skipped as "ejected" until the flag is
// fixed, while the gauge says 0 and /api/routes says serving.
// Fix: have resting() (or percentIs) treat "no primary traffic can reach
// the service" (share 0 or flag unusable) alike, e.g. a separate
// noPrimary flag set for v == 0 || err != nil, used by resting only.
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
	before := copies.Load()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline) && copies.Load() == before; i++ {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("user-", i))
		time.Sleep(50 * time.Millisecond)
	}
	if copies.Load() == before {
		t.Errorf("flag unusable (all on the monolith), ejection over (state %q, gauge 0): no shadow copy in 2 s "+
			"(skipped ejected = %v): probation with no primary traffic never ends",
			e.routeStatus().State, e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`))
	}
}
