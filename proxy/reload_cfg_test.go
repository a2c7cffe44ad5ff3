package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A route removed by a reload loses its per-route series: the percent
// gauge must not go on saying 100 for a route that no longer exists, nor
// an ejection gauge stay at 1 and its alert never clear.
func TestReloadRemovedRouteLosesItsSeries(t *testing.T) {
	t.Parallel()
	// A request in flight through the reload, answered with a status the
	// route had not seen, must not bring a series of it back for good.
	hold, arrived := make(chan struct{}), make(chan struct{})
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/users/slow" {
			close(arrived)
			<-hold
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Header().Set("X-Served-By", "service")
	})
	e := newEnv(t, twoRoutes, flagJSON("orders-percent", 10, "users-percent", 100), nil, service)
	const series = `strangler_route_percent{route="users"}`
	if v := e.metric(series); v != 100 {
		t.Fatalf("%s = %v before the reload", series, v)
	}
	inFlight := make(chan int)
	go func() {
		resp, _ := e.get("/api/users/slow")
		inFlight <- resp.StatusCode
	}()
	<-arrived
	e.rewriteConfig(basicConfig) // route users removed
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	close(hold)
	if code := <-inFlight; code != http.StatusTeapot {
		t.Fatalf("the request in flight got %d", code)
	}
	for _, gone := range []string{`strangler_requests_total{backend="service",code="418",route="users"}`, `strangler_flag_errors_total{flag="users-percent"}`} {
		if v := e.metric(gone); v != -1 {
			t.Errorf("route users was removed by a reload, but /metrics still says %s %v", gone, v)
		}
	}
	if resp, _ := e.get("/api/users/1"); resp.Header.Get("X-Served-By") != "monolith" {
		t.Fatal("route users still routed after its removal")
	}
	for _, series := range []string{series, `strangler_service_ejected{route="users"}`} {
		if v := e.metric(series); v != -1 {
			t.Errorf("route users was removed by a reload, but /metrics still says %s %v", series, v)
		}
	}
	if v := e.metric(`strangler_route_percent{route="orders"}`); v != 10 {
		t.Errorf("the remaining route's percent is %v, want 10", v)
	}
	// Back in the config, the route counts again.
	e.rewriteConfig(twoRoutes)
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.get("/api/users/1"); resp.Header.Get("X-Served-By") != "service" {
		t.Fatal("route users not routed after it came back")
	}
	if v := e.metric(`strangler_requests_total{backend="service",code="200",route="users"}`); v != 1 {
		t.Errorf("route users, back in the config, counted %v requests, want 1", v)
	}
}

// Reload validates a config that was only parsed: unvalidated, it would
// panic on a default not set, or apply a value out of range.
func TestReloadValidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 10), nil, nil)
	y := strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(basicConfig) +
		"    shadow: {percent: 500}\n    preserve_host: true\npreserve_host: true\n"
	cfg, err := ParseConfig([]byte(y), e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		err = e.srv.Reload(cfg)
	}()
	switch {
	case panicked != nil:
		t.Errorf("Reload of an unvalidated config panicked: %v", panicked)
	case err == nil:
		t.Errorf("Reload accepted shadow.percent: 500 (it does not run Validate)")
	}
}

// serve reloads on SIGHUP and from the file watcher, possibly at once. The
// ejector's settings are shared across tables, so overlapping reloads must
// not leave one config's table with the other's settings.
func TestConcurrentReloadsInstallWholeTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 10), nil, nil)
	load := func(name string, n int) *Config {
		y := strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(basicConfig) +
			"    eject: {consecutive_failures: " + string(rune('0'+n)) + "}\n"
		p := filepath.Join(e.dir, name)
		writeFile(t, p, y)
		cfg, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	a, b := load("a.yaml", 1), load("b.yaml", 9)
	for round := range 300 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, c := range []*Config{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := e.srv.Reload(c); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		tb := e.srv.table.Load()
		want := *tb.cfg.Routes[0].Eject.ConsecutiveFailures
		got := tb.routes[0].eject.cfg.Load().threshold
		if int(got) != want {
			t.Fatalf("round %d: after two concurrent reloads the running table says eject.consecutive_failures %d, but the ejector applies %d", round, want, got)
		}
	}
}

// A setting that needs a restart is compared with the value in force, the
// one the process started with, not with the last reloaded file: putting
// it back is no change, and another reload still warns while it differs.
func TestReloadWarnsAgainstTheRunningSettings(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 10), nil, nil,
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	warnings := func() int { return strings.Count(logs.String(), "key=shadow_queue") }
	for i, c := range []struct {
		yaml string
		want int // warnings so far
	}{
		{"shadow_queue: 7\n" + basicConfig, 1},
		{"shadow_queue: 7\n" + basicConfig + "    timeouts: {connect: 3s}\n", 2}, // still not in force
		{basicConfig, 2}, // back to what runs
	} {
		e.rewriteConfig(c.yaml)
		if err := e.srv.ReloadFile(e.configPath()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if got := warnings(); got != c.want {
			t.Errorf("after reload %d: %d shadow_queue warnings, want %d:\n%s", i, got, c.want, logs.String())
		}
	}
}

// limits need a restart, so a reload is judged by the running ones: a
// sticky header with an underscore stays refused under the running
// underscore_headers: drop, even when the new file says allow.
func TestReloadJudgesStickyHeadersByTheRunningLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 10), nil, nil)
	e.rewriteConfig("limits: {underscore_headers: allow}\n" + strings.Replace(basicConfig, "header:X-User-Id", "header:X_User_Id", 1))
	err := e.srv.ReloadFile(e.configPath())
	if err == nil || !strings.Contains(err.Error(), "routes[0].sticky: header X_User_Id has an underscore, and limits.underscore_headers: drop") {
		t.Errorf("reload: %v, want the sticky header refused under the running limits", err)
	}
	if got := e.srv.table.Load().routes[0].cfg.Sticky; got != "header:X-User-Id" {
		t.Errorf("the running route's sticky is %q after a refused reload", got)
	}
}

// A reload lets go of what the new routes no longer send to: the idle
// connections to a removed upstream close at once (not at the idle
// timeout), and transports of timeouts no route names any more are
// dropped, however many reloads changed them.
func TestReloadReleasesUnusedUpstreams(t *testing.T) {
	t.Parallel()
	other, opened, closed := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "other")
	}))
	withUsers := basicConfig + "  - name: users\n    path: /api/users/*\n    service: " + other.URL + "\n"
	e := newEnv(t, withUsers, flagJSON("orders-percent", 0, "users-percent", 100), nil, nil)
	for _, path := range []string{"/api/users/1", "/api/users/2"} { // the direct path
		if resp, _ := e.get(path); resp.Header.Get("X-Served-By") != "other" {
			t.Fatalf("%s not served by the users service", path)
		}
	}
	if resp, _ := post(e, "/api/users/3", "x"); resp.Header.Get("X-Served-By") != "other" { // net/http's transport
		t.Fatal("POST not served by the users service")
	}
	if opened.Load() == 0 || closed.Load() == opened.Load() {
		t.Fatalf("%d connections opened, %d closed: none pooled", opened.Load(), closed.Load())
	}
	e.rewriteConfig(basicConfig) // route users removed
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the pooled connections to the removed upstream closed", func() bool {
		return closed.Load() == opened.Load()
	})

	for i := range 20 {
		e.rewriteConfig(basicConfig + fmt.Sprintf("    timeouts: {response_header: %ds}\n    shadow: {percent: 0, timeout: %ds}\n", i+1, i+1))
		if err := e.srv.ReloadFile(e.configPath()); err != nil {
			t.Fatal(err)
		}
	}
	e.srv.ts.mu.Lock()
	n := len(e.srv.ts.m)
	e.srv.ts.mu.Unlock()
	e.srv.shadowTS.mu.Lock()
	ns := len(e.srv.shadowTS.m)
	e.srv.shadowTS.mu.Unlock()
	if n > 2 || ns > 1 {
		t.Errorf("after 20 reloads with new timeouts: %d primary and %d shadow transports, want 2 and 1", n, ns)
	}
}

// Calls in flight when a reload drops their upstream finish, and their
// connections then close, not kept idle for timeouts.idle in a pool no
// route uses (a reload storm under load held thousands of them).
func TestReloadClosesConnectionsOfCallsInFlight(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 4), make(chan struct{})
	other, opened, closed := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		entered <- struct{}{}
		<-release
		w.Header().Set("X-Served-By", "other")
	}))
	withUsers := basicConfig + "  - name: users\n    path: /api/users/*\n    service: " + other.URL + "\n"
	e := newEnv(t, withUsers, flagJSON("orders-percent", 0, "users-percent", 100), nil, nil)
	served := make(chan string, 4)
	for i := range 3 { // the direct path
		go func() {
			resp, _ := e.get(fmt.Sprint("/api/users/", i))
			served <- resp.Header.Get("X-Served-By")
		}()
	}
	go func() { // net/http's transport
		resp, _ := post(e, "/api/users/9", "x")
		served <- resp.Header.Get("X-Served-By")
	}()
	for range 4 {
		<-entered
	}
	e.rewriteConfig(basicConfig) // route users removed
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	close(release)
	for range 4 {
		if by := <-served; by != "other" {
			t.Fatalf("a call in flight at the reload was answered by %q, want the users service", by)
		}
	}
	eventually(t, 5*time.Second, "the connections of the calls in flight closed", func() bool {
		return opened.Load() == 4 && closed.Load() == opened.Load()
	})
}

// countingServer serves h and counts the connections opened and closed.
func countingServer(t *testing.T, h http.Handler) (srv *httptest.Server, opened, closed *atomic.Int32) {
	opened, closed = new(atomic.Int32), new(atomic.Int32)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, opened, closed
}
