package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// configPath is the env's config file.
func (e *env) configPath() string { return filepath.Join(e.dir, "strangler.yaml") }

// rewriteConfig writes a new config with the env's backends.
func (e *env) rewriteConfig(yaml string) {
	e.t.Helper()
	yaml = strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(yaml)
	writeFile(e.t, e.configPath(), yaml)
}

const twoRoutes = basicConfig + `  - name: users
    path: /api/users/*
    service: {{service}}
`

// adminStatus is the status of GET path on the admin listener, with
// Authorization: auth unless auth is empty.
func (e *env) adminStatus(path, auth string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.adminURL+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReloadAppliesAGoodConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100, "users-percent", 100), nil, nil)
	if resp, _ := e.get("/api/users/1"); resp.Header.Get("X-Served-By") != "monolith" {
		t.Fatal("users routed before the reload")
	}
	e.rewriteConfig(twoRoutes)
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.get("/api/users/1"); resp.Header.Get("X-Served-By") != "service" {
		t.Error("new route not applied")
	}
	if e.metric("strangler_config_last_reload_successful") != 1 || e.metric("strangler_config_reload_errors_total") != 0 {
		t.Error("reload metrics")
	}
}

// A broken flag source does not block a config reload: taking a route
// out of the config must work while the flag file is mid-edit (or flagd
// down), and the running flags stay the last good ones.
func TestReloadDespiteBrokenFlags(t *testing.T) {
	t.Parallel()
	for name, broken := range map[string]string{
		"unparsable flag file": `{"flags": {`,
		"out-of-range percent": flagJSON("orders-percent", 150, "users-percent", 100),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, twoRoutes, flagJSON("orders-percent", 100, "users-percent", 100), nil, nil)
			if resp, _ := e.get("/api/users/1"); resp.Header.Get("X-Served-By") != "service" {
				t.Fatal("users not on the service before the reload")
			}
			writeFile(t, e.flagFile, broken)
			e.rewriteConfig(basicConfig) // users taken out
			if err := e.srv.ReloadFile(e.configPath()); err != nil {
				t.Fatalf("reload refused because of the flags: %v", err)
			}
			if resp, _ := e.get("/api/users/1"); resp.Header.Get("X-Served-By") != "monolith" {
				t.Error("the route taken out still routes")
			}
		})
	}
}

func TestReloadRefusesABadConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, nil)
	for i, bad := range []string{
		"listen: [",
		basicConfig + "bogus: 1\n",
		strings.Replace(basicConfig, "{{service}}", "htp:/x", 1),
		strings.Replace(basicConfig, "flags.json", "other.json", 1),
	} {
		e.rewriteConfig(bad)
		if err := e.srv.ReloadFile(e.configPath()); err == nil {
			t.Errorf("%d: accepted %q", i, bad)
		}
		if v := e.metric("strangler_config_reload_errors_total"); v != float64(i+1) {
			t.Errorf("%d: reload errors = %v", i, v)
		}
		if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.Header.Get("X-Served-By") != "service" {
			t.Fatalf("%d: a refused config changed the routing", i)
		}
	}
	if e.metric("strangler_config_last_reload_successful") != 0 {
		t.Error("last reload should be marked failed")
	}
}

func TestReloadUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 50, "users-percent", 50), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				path := "/api/orders/1"
				if i%2 == 0 {
					path = "/api/users/1"
				}
				req, _ := http.NewRequest("GET", e.proxyURL+path, nil)
				req.Header.Set("X-User-Id", fmt.Sprint(w, "-", i))
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for i := range 100 {
		switch i % 3 {
		case 0:
			e.rewriteConfig(twoRoutes)
		case 1:
			e.rewriteConfig(basicConfig)
		case 2:
			e.rewriteConfig("routes: {") // refused
		}
		e.srv.ReloadFile(e.configPath())
		// Interleave: a few requests between reloads.
		n := sent.Load()
		eventually(t, 5*time.Second, "requests flowing", func() bool { return sent.Load() >= n+2 })
	}
	cancel()
	wg.Wait()
	if failed.Load() != 0 || sent.Load() < 200 {
		t.Errorf("%d of %d requests failed across 100 reloads", failed.Load(), sent.Load())
	}
	if v := e.metric("strangler_config_reload_errors_total"); v != 33 {
		t.Errorf("reload errors = %v, want 33", v)
	}
}

func TestWatchConfigReloadsOnChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100, "users-percent", 100), nil, nil)
	e.watchConfig()
	// Replace by rename, as editors and kubelet do.
	tmp := e.configPath() + ".tmp"
	writeFile(t, tmp, strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(twoRoutes))
	if err := os.Rename(tmp, e.configPath()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "watched config applied", func() bool {
		resp, _ := e.get("/api/users/1")
		return resp.Header.Get("X-Served-By") == "service"
	})
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	writeFile(t, token, "s3cret\n")
	e := newEnv(t, basicConfig+"admin_token_file: "+token+"\n", flagJSON("orders-percent", 10), nil, nil)
	get := e.adminStatus
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/api/routes", "", 401},
		{"/api/routes", "Bearer wrong", 401},
		{"/api/routes", "Basic s3cret", 401},
		{"/api/routes", "Bearer s3cret", 200},
		{"/api/routes", "bearer s3cret", 200}, // the scheme is case-insensitive
		{"/api/routes", "BEARER s3cret", 200},
		{"/api/routes", "Bearers3cret", 401},
		{"/api/routes", "Bearer", 401},
		{"/api/diffs", "", 401},
		{"/api/diffs", "Bearer s3cret", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
	} {
		if got := get(c.path, c.auth); got != c.want {
			t.Errorf("%s with %q: %d, want %d", c.path, c.auth, got, c.want)
		}
	}
	// Rotated: the new token works at once, the old one no more.
	writeFile(t, token, "n3w-token-longer")
	eventually(t, 2*time.Second, "rotated token", func() bool { return get("/api/routes", "Bearer n3w-token-longer") == 200 })
	if get("/api/routes", "Bearer s3cret") != 401 {
		t.Error("old token still accepted")
	}
	// Gone: nobody gets in.
	os.Remove(token)
	if get("/api/routes", "Bearer n3w-token-longer") != 401 {
		t.Error("a missing token file opened the API")
	}
}

func TestValidateWarnsOnOpenAdmin(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, strings.Replace(validConfig(""), "admin_listen: 127.0.0.1:9090", "admin_listen: 0.0.0.0:9090", 1))
	if err != nil {
		t.Fatal(err)
	}
	warnings, _ := Check(cfg)
	if len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), "admin_token_file is not set") {
		t.Errorf("warnings %q", warnings)
	}
}

// A DISABLED flag is valid, but its route serves only the monolith (or,
// for a shadow flag, compares nothing): validate says so.
func TestValidateWarnsOnDisabledFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, validConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg.FlagFile(), `{"flags": {
		"orders-percent": {"state": "DISABLED", "variants": {"on": 10}, "defaultVariant": "on"},
		"orders-shadow": {"state": "DISABLED", "variants": {"on": 100}, "defaultVariant": "on"}}}`)
	warnings, err := Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(warnings, "\n")
	for _, want := range []string{
		`routes[0].flag: flag "orders-percent" is DISABLED in`,
		`routes[0].shadow.flag: flag "orders-shadow" is DISABLED in`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
}

// watchConfig runs the config watcher, polling every 20 ms, until the
// test ends.
func (e *env) watchConfig() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.srv.WatchConfig(ctx, e.configPath(), 20*time.Millisecond); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// An admin token file that cannot be read denies everyone, as a plain 401
// to the caller; the log says why, once, not once per request.
func TestAdminTokenGoneIsLogged(t *testing.T) {
	t.Parallel()
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, "s3cret\n")
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig+"admin_token_file: "+token+"\n", flagJSON("orders-percent", 10), nil, nil,
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := e.adminStatus("/api/routes", "Bearer s3cret"); got != 200 {
		t.Fatalf("with the token: %d", got)
	}
	if strings.Contains(logs.String(), "admin token") {
		t.Fatalf("logged with the file in place:\n%s", logs.String())
	}
	os.Remove(token)
	for range 3 {
		if got := e.adminStatus("/api/routes", "Bearer s3cret"); got != 401 {
			t.Errorf("token file gone: %d, want 401", got)
		}
	}
	want := `level=ERROR msg="admin token file cannot be read: /api/* denies everyone until it can" admin_token_file=` + token
	if n := strings.Count(logs.String(), want); n != 1 {
		t.Errorf("the log has %d lines %q, want 1:\n%s", n, want, logs.String())
	}
}

// What serve warns of at startup (a route's flag missing from the flag
// file, a DISABLED flag) it warns of after a reload too, once the config
// is in force: the warnings were dropped, and a route added with a
// misspelt flag sat on the monolith without a word.
func TestReloadLogsCheckWarnings(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig, `{"flags": {
		"orders-percent": {"state": "ENABLED", "variants": {"on": 100}, "defaultVariant": "on"},
		"users-percent": {"state": "DISABLED", "variants": {"on": 100}, "defaultVariant": "on"}}}`, nil, nil,
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if strings.Contains(logs.String(), "warning") {
		t.Fatalf("warned before the reload:\n%s", logs.String())
	}
	e.rewriteConfig(twoRoutes + `  - name: carts
    path: /api/carts/*
    service: {{service}}
    flag: carts-pct
`)
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`routes[1].flag: flag \"users-percent\" is DISABLED in`,
		`routes[2].flag: flag \"carts-pct\" is not in`,
	} {
		if !strings.Contains(logs.String(), `level=WARN msg="config reload: applied with a warning" warning="`+want) {
			t.Errorf("the log lacks a warning %s:\n%s", want, logs.String())
		}
	}
}

// The open-admin warning after a reload is about the address the admin
// API listens on, which admin_listen changes only at a restart: a file
// that moves it beyond loopback opens nothing yet, and one that moves it
// back leaves it open until then.
func TestReloadWarnsOfTheRunningAdminAddress(t *testing.T) {
	t.Parallel()
	const open = "is reachable from other hosts"
	for _, tc := range []struct{ running, file, want string }{
		{"127.0.0.1:0", "0.0.0.0:9999", ""},
		{"0.0.0.0:0", "127.0.0.1:0", "admin_listen: 0.0.0.0:0 (where the admin API listens until a restart) " + open},
		{"0.0.0.0:0", "0.0.0.0:0", "admin_listen: 0.0.0.0:0 " + open},
	} {
		t.Run(tc.running+" to "+tc.file, func(t *testing.T) {
			t.Parallel()
			var logs lockedBuffer
			withAdmin := func(addr string) string {
				return strings.Replace(basicConfig, "admin_listen: 127.0.0.1:0", "admin_listen: "+addr, 1)
			}
			e := newEnvWith(t, withAdmin(tc.running), flagJSON("orders-percent", 10), nil, nil,
				Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			e.rewriteConfig(withAdmin(tc.file))
			if err := e.srv.ReloadFile(e.configPath()); err != nil {
				t.Fatal(err)
			}
			got := logs.String()
			if tc.want == "" && strings.Contains(got, open) {
				t.Errorf("warned of an admin API open to other hosts that is not:\n%s", got)
			}
			if tc.want != "" && !strings.Contains(got, `msg="config reload: applied with a warning" warning="`+tc.want) {
				t.Errorf("the log lacks %q:\n%s", tc.want, got)
			}
		})
	}
}
