package proxy

// Behaviour of config.go, check.go and reload.go that a hand mutation test
// found no other test pinning: each test here fails with a specific small
// change to those files (a bound moved by one, a check dropped, a default
// changed) that no other test noticed.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The documented defaults (README, "Optional top-level keys" and "Shadow
// comparison"), written as the values themselves: a test comparing with
// DefaultRead would follow a changed constant.
func TestPinnedConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, validConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"timeouts.read", time.Duration(cfg.Timeouts.Read), 60 * time.Second},
		{"timeouts.send", time.Duration(cfg.Timeouts.Send), 60 * time.Second},
		{"routes[0].timeouts.read", time.Duration(r.Timeouts.Read), 60 * time.Second},
		{"routes[0].timeouts.send", time.Duration(r.Timeouts.Send), 60 * time.Second},
		{"routes[0].shadow.max_body", int64(r.Shadow.MaxBody), int64(1 << 20)},
		{"shadow_memory", int64(cfg.ShadowMemory), int64(64 << 20)},
		{"shadow_workers", cfg.ShadowWorkers, min(4*runtime.GOMAXPROCS(0), 10000)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// A route's timeouts inherit the top level's field by field, each from the
// field of the same name (timeouts.read and timeouts.send default alike,
// so only distinct values tell them apart).
func TestPinnedRouteTimeoutsInheritFieldByField(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, validConfig("    timeouts: {connect: 6s}\n"+
		"timeouts: {connect: 1s, response_header: 2s, read: 3s, send: 4s, idle: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Routes[0].Timeouts
	want := Timeouts{Connect: Duration(6 * time.Second), ResponseHeader: Duration(2 * time.Second),
		Read: Duration(3 * time.Second), Send: Duration(4 * time.Second), Idle: Duration(5 * time.Second)}
	if got != want {
		t.Errorf("routes[0].timeouts = %+v, want %+v", got, want)
	}
}

// Each bound is pinned on both sides: the last value accepted and the
// first refused.
func TestPinnedConfigBounds(t *testing.T) {
	t.Parallel()
	flagd := func(port string) string {
		return strings.Replace(validConfig(""), "file: flags.json", "flagd: {host: flagd, port: "+port+"}", 1)
	}
	listen := func(addr string) string {
		return strings.Replace(validConfig(""), "listen: 127.0.0.1:8080", "listen: '"+addr+"'", 1)
	}
	monolith := func(url string) string {
		return strings.Replace(validConfig(""), "monolith: http://127.0.0.1:8081", "monolith: '"+url+"'", 1)
	}
	validateCases(t, []configCase{
		{"workers zero is the default", validConfig("shadow_workers: 0\n"), ""},
		{"workers negative", validConfig("shadow_workers: -1\n"), "shadow_workers: must not be negative"},
		{"queue zero is the default", validConfig("shadow_queue: 0\n"), ""},
		{"queue negative", validConfig("shadow_queue: -1\n"), "shadow_queue: must not be negative"},
		{"eject off", validConfig("    eject: {consecutive_failures: 0}\n"), ""},
		{"eject negative", validConfig("    eject: {consecutive_failures: -1}\n"), "routes[0].eject.consecutive_failures: must not be negative"},
		{"max_time equal to base_time", validConfig("    eject: {base_time: 1m, max_time: 1m}\n"), ""},
		{"max_time below base_time", validConfig("    eject: {base_time: 1m, max_time: 59s}\n"), "routes[0].eject.max_time: 59s is less than base_time 1m0s"},
		{"header bytes at the minimum", validConfig("limits: {max_header_bytes: 1KiB}\n"), ""},
		{"header bytes below the minimum", validConfig("limits: {max_header_bytes: 1023}\n"), "limits.max_header_bytes: 1023 is outside 1KiB..1MiB"},
		{"header bytes at the maximum", validConfig("limits: {max_header_bytes: 1MiB}\n"), ""},
		{"header bytes above the maximum", validConfig("limits: {max_header_bytes: 1048577}\n"), "limits.max_header_bytes: 1048577 is outside 1KiB..1MiB"},
		{"header count negative", validConfig("limits: {max_header_count: -1}\n"), "limits.max_header_count: must be positive"},
		{"shadow percent NaN", validConfig("    shadow: {percent: .nan}\n"), "routes[0].shadow.percent: NaN is outside 0..100"},
		{"shadow body at the maximum", validConfig("    shadow: {max_body: 64MiB}\n"), ""},
		{"shadow body above the maximum", validConfig("    shadow: {max_body: 67108865}\n"), "routes[0].shadow.max_body: 67108865 bytes is more than the 64MiB a comparison may hold"},
		{"fallback body at the maximum", validConfig("    fallback: {max_body: 64MiB}\n"), ""},
		{"fallback body above the maximum", validConfig("    fallback: {max_body: 67108865}\n"), "routes[0].fallback.max_body: 67108865 bytes is more than the 64MiB a request may hold for replay"},
		{"flagd port at the maximum", flagd("65535"), ""},
		{"flagd port above the maximum", flagd("65536"), "flags.flagd.port: 65536 is not a port"},
		{"flagd port negative", flagd("-1"), "flags.flagd.port: -1 is not a port"},
		{"listen port at the maximum", listen("127.0.0.1:65535"), ""},
		{"listen port above the maximum", listen("127.0.0.1:65536"), `listen: invalid port in "127.0.0.1:65536"`},
		{"listen port negative", listen("127.0.0.1:-1"), `listen: invalid port in "127.0.0.1:-1"`},
		{"upstream port at the minimum", monolith("http://127.0.0.1:1"), ""},
		{"upstream port at the maximum", monolith("http://127.0.0.1:65535"), ""},
		{"upstream port zero", monolith("http://127.0.0.1:0"), `monolith: invalid URL "http://127.0.0.1:0": bad port`},
		{"upstream port above the maximum", monolith("http://127.0.0.1:65536"), `monolith: invalid URL "http://127.0.0.1:65536": bad port`},
	})
}

// A duration of one nanosecond below zero is as negative as any.
func TestPinnedNegativeDurationRefused(t *testing.T) {
	t.Parallel()
	_, err := parseAndValidate(t, validConfig("shutdown_timeout: -1ns\n"))
	if err == nil || !strings.Contains(err.Error(), `shutdown_timeout: line 13: invalid duration "-1ns": negative`) {
		t.Errorf("shutdown_timeout: -1ns: got %v, want it refused as negative", err)
	}
}

// ParseSize trims the spaces around the whole value, not only those
// between the number and its unit (a quoted YAML value keeps them).
func TestPinnedParseSizeTrimsSpaces(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Size{"1024 ": 1024, " 1024": 1024, " 1KiB ": 1024, "\t2MiB": 2 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	_, err := parseAndValidate(t, validConfig("    max_body: '64KiB '\n"))
	if err != nil {
		t.Errorf("max_body: '64KiB ' refused: %v", err)
	}
}

// A Duration or Size decoded by yaml on its own (outside LoadConfig, which
// checks every value first) names the line of the value it refuses.
func TestPinnedUnmarshalNamesTheLine(t *testing.T) {
	t.Parallel()
	var v struct {
		A Duration `yaml:"a"`
		B Duration `yaml:"b"`
		C Size     `yaml:"c"`
	}
	err := yaml.Unmarshal([]byte("a: 1s\n\nb: 5\nc: 1MB\n"), &v)
	if err == nil || !strings.Contains(err.Error(), `line 3: invalid duration "5"`) || !strings.Contains(err.Error(), `line 4: invalid size "1MB"`) {
		t.Errorf("got %v, want the problems of lines 3 and 4", err)
	}
	if time.Duration(v.A) != time.Second {
		t.Errorf("a = %v, want 1s: one bad value must not stop the rest", time.Duration(v.A))
	}
}

// What Validate refuses of a route and of the top level, beside what other
// tests pin; each case is one problem, exactly.
func TestPinnedConfigRefusals(t *testing.T) {
	t.Parallel()
	route := func(from, to string) string { return strings.Replace(validConfig(""), from, to, 1) }
	validateCases(t, []configCase{
		{"route without a name", route("  - name: orders\n", "  - flag: orders-percent\n"), "routes[0].name: required"},
		{"route name with an underscore", route("name: orders", "name: my_orders"), `routes[0].name: invalid name "my_orders" (use lower-case letters, digits and -)`},
		{"secret header with a space", validConfig("secret_headers: [X-Api-Key, 'X Token']\n"), `secret_headers[1]: invalid header name "X Token"`},
		{"shadow ignore_headers with a colon", validConfig("    shadow: {ignore_headers: ['X-Trace:']}\n"), `routes[0].shadow.ignore_headers[0]: invalid header name "X-Trace:"`},
		{"CONNECT method", route("[GET, post]", "[GET, CONNECT]"), "routes[0].methods[1]: CONNECT is refused before routing (a reverse proxy has no tunnel to offer)"},
		{"fallback on 5xx", validConfig("    fallback: {on: [connect, 5xx]}\n"), ""},
		{"fallback on an unknown failure", validConfig("    fallback: {on: [4xx]}\n"), `routes[0].fallback.on[0]: "4xx": want connect, reset, timeout or 5xx`},
		{"service with a user", route("service: http://127.0.0.1:8082", "service: 'http://u:p@127.0.0.1:8082'"),
			`routes[0].service: invalid URL "http://u:p@127.0.0.1:8082" (want http://host:port or https://host:port, optionally with a path prefix)`},
		{"service with a query", route("service: http://127.0.0.1:8082", "service: 'http://127.0.0.1:8082/v2?x=1'"),
			`routes[0].service: invalid URL "http://127.0.0.1:8082/v2?x=1" (want http://host:port or https://host:port, optionally with a path prefix)`},
		{"service with a fragment", route("service: http://127.0.0.1:8082", "service: 'http://127.0.0.1:8082/v2#top'"),
			`routes[0].service: invalid URL "http://127.0.0.1:8082/v2#top" (want http://host:port or https://host:port, optionally with a path prefix)`},
		{"service with a path prefix", route("service: http://127.0.0.1:8082", "service: 'https://127.0.0.1:8082/v2'"), ""},
		{"pattern with a stray closing brace", route("/api/orders/*", "/api/orders}"), `routes[0].path: invalid pattern "/api/orders}": unbalanced braces`},
		{"sticky query without a name", route("header:X-User-Id", "'query:'"), `routes[0].sticky: invalid sticky "query:": query needs a name (query:NAME)`},
		{"sticky header without a name", route("header:X-User-Id", "'header:'"), `routes[0].sticky: invalid sticky "header:": header needs a name (header:NAME)`},
	})
}

// Two routes of one pattern clash when their methods overlap, and a route
// without methods has every method: it clashes with any other of the same
// pattern, before or after it. One that clashed stays in the index for
// the methods the earlier route lacks.
func TestPinnedPatternClashWithAllMethods(t *testing.T) {
	t.Parallel()
	const head = `listen: 127.0.0.1:8080
monolith: http://127.0.0.1:8081
flags: {file: flags.json}
routes:
`
	validateCases(t, []configCase{
		{"all methods, then GET", head + `  - {name: a, path: /x/*, service: 'http://127.0.0.1:1'}
  - {name: b, path: /x/*, methods: [GET], service: 'http://127.0.0.1:1'}
`, `routes[1].path: "/x/*" is already routed by routes[0] (a) for the same methods`},
		{"GET, then all methods", head + `  - {name: a, path: /x/*, methods: [GET], service: 'http://127.0.0.1:1'}
  - {name: b, path: '/x/*', service: 'http://127.0.0.1:1'}
`, `routes[1].path: "/x/*" is already routed by routes[0] (a) for the same methods`},
		{"GET, all methods, then POST", head + `  - {name: a, path: '/x/{id}', methods: [GET], service: 'http://127.0.0.1:1'}
  - {name: b, path: '/x/{id}', service: 'http://127.0.0.1:1'}
  - {name: c, path: '/x/{uid}', methods: [POST], service: 'http://127.0.0.1:1'}
`, `routes[1].path: "/x/{id}" is already routed by routes[0] (a) for the same methods
routes[2].path: "/x/{uid}" is already routed by routes[1] (b) as "/x/{id}" for the same methods: chi ignores parameter names, so only one of the two would get requests`},
		{"GET, then POST", head + `  - {name: a, path: /x/*, methods: [GET], service: 'http://127.0.0.1:1'}
  - {name: b, path: /x/*, methods: [POST], service: 'http://127.0.0.1:1'}
`, ""},
	})
}

// Sticky keys parseSticky refuses beside those other tests pin.
func TestPinnedStickyRefused(t *testing.T) {
	t.Parallel()
	for sticky, want := range map[string]string{
		`'header:X User'`: `routes[0].sticky: invalid sticky "header:X User": bad header name`,
		`'query:a#b'`:     `routes[0].sticky: invalid sticky "query:a#b": a query parameter's name has no spaces at its ends and no =, & or #: "a#b" would never be found and every request would fall back to the client address`,
		`'ip:x'`:          `routes[0].sticky: invalid sticky "ip:x": ip takes no name`,
		`'random:'`:       `routes[0].sticky: invalid sticky "random:": random takes no name`,
		`'query:a-b'`:     "",
		`random`:          "",
	} {
		t.Run(sticky, func(t *testing.T) {
			t.Parallel()
			_, err := parseAndValidate(t, strings.Replace(validConfig(""), "header:X-User-Id", sticky, 1))
			wantConfigError(t, err, want)
		})
	}
}

// What Check makes a warning and what an error, and what the error says of
// itself (FlagsOnly: serve starts with such a route on the monolith, where
// a flag source that does not load stops it).
func TestPinnedCheckWarningsAndErrors(t *testing.T) {
	t.Parallel()
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, "s3cret-token\n")
	const open = "admin_token_file is not set"
	ok := flagJSON("orders-percent", 10)
	dup := `{"flags":{
"orders-percent":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
"orders-percent":{"state":"ENABLED","variants":{"on":20},"defaultVariant":"on"}}}`
	cases := []struct {
		name, admin, extra, flags string
		warn                      string // a warning holding it; "" for no warning of an open admin API
		err                       string // the one problem (its start for a broken flag file); "" for none
		flagsOnly                 bool
	}{
		{name: "public admin with a token", admin: "0.0.0.0:9091", extra: "admin_token_file: " + token + "\n", flags: ok},
		{name: "admin on localhost", admin: "localhost:9091", flags: ok},
		{name: "admin on [::1]", admin: "'[::1]:9091'", flags: ok},
		{name: "public admin without a token", admin: "0.0.0.0:9091", flags: ok,
			warn: "admin_listen: 0.0.0.0:9091 is reachable from other hosts and admin_token_file is not set"},
		{name: "shadow flag out of range", flags: flagJSON("orders-percent", 10, "orders-shadow", 150),
			err: `routes[0].shadow.flag: flag value outside 0..100: flag "orders-shadow" variant "on" is 150 (flags.json line 1)`, flagsOnly: true},
		{name: "route flag out of range on line 1", flags: flagJSON("orders-percent", 150),
			err: `routes[0].flag: flag value outside 0..100: flag "orders-percent" variant "on" is 150 (flags.json line 1)`, flagsOnly: true},
		{name: "route flag defined twice", flags: dup, // its lines are in the message: not again after it
			err: `routes[0].flag: flag defined more than once: flag "orders-percent" is defined 2 times (lines 2, 3): the one at line 3 counts, which an editor hides; remove the others`, flagsOnly: true},
		{name: "flag file broken", flags: "{", err: "flags.file: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			y := validConfig(c.extra)
			if c.admin != "" {
				y = strings.Replace(y, "admin_listen: 127.0.0.1:9090", "admin_listen: "+c.admin, 1)
			}
			cfg, err := parseAndValidate(t, y)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, cfg.FlagFile(), c.flags)
			warnings, err := Check(cfg)
			all := strings.Join(warnings, "\n")
			switch {
			case c.warn == "" && strings.Contains(all, open):
				t.Errorf("warned of an open admin API that is not: %q", warnings)
			case c.warn != "" && !strings.Contains(all, c.warn):
				t.Errorf("warnings %q lack %q", warnings, c.warn)
			}
			var ce *ConfigError
			switch {
			case c.err == "":
				if err != nil {
					t.Errorf("error: %v", err)
				}
				return
			case !errors.As(err, &ce):
				t.Fatalf("error %v, want a *ConfigError %q", err, c.err)
			case len(ce.Problems) != 1 || !strings.HasPrefix(ce.Problems[0], c.err) || c.flagsOnly && ce.Problems[0] != c.err:
				t.Errorf("problems %q, want %q", ce.Problems, c.err)
			}
			if ce.FlagsOnly() != c.flagsOnly {
				t.Errorf("FlagsOnly() = %v, want %v", ce.FlagsOnly(), c.flagsOnly)
			}
		})
	}
}

// A reload that names another flag file is refused (the running source
// watches the old one), and the running config stays in force.
func TestPinnedReloadRefusesAnotherFlagFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	writeFile(t, filepath.Join(e.dir, "other.json"), flagJSON("orders-percent", 100))
	e.rewriteConfig(strings.Replace(basicConfig, "file: flags.json", "file: other.json", 1))
	err := e.srv.ReloadFile(e.configPath())
	if err == nil || err.Error() != "flags: changing the flag source needs a restart" {
		t.Fatalf("reload naming another flag file: %v; want it refused", err)
	}
	if got := e.srv.table.Load().cfg.FlagFile(); got != filepath.Join(e.dir, "flags.json") {
		t.Errorf("the running config's flag file is %s after a refused reload", got)
	}
	if v := e.metric("strangler_config_last_reload_successful"); v != 0 {
		t.Errorf("strangler_config_last_reload_successful = %v after a refused reload, want 0", v)
	}
}

// reloadFlagd reloads a Server that holds only a config reading flags
// from flagd at running (a YAML mapping) with one reading them from next.
// Past the flag source check, such a Server has nothing to reload with:
// going on past it is an error that says so.
func reloadFlagd(t *testing.T, running, next string) (old *Config, err error) {
	t.Helper()
	load := func(flagd string) *Config {
		t.Helper()
		cfg, err := parseAndValidate(t, strings.Replace(validConfig(""), "file: flags.json", "flagd: "+flagd, 1))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old, cfg := load(running), load(next)
	s := &Server{cfg: old, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.table.Store(&table{cfg: old})
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("went on past the flag source: %v", r)
		}
	}()
	return old, s.Reload(cfg)
}

// A change of flagd daemon (host, port, mode or selector) is a change of
// flag source too. Reload refuses it before anything else, so a Server
// holding only its config shows it without a daemon to talk to.
func TestPinnedReloadRefusesAnotherFlagd(t *testing.T) {
	t.Parallel()
	const running = "{host: flagd, port: 8015, mode: in-process, selector: a}"
	for _, next := range []string{
		"{host: flagd2, port: 8015, mode: in-process, selector: a}",
		"{host: flagd, port: 9015, mode: in-process, selector: a}",
		"{host: flagd, port: 8015, mode: rpc, selector: a}",
		"{host: flagd, port: 8015, mode: in-process, selector: b}",
	} {
		t.Run(next, func(t *testing.T) {
			t.Parallel()
			if _, err := reloadFlagd(t, running, next); err == nil || err.Error() != "flags: changing the flag source needs a restart" {
				t.Errorf("reload from flagd %s to %s: %v; want it refused", running, next, err)
			}
		})
	}
}

// Leaving flagd's port out means its default port for the mode, so a
// reload that writes the default out is the same flag source, not a change
// needing a restart. Messages name the port dialled, not 0.
func TestFlagdDefaultPortIsTheSameSource(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ running, next, source string }{
		{"{host: flagd}", "{host: flagd, port: 8015}", "flagd at flagd:8015 (in-process)"},
		{"{host: flagd, port: 8015, mode: in-process}", "{host: flagd}", "flagd at flagd:8015 (in-process)"},
		{"{host: flagd, mode: rpc}", "{host: flagd, port: 8013, mode: rpc}", "flagd at flagd:8013 (rpc)"},
	} {
		t.Run(c.running+" to "+c.next, func(t *testing.T) {
			t.Parallel()
			old, err := reloadFlagd(t, c.running, c.next)
			if got := old.flagSource(); got != c.source {
				t.Errorf("flag source %q, want %q", got, c.source)
			}
			if err == nil || !strings.HasPrefix(err.Error(), "went on past the flag source") {
				t.Errorf("reload: %v; want it past the flag source check", err)
			}
		})
	}
}

// Whether a reload drops the admin token is judged against the config in
// force, not the one the process started with: a token added by a reload
// is not dropped by the next while the admin API listens beyond loopback.
func TestPinnedReloadKeepsATokenAddedByAReload(t *testing.T) {
	t.Parallel()
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, "s3cret-admin-token\n")
	public := strings.Replace(basicConfig, "admin_listen: 127.0.0.1:0", "admin_listen: 0.0.0.0:19091", 1)
	e := newEnv(t, public, flagJSON("orders-percent", 0), nil, nil)
	e.rewriteConfig(public + "admin_token_file: " + tok + "\n")
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatalf("reload adding the token: %v", err)
	}
	if code := e.adminStatus("/api/routes", ""); code != 401 {
		t.Fatalf("/api/routes without the token after it was added: %d, want 401", code)
	}
	e.rewriteConfig(public)
	err := e.srv.ReloadFile(e.configPath())
	if err == nil || !strings.HasPrefix(err.Error(), "admin_token_file: the admin API listens on 0.0.0.0:19091") {
		t.Errorf("reload dropping the token added by a reload: %v; want it refused", err)
	}
	if code := e.adminStatus("/api/routes", ""); code != 401 {
		t.Errorf("/api/routes without the token after the refused reload: %d, want 401", code)
	}
}

// Each key bound to the process (listeners, limits, the shadow pool, the
// shutdown) is logged as needing a restart when a reload changes it, and
// only that key.
func TestPinnedReloadNamesEachRestartKey(t *testing.T) {
	t.Parallel()
	restart := regexp.MustCompile(`needs a restart; the old value stays in force" key=(\S+)`)
	for key, change := range map[string]string{
		"listen":           "listen: 127.0.0.1:1\n",
		"admin_listen":     "admin_listen: 127.0.0.1:2\n",
		"limits":           "limits: {max_header_count: 50}\n",
		"shadow_workers":   "shadow_workers: 3\n",
		"shadow_queue":     "shadow_queue: 7\n",
		"shadow_memory":    "shadow_memory: 32MiB\n",
		"shutdown_timeout": "shutdown_timeout: 9s\n",
	} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			var logs lockedBuffer
			e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 10), nil, nil,
				Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			// basicConfig with key set to another value.
			e.rewriteConfig(change + regexp.MustCompile(`(?m)^`+key+`:.*\n`).ReplaceAllString(basicConfig, ""))
			if err := e.srv.ReloadFile(e.configPath()); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, m := range restart.FindAllStringSubmatch(logs.String(), -1) {
				keys = append(keys, m[1])
			}
			if len(keys) != 1 || keys[0] != key {
				t.Errorf("a reload changing %s logged restart warnings for %q, want [%s]:\n%s", key, keys, key, logs.String())
			}
		})
	}
}

// A reload refused for the running config's own content (its token file
// went missing) leaves the failed-reload gauge at 0 while the file keeps
// that content: nothing was put back, and the file still fails.
func TestPinnedRefusedRunningContentKeepsTheGaugeDown(t *testing.T) {
	t.Parallel()
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, "s3cret-admin-token\n")
	e := newEnv(t, basicConfig+"admin_token_file: "+tok+"\n", flagJSON("orders-percent", 10), nil, nil)
	if err := os.Remove(tok); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadFile(e.configPath()); err == nil {
		t.Fatal("reload with the token file gone: accepted")
	}
	if v := e.metric("strangler_config_last_reload_successful"); v != 0 {
		t.Fatalf("strangler_config_last_reload_successful = %v after a refused reload, want 0", v)
	}
	e.watchConfig() // polls every 20 ms
	time.Sleep(300 * time.Millisecond)
	if v := e.metric("strangler_config_last_reload_successful"); v != 0 {
		t.Errorf("strangler_config_last_reload_successful = %v while the file holds the content just refused, want 0", v)
	}
}

// A flag file that is a directory is refused by Validate, naming it.
func TestPinnedFlagFileIsADirectory(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, strings.Replace(validConfig(""), "file: flags.json", "file: .", 1))
	if err == nil || err.Error() != fmt.Sprintf("flags.file: %q is a directory", cfg.FlagFile()) {
		t.Errorf("flags.file naming a directory: %v", err)
	}
}
