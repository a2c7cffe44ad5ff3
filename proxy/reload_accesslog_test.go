package proxy

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestAccessLogFollowsTheRequestsTable: a request in flight finishes on
// the table it started with, its access log line included, whichever way
// a reload turns access_log meanwhile.
func TestAccessLogFollowsTheRequestsTable(t *testing.T) {
	t.Parallel()
	for _, from := range []bool{false, true} {
		hold, arrived := make(chan struct{}), make(chan struct{}, 1)
		svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/held") {
				arrived <- struct{}{}
				<-hold
			}
		})
		cfg := func(on bool) string {
			if on {
				return "access_log: true\n" + basicConfig
			}
			return basicConfig
		}
		var logs lockedBuffer
		e := newEnvWith(t, cfg(from), flagJSON("orders-percent", 100), nil, svc, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		done := make(chan struct{})
		go func() { e.get("/api/orders/held", "X-User-Id", "u"); close(done) }()
		<-arrived
		e.rewriteConfig(cfg(!from))
		if err := e.srv.ReloadFile(e.configPath()); err != nil {
			t.Fatal(err)
		}
		close(hold)
		<-done // the line, if any, is written before the answer ends
		e.get("/api/orders/after", "X-User-Id", "u")
		l := logs.String()
		if got := strings.Contains(l, "path=/api/orders/held"); got != from {
			t.Errorf("access_log %v, reloaded to %v while a request ran: its line logged %v, want %v", from, !from, got, from)
		}
		if got := strings.Contains(l, "path=/api/orders/after"); got == from {
			t.Errorf("access_log reloaded to %v: the next request's line logged %v", !from, got)
		}
	}
}
