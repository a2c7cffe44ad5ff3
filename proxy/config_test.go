package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func validConfig(extra string) string {
	return `
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
monolith: http://127.0.0.1:8081
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    methods: [GET, post]
    service: http://127.0.0.1:8082
    sticky: header:X-User-Id
` + extra
}

func parseAndValidate(t *testing.T, yaml string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 10))
	cfg, err := ParseConfig([]byte(yaml), dir)
	if err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

// wantConfigError checks a config's outcome: accepted when want is "",
// else refused with exactly want. It reports whether the outcome was right.
func wantConfigError(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("refused: %v", err)
	case want != "" && (err == nil || err.Error() != want):
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	default:
		return true
	}
	return false
}

// configCase is a config and the problems Validate reports for it, one
// per line ("" when it is accepted).
type configCase struct{ name, yaml, want string }

// validateCases runs each case as a parallel subtest.
func validateCases(t *testing.T, cases []configCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseAndValidate(t, c.yaml)
			wantConfigError(t, err, c.want)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, validConfig(`timeouts: {connect: 250ms}
shutdown_timeout: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if r.Flag != "orders-percent" {
		t.Errorf("flag = %q, want the default orders-percent", r.Flag)
	}
	if got := r.Methods; strings.Join(got, ",") != "GET,POST" {
		t.Errorf("methods = %v", got)
	}
	if !*r.PreserveHost {
		t.Error("preserve_host should default to true")
	}
	if time.Duration(r.Timeouts.Connect) != 250*time.Millisecond || time.Duration(r.Timeouts.ResponseHeader) != DefaultResponseHeader || time.Duration(r.Timeouts.Idle) != DefaultIdle ||
		time.Duration(r.Timeouts.Read) != DefaultRead || time.Duration(r.Timeouts.Send) != DefaultSend {
		t.Errorf("timeouts = %+v", r.Timeouts)
	}
	if time.Duration(cfg.ShutdownTimeout) != 3*time.Second {
		t.Errorf("shutdown_timeout = %v", cfg.ShutdownTimeout)
	}
	if want := filepath.Join(cfg.dir, "flags.json"); cfg.FlagFile() != want {
		t.Errorf("flag file %q, want %q (relative to the config)", cfg.FlagFile(), want)
	}
}

func TestConfigErrorsNameTheirPlace(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // each must appear as (part of) one line
	}{
		{"unknown top-level key", validConfig("lisen: x\n"), []string{"lisen: unknown key (line"}},
		{"unknown route key", strings.Replace(validConfig(""), "service:", "servce:", 1), []string{"routes[0].servce: unknown key (line 11)"}},
		{"bad service URL", strings.Replace(validConfig(""), "http://127.0.0.1:8082", "htp:/x", 1), []string{`routes[0].service: invalid URL "htp:/x"`}},
		{"bad monolith URL", strings.Replace(validConfig(""), "http://127.0.0.1:8081", "127.0.0.1:8081", 1), []string{`monolith: invalid URL "127.0.0.1:8081"`}},
		{"monolith URL without a host", strings.Replace(validConfig(""), "http://127.0.0.1:8081", "http://:8081", 1), []string{`monolith: invalid URL "http://:8081": no host`}},
		{"service URL without a host", strings.Replace(validConfig(""), "http://127.0.0.1:8082", "https://:8082/v2", 1), []string{`routes[0].service: invalid URL "https://:8082/v2": no host`}},
		{"duplicate name", validConfig("  - {name: orders, path: /api/other/*, service: 'http://127.0.0.1:1'}\n"), []string{`routes[1].name: duplicate name "orders" (also routes[0])`}},
		{"same pattern and method", validConfig("  - {name: orders2, path: /api/orders/*, methods: [GET], service: 'http://127.0.0.1:1'}\n"), []string{`routes[1].path: "/api/orders/*" is already routed by routes[0]`}},
		{"bad name", strings.Replace(validConfig(""), "name: orders", "name: Orders_1", 1), []string{`routes[0].name: invalid name "Orders_1"`}},
		{"bad pattern", strings.Replace(validConfig(""), "/api/orders/*", "api/*/x", 1), []string{`routes[0].path: invalid pattern "api/*/x"`}},
		{"bad pattern braces", strings.Replace(validConfig(""), "/api/orders/*", "/api/{id", 1), []string{`routes[0].path: invalid pattern "/api/{id"`}},
		{"bad method", strings.Replace(validConfig(""), "[GET, post]", "[GET, FETCH]", 1), []string{`routes[0].methods[1]: unknown method "FETCH"`}},
		{"bad sticky", strings.Replace(validConfig(""), "header:X-User-Id", "session", 1), []string{`routes[0].sticky: invalid sticky "session"`}},
		{"sticky without name", strings.Replace(validConfig(""), "header:X-User-Id", "'cookie:'", 1), []string{`routes[0].sticky: invalid sticky "cookie:"`}},
		{"missing flag file", strings.Replace(validConfig(""), "flags.json", "nope.json", 1), []string{`flags.file: "`, `nope.json" does not exist`}},
		{"bad JSON pointers", validConfig("    shadow: {ignore_json: [/ok, ts], unordered_json: [/items~2]}\n"), []string{
			`routes[0].shadow.ignore_json[1] "ts": a JSON Pointer is "" or starts with "/"`,
			`routes[0].shadow.unordered_json[0] "/items~2": "~" must be followed by "0" (for "~") or "1" (for "/")`}},
		{"ignored by index in an unordered list", validConfig("    shadow: {ignore_json: [/items/0/ts], unordered_json: [/items]}\n"), []string{
			`routes[0].shadow.ignore_json[0] "/items/0/ts": names an element of unordered_json[0] "/items" by its index, a place no element keeps (use * for every element)`}},
		{"bad duration", validConfig("shutdown_timeout: 15\n"), []string{`shutdown_timeout: line 13: invalid duration "15"`}},
		{"bad CIDR", validConfig("trusted_proxies: [10.0.0.0/33]\n"), []string{`trusted_proxies[0]: invalid CIDR "10.0.0.0/33"`}},
		{"bad listen", strings.Replace(validConfig(""), "listen: 127.0.0.1:8080", "listen: 8080", 1), []string{`listen: invalid address "8080"`}},
		{"same listen and admin", strings.Replace(validConfig(""), "127.0.0.1:9090", "127.0.0.1:8080", 1), []string{`admin_listen: same address as listen`}},
		{"reserved name", strings.Replace(validConfig(""), "name: orders", "name: _default", 1), []string{`routes[0].name: "_default" is reserved`}},
		{"wrong type", strings.Replace(validConfig(""), "routes:", "routes: 5\nx:", 1), []string{"routes: line 7: want a list, got \"5\""}},
		{"file and flagd", strings.Replace(validConfig(""), "file: flags.json", "file: flags.json\n  flagd: {host: x}", 1), []string{"flags: set file or flagd, not both"}},
		{"flagd without host", strings.Replace(validConfig(""), "file: flags.json", "flagd: {port: 8015}", 1), []string{"flags.flagd.host: required"}},
		{"flagd bad mode", strings.Replace(validConfig(""), "file: flags.json", "flagd: {host: x, mode: grpc}", 1), []string{`flags.flagd.mode: "grpc": want in-process or rpc`}},
		{"flagd bad port", strings.Replace(validConfig(""), "file: flags.json", "flagd: {host: x, port: 70000}", 1), []string{"flags.flagd.port: 70000 is not a port"}},
		{"no flag source", strings.Replace(validConfig(""), "file: flags.json", "{}", 1), []string{"flags.file: required (or flags.flagd)"}},
		{"not yaml", "listen: [", []string{"config:"}},
		{"empty", "", []string{"config: empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseAndValidate(t, c.yaml)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, err := parseAndValidate(t, `
listen: nope
admin_listen: 127.0.0.1:9090
monolith: ftp://x
flags: {file: flags.json}
routes:
  - {name: a, path: /a/*, service: "http://[::1"}
  - {name: a, path: b, service: "http://127.0.0.1:1"}
`)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 5 {
		t.Errorf("want 5 problems (listen, monolith, service, name, path), got %d:\n%s", len(lines), err)
	}
}

// Problems of shape (a value of the wrong kind, a key given twice) are
// reported like unknown keys: all at once, each with its key path and line,
// and nothing of the file is used.
func TestConfigShapeErrorsNameTheirPlace(t *testing.T) {
	t.Parallel()
	route := "  - name: users\n    path: /api/users/*\n    service: http://127.0.0.1:8083\n"
	cases := []struct {
		name string
		yaml string
		want string // the whole error, one problem a line
	}{
		{"bad duration and size in two places", validConfig(route + "    timeouts: {connect: 5}\nshadow_memory: 64kb\n"),
			`routes[1].timeouts.connect: line 16: invalid duration "5" (use Go syntax such as 250ms, 2s, 1m)` + "\n" +
				`shadow_memory: line 17: invalid size "64kb" (use bytes or KiB, MiB, GiB, e.g. 1MiB)`},
		{"negative duration", validConfig("shutdown_timeout: -1s\n"), `shutdown_timeout: line 13: invalid duration "-1s": negative`},
		{"size given as a list", validConfig("shadow_memory: [1MiB]\n"), `shadow_memory: line 13: want a size such as 512KiB or 1MiB, got a list`},
		{"duration given as a mapping", validConfig("shutdown_timeout: {s: 1}\n"), `shutdown_timeout: line 13: want a duration such as 250ms, 2s, 1m, got a mapping`},
		{"word for a whole number", validConfig("shadow_workers: many\n"), `shadow_workers: line 13: want a whole number, got "many"`},
		{"fraction for a whole number", validConfig("shadow_queue: 1.5\n"), `shadow_queue: line 13: want a whole number, got "1.5"`},
		{"whole number out of range", validConfig("shadow_queue: 99999999999999999999\n"), `shadow_queue: line 13: 99999999999999999999 is out of range`},
		{"quoted whole number", validConfig("shadow_workers: \"5\"\n"), `shadow_workers: line 13: want a whole number, got "5"`},
		{"port out of range", strings.Replace(validConfig(""), "file: flags.json", "flagd: {host: x, port: 18446744073709551616}", 1), `flags.flagd.port: line 6: 18446744073709551616 is out of range`},
		{"fraction in exponent form for a whole number", validConfig("    eject: {consecutive_failures: 15e-1}\n"), `routes[0].eject.consecutive_failures: line 13: want a whole number, got "15e-1"`},
		{"word for a number", validConfig("    shadow: {percent: ten}\n"), `routes[0].shadow.percent: line 13: want a number, got "ten"`},
		{"word for a boolean", validConfig("access_log: maybe\n"), `access_log: line 13: want true or false, got "maybe"`},
		{"list for a value", validConfig("    service: [http://127.0.0.1:1]\n"), "routes[0].service: line 13: given twice (first at line 11)"},
		{"list for a string", strings.Replace(validConfig(""), "monolith: http://127.0.0.1:8081", "monolith: [http://127.0.0.1:8081]", 1), `monolith: line 4: want a single value, got a list`},
		{"list for a mapping", validConfig("timeouts: [1s]\n"), `timeouts: line 13: want a mapping (key: value), got a list`},
		{"mapping for a list", validConfig("trusted_proxies: {a: b}\n"), `trusted_proxies: line 13: want a list, got a mapping`},
		{"value for a list item's mapping", validConfig("  - users\n"), `routes[1]: line 13: want a mapping (key: value), got "users"`},
		{"key given twice", validConfig("listen: 127.0.0.1:1\n"), `listen: line 13: given twice (first at line 2)`},
		{"whole file a list", "- listen: 127.0.0.1:1\n", `config: line 1: want a mapping (key: value), got a list`},
		{"whole file a word", "strangler\n", `config: line 1: want a mapping (key: value), got "strangler"`},
		{"only a null", "~\n", `config: empty`},
		{"only comments", "# nothing yet\n", `config: empty`},
		{"an alias checked once", "timeouts: &t {connect: 5}\nlimits: {idle_timeout: 1s}\nx: *t\n",
			`timeouts.connect: line 1: invalid duration "5" (use Go syntax such as 250ms, 2s, 1m)` + "\n" + `x: unknown key (line 3)`},
		{"every kind of problem at once", validConfig("lisen: x\nshadow_workers: [1]\nlimits: {stall_timeout: 1h, max_body: lots}\n"),
			"lisen: unknown key (line 13)\n" +
				"shadow_workers: line 14: want a whole number, got a list\n" +
				`limits.max_body: line 15: invalid size "lots" (use bytes or KiB, MiB, GiB, e.g. 1MiB)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseAndValidate(t, c.yaml)
			if err == nil || err.Error() != c.want {
				t.Errorf("got error:\n%v\nwant:\n%s", err, c.want)
			}
			if cfg != nil {
				t.Errorf("a config came back with the error: %+v", cfg)
			}
		})
	}
}

// yaml reads one document: a second one (after ---) would be silently
// ignored, routes, unknown keys and all.
func TestConfigRefusesASecondYAMLDocument(t *testing.T) {
	t.Parallel()
	second := "---\nroutes:\n  - {name: users, path: /api/users/*, service: 'http://127.0.0.1:8083'}\nbogus_key: 1\n"
	refused := "config: line 13: a second YAML document (after ---) is not read: keep the whole config in one document"
	cases := []struct {
		name string
		yaml string
		want string // "" when accepted
	}{
		{"second document", validConfig("") + second, refused},
		{"a trailing --- (generated YAML)", validConfig("") + "---\n", ""},
		{"a trailing --- and a comment", validConfig("") + "---\n# end\n", ""},
		{"second document and a bad first one", validConfig("shadow_workers: x\n") + second,
			"config: line 14: a second YAML document (after ---) is not read: keep the whole config in one document\n" +
				`shadow_workers: line 13: want a whole number, got "x"`},
		{"first document empty", "---\n---" + validConfig(""), "config: line 2: a second YAML document (after ---) is not read: keep the whole config in one document\nconfig: empty"},
		{"one document that starts with ---", "---" + validConfig(""), ""},
		{"one document that ends with ...", validConfig("") + "...\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseAndValidate(t, c.yaml)
			if wantConfigError(t, err, c.want) && c.want == "" && len(cfg.Routes) != 1 {
				t.Errorf("routes = %+v, want the one of the document", cfg.Routes)
			}
		})
	}
}

// chi knows a parameter by its place, not its name: two routes whose
// patterns differ only in names are one chi route, and the later one
// silently replaces the earlier, which never gets a request.
func TestConfigRefusesPatternsThatDifferOnlyInParameterNames(t *testing.T) {
	t.Parallel()
	clash := func(path string, j int, name, other string) string {
		return fmt.Sprintf("routes[1].path: %q is already routed by routes[%d] (%s) as %q for the same methods: chi ignores parameter names, so only one of the two would get requests", path, j, name, other)
	}
	cases := []struct {
		name        string
		first, then string // paths, with optional methods after a space
		want        string // "" when accepted
	}{
		{"other parameter name", "/api/orders/{id}", "/api/orders/{uid}", clash("/api/orders/{uid}", 0, "orders", "/api/orders/{id}")},
		{"other names, several parameters", "/api/{a}/orders/{b}", "/api/{x}/orders/{y}", clash("/api/{x}/orders/{y}", 0, "orders", "/api/{a}/orders/{b}")},
		{"other regexp name", "/api/orders/{id:[0-9]+}", "/api/orders/{n:[0-9]+}", clash("/api/orders/{n:[0-9]+}", 0, "orders", "/api/orders/{id:[0-9]+}")},
		{"regexp anchored or not", "/api/orders/{id:[0-9]+}", "/api/orders/{n:^[0-9]+$}", clash("/api/orders/{n:^[0-9]+$}", 0, "orders", "/api/orders/{id:[0-9]+}")},
		{"regexp with braces", "/api/orders/{id:[0-9]{3}}", "/api/orders/{n:[0-9]{3}}", clash("/api/orders/{n:[0-9]{3}}", 0, "orders", "/api/orders/{id:[0-9]{3}}")},
		{"other name, overlapping methods", "/api/orders/{id} [GET, POST]", "/api/orders/{uid} [post]", clash("/api/orders/{uid}", 0, "orders", "/api/orders/{id}")},
		{"same text", "/api/orders/{id}", "/api/orders/{id}", `routes[1].path: "/api/orders/{id}" is already routed by routes[0] (orders) for the same methods`},
		{"other name, other methods", "/api/orders/{id} [GET]", "/api/orders/{uid} [POST]", ""},
		{"parameter and regexp", "/api/orders/{id}", "/api/orders/{id:[0-9]+}", ""},
		{"other regexps", "/api/orders/{id:[0-9]+}", "/api/orders/{id:[a-z]+}", ""},
		{"other suffix", "/api/orders/{id}.json", "/api/orders/{id}.xml", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			route := func(name, spec string) string {
				path, methods, _ := strings.Cut(spec, " ")
				if methods == "" {
					methods = "[]"
				}
				return fmt.Sprintf("  - {name: %s, path: '%s', methods: %s, service: 'http://127.0.0.1:1'}\n", name, path, methods)
			}
			yaml := strings.Replace(validConfig(""), "  - name: orders", route("orders", c.first)+route("orders-v2", c.then)+"  - name: other", 1)
			yaml = strings.Replace(yaml, "/api/orders/*", "/api/other/*", 1)
			_, err := parseAndValidate(t, yaml)
			wantConfigError(t, err, c.want)
		})
	}
}

// Settings sized at start are bounded, so that a few extra digits are a
// config error rather than a process killed out of memory, and the
// ejection threshold fits the counter that holds it.
func TestConfigBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, extra string
		want        string // "" when accepted
	}{
		{"eject at the maximum", "    eject: {consecutive_failures: 1000000}\n", ""},
		{"eject above the maximum", "    eject: {consecutive_failures: 1000001}\n",
			"routes[0].eject.consecutive_failures: 1000001 is more than the maximum of 1000000 (0 turns ejection off)"},
		{"eject past int32", "    eject: {consecutive_failures: 2147483648}\n",
			"routes[0].eject.consecutive_failures: 2147483648 is more than the maximum of 1000000 (0 turns ejection off)"},
		{"eject past uint32", "    eject: {consecutive_failures: 4294967297}\n",
			"routes[0].eject.consecutive_failures: 4294967297 is more than the maximum of 1000000 (0 turns ejection off)"},
		{"queue at the maximum", "shadow_queue: 1000000\n", ""},
		{"queue above the maximum", "shadow_queue: 1000001\n", "shadow_queue: 1000001 is more than the maximum of 1000000"},
		{"queue of a TiB", "shadow_queue: 1099511627776\n", "shadow_queue: 1099511627776 is more than the maximum of 1000000"},
		{"workers at the maximum", "shadow_workers: 10000\n", ""},
		{"workers above the maximum", "shadow_workers: 10001\n", "shadow_workers: 10001 is more than the maximum of 10000"},
		{"both above", "shadow_workers: 1000000\nshadow_queue: 1000000000\n",
			"shadow_workers: 1000000 is more than the maximum of 10000\nshadow_queue: 1000000000 is more than the maximum of 1000000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseAndValidate(t, validConfig(c.extra))
			wantConfigError(t, err, c.want)
		})
	}
}

// fallback.methods: [] is not unset: it replays nothing that may have
// reached the service, as fallback.on: [] replays nothing at all.
func TestConfigFallbackMethods(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		fallback string
		want     []string
	}{
		{"", []string{"GET", "HEAD", "OPTIONS"}},
		{"    fallback: {methods: }\n", []string{"GET", "HEAD", "OPTIONS"}},
		{"    fallback: {methods: []}\n", []string{}},
		{"    fallback: {methods: [get, Put]}\n", []string{"GET", "PUT"}},
	} {
		t.Run(c.fallback, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseAndValidate(t, validConfig(c.fallback))
			if err != nil {
				t.Fatal(err)
			}
			// Validating again (as a reload does) must not change it.
			for range 2 {
				if got := cfg.Routes[0].Fallback.Methods; got == nil || !slices.Equal(got, c.want) {
					t.Errorf("fallback.methods = %#v, want %#v", got, c.want)
				}
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A sticky header the split never sees would silently send every user of
// one client address to the same side.
func TestConfigStickyHeaderMustReachTheSplit(t *testing.T) {
	t.Parallel()
	underscore := func(mode, what string) string {
		return "routes[0].sticky: header X_User_Id has an underscore, and limits.underscore_headers: " + mode + " " + what +
			"; use a name with - instead, or set limits.underscore_headers: allow"
	}
	host := func(name string) string {
		return "routes[0].sticky: header:" + name + " is never seen by the split: Go moves Host out of the request's headers, so every request would fall back to the client address; a host names a site, not a user: use ip or random, or a header, cookie or query parameter that names the user"
	}
	cases := []struct {
		name, sticky, limits string
		want                 string // "" when accepted
	}{
		{"underscore, default", "header:X_User_Id", "", underscore("drop", "deletes it before the split, so every request would fall back to the client address")},
		{"underscore, drop", "header:X_User_Id", "drop", underscore("drop", "deletes it before the split, so every request would fall back to the client address")},
		{"underscore, reject", "header:X_User_Id", "reject", underscore("reject", "refuses (400) every request that carries it")},
		{"underscore, allow", "header:X_User_Id", "allow", ""},
		{"underscore, bad mode", "header:X_User_Id", "keep", `limits.underscore_headers: "keep": want drop, reject or allow`},
		{"underscore in a cookie", "cookie:user_id", "", ""},
		{"underscore in a query parameter", "query:user_id", "", ""},
		{"Host", "header:Host", "", host("Host")},
		{"host", "header:host", "allow", host("host")},
		{"dash", "header:X-User-Id", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			yaml := strings.Replace(validConfig(""), "header:X-User-Id", c.sticky, 1)
			if c.limits != "" {
				yaml += "limits: {underscore_headers: " + c.limits + "}\n"
			}
			_, err := parseAndValidate(t, yaml)
			wantConfigError(t, err, c.want)
		})
	}
}

func TestCheckFlagWarningsAndErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "s.yaml")
	writeFile(t, cfgPath, validConfig("  - {name: users, path: /api/users/*, service: 'http://127.0.0.1:1'}\n"))
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 10))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `routes[1].flag: flag "users-percent" is not in`) {
		t.Errorf("warnings = %q", warnings)
	}
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 101))
	if _, err := Check(cfg); err == nil || !strings.Contains(err.Error(), "routes[0].flag:") {
		t.Errorf("out-of-range flag: err = %v", err)
	}
	writeFile(t, filepath.Join(dir, "flags.json"), "{")
	if _, err := Check(cfg); err == nil || !strings.HasPrefix(err.Error(), "flags.file:") {
		t.Errorf("broken flag file: err = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Size{"0": 0, "100": 100, "1KiB": 1024, "1MiB": 1 << 20, "2 GiB": 2 << 30, "10B": 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1MB", "-1", "1.5MiB", "KiB", "99999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		validConfig(""), "listen: [", "routes: [{name: a}]", "a: &x {b: *x}",
		validConfig("    timeouts: {connect: 5}\nshadow_memory: 64kb\n"), validConfig("---\nlisten: x\n"),
		"timeouts: &t {connect: 1s}\nroutes: [{name: a, path: '/a/{id:[0-9]{2}}', service: 'http://h', timeouts: *t}]\n",
		mergeConfig, "x-a: &a {path: /a}\nroutes: [{<<: [*a, 5], name: a}, {<<: *a, <<: *a}]\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "flags.json"), []byte(flagJSON("orders-percent", 10)), 0o644)
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseConfig([]byte(s), dir)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			// Every problem names its place in the operator's words,
			// never yaml's Go-typed message.
			for _, p := range err.(*ConfigError).Problems {
				if strings.Contains(p, "cannot unmarshal") {
					t.Fatalf("problem in yaml's words: %s", p)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			// The line a problem is given (withLines) is one of the
			// file's, and only added to the problem.
			problems := err.(*ConfigError).Problems
			lines := strings.Count(s, "\n") + 1
			for i, got := range withLines([]byte(s), problems) {
				note, ok := strings.CutPrefix(got, problems[i])
				if !ok {
					t.Fatalf("%q became %q", problems[i], got)
				}
				if note == "" {
					continue
				}
				_, num, _ := strings.Cut(note, "line ")
				n, err := strconv.Atoi(strings.TrimSuffix(num, ")"))
				if err != nil || n < 1 || n > lines {
					t.Fatalf("%q: note %q names no line of the file's %d", problems[i], note, lines)
				}
			}
			return
		}
		// A config that validates must compile into a route table.
		for _, r := range cfg.Routes {
			if checkPattern(r.Path) != nil {
				t.Fatalf("validated pattern %q does not register", r.Path)
			}
			if _, err := parseUpstream(r.Service); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A whole number in exponent form is a whole number; only a fraction,
// which yaml would silently cut, is refused.
func TestConfigWholeNumberInExponentForm(t *testing.T) {
	t.Parallel()
	cfg, err := parseAndValidate(t, validConfig("    eject: {consecutive_failures: 1e3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.Routes[0].Eject.ConsecutiveFailures; got != 1000 {
		t.Errorf("consecutive_failures: 1e3 read as %d", got)
	}
}
