package proxy

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestWatcherDoesNotRetryWhatSIGHUPRefused: an edit refused on SIGHUP is
// refused once: the watcher, which does not retry content it refused
// itself while the file keeps it, does not retry it either (two errors
// logged and counted for one bad edit), and applies the next edit.
func TestWatcherDoesNotRetryWhatSIGHUPRefused(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 10), nil, nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	e.rewriteConfig(basicConfig + "bogus: 1\n")
	if err := e.srv.ReloadFile(e.configPath()); err == nil { // SIGHUP
		t.Fatal("a config with an unknown key was applied")
	}
	e.watchConfig()
	// The watcher acts on content it has seen twice, 20 ms apart: give it
	// ten times that to retry (a wait for something not to happen has no
	// event to poll for).
	time.Sleep(400 * time.Millisecond)
	e.replaceConfig("access_log: true\n" + basicConfig)
	eventually(t, 10*time.Second, "the next edit applied", func() bool { return e.srv.table.Load().cfg.AccessLog })
	if v := e.metric("strangler_config_reload_errors_total"); v != 1 {
		t.Errorf("one bad edit: strangler_config_reload_errors_total = %v, want 1; log:\n%s", v, logs.String())
	}
}

// replaceConfig replaces the config file whole (an editor's rename), not
// truncated then written: a watcher polling every 20 ms can see an empty
// file for two polls on a busy machine.
func (e *env) replaceConfig(yaml string) {
	e.t.Helper()
	tmp := e.configPath() + ".new"
	writeFile(e.t, tmp, strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(yaml))
	if err := os.Rename(tmp, e.configPath()); err != nil {
		e.t.Fatal(err)
	}
}

// TestWatcherRetriesWhatSIGHUPRefusedOnceTheFileChanged: refused on SIGHUP
// for a token file that is missing, put back, then written again once the
// token file exists, the same content is applied by the watcher, as its
// own refusals are.
func TestWatcherRetriesWhatSIGHUPRefusedOnceTheFileChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 10), nil, nil)
	token := filepath.Join(t.TempDir(), "token")
	withToken := basicConfig + "admin_token_file: " + token + "\n"
	e.replaceConfig(withToken)
	if err := e.srv.ReloadFile(e.configPath()); err == nil {
		t.Fatal("applied without its token file")
	}
	e.watchConfig()
	e.replaceConfig(basicConfig)
	eventually(t, 10*time.Second, "the gauge back to 1", func() bool { return e.metric("strangler_config_last_reload_successful") == 1 })
	writeFile(t, token, "s3cret\n")
	e.replaceConfig(withToken)
	eventually(t, 10*time.Second, "the same content tried again and applied", func() bool { return e.srv.table.Load().cfg.AdminTokenFile != "" })
}
