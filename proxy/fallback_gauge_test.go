package proxy

import (
	"net/http"
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
