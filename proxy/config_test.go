package proxy

import (
	"os"
	"path/filepath"
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
	if time.Duration(r.Timeouts.Connect) != 250*time.Millisecond || time.Duration(r.Timeouts.ResponseHeader) != DefaultResponseHeader || time.Duration(r.Timeouts.Idle) != DefaultIdle {
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
		{"duplicate name", validConfig("  - {name: orders, path: /api/other/*, service: 'http://127.0.0.1:1'}\n"), []string{`routes[1].name: duplicate name "orders" (also routes[0])`}},
		{"same pattern and method", validConfig("  - {name: orders2, path: /api/orders/*, methods: [GET], service: 'http://127.0.0.1:1'}\n"), []string{`routes[1].path: "/api/orders/*" is already routed by routes[0]`}},
		{"bad name", strings.Replace(validConfig(""), "name: orders", "name: Orders_1", 1), []string{`routes[0].name: invalid name "Orders_1"`}},
		{"bad pattern", strings.Replace(validConfig(""), "/api/orders/*", "api/*/x", 1), []string{`routes[0].path: invalid pattern "api/*/x"`}},
		{"bad pattern braces", strings.Replace(validConfig(""), "/api/orders/*", "/api/{id", 1), []string{`routes[0].path: invalid pattern "/api/{id"`}},
		{"bad method", strings.Replace(validConfig(""), "[GET, post]", "[GET, FETCH]", 1), []string{`routes[0].methods[1]: unknown method "FETCH"`}},
		{"bad sticky", strings.Replace(validConfig(""), "header:X-User-Id", "session", 1), []string{`routes[0].sticky: invalid sticky "session"`}},
		{"sticky without name", strings.Replace(validConfig(""), "header:X-User-Id", "'cookie:'", 1), []string{`routes[0].sticky: invalid sticky "cookie:"`}},
		{"missing flag file", strings.Replace(validConfig(""), "flags.json", "nope.json", 1), []string{`flags.file: "`, `nope.json" does not exist`}},
		{"bad duration", validConfig("shutdown_timeout: 15\n"), []string{`invalid duration "15"`}},
		{"bad CIDR", validConfig("trusted_proxies: [10.0.0.0/33]\n"), []string{`trusted_proxies[0]: invalid CIDR "10.0.0.0/33"`}},
		{"bad listen", strings.Replace(validConfig(""), "listen: 127.0.0.1:8080", "listen: 8080", 1), []string{`listen: invalid address "8080"`}},
		{"same listen and admin", strings.Replace(validConfig(""), "127.0.0.1:9090", "127.0.0.1:8080", 1), []string{`admin_listen: same address as listen`}},
		{"reserved name", strings.Replace(validConfig(""), "name: orders", "name: _default", 1), []string{`routes[0].name: "_default" is reserved`}},
		{"wrong type", validConfig("routes: 5\n"), []string{"config:"}},
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
	for _, s := range []string{validConfig(""), "listen: [", "routes: [{name: a}]", "a: &x {b: *x}"} {
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
			return
		}
		if err := cfg.Validate(); err != nil {
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
