package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rampTargetOf loads cfgYAML as `strangler ramp` does and asks RampTarget
// for route name.
func rampTargetOf(t *testing.T, cfgYAML, name string) (flag string, problems []string, err error) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "flags.json"), []byte(flagJSON("orders-percent", 10, "orders-v2", 10)), 0o644)
	path := filepath.Join(dir, "strangler.yaml")
	os.WriteFile(path, []byte(cfgYAML), 0o644)
	cfg, lerr := LoadConfig(path)
	var ce *ConfigError
	if lerr != nil && (cfg == nil || !errors.As(lerr, &ce)) {
		t.Fatalf("LoadConfig: %v", lerr)
	}
	if ce != nil {
		problems = ce.Problems
	}
	_, flag, err = RampTarget(cfg, problems, name)
	return flag, problems, err
}

const rampHead = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: http://127.0.0.1:8081
flags: {file: flags.json}
`

// RampTarget refuses only the problems that could change which flag a
// route's ramp sets, and names that flag otherwise. Found by reviews of
// b81fff8: with two routes of the name, or the routes list given twice,
// which route the running proxy serves is unknown; an unknown key in a
// route whose flag is the default one may be its misspelt flag key
// (flag_name: and the like ramped <name>-percent and exited 0). A typo
// nested under the route (in eject:, timeouts:) cannot name a flag, and
// must not hold up a rollback.
func TestRampTarget(t *testing.T) {
	t.Parallel()
	orders := `  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
`
	for _, tc := range []struct {
		name, routes string
		want         string // the flag; "" for a refusal
	}{
		{"two routes of the name", orders + "    flag: orders-percent\n" +
			"  - name: orders\n    path: /api/v2/orders/*\n    service: http://127.0.0.1:8083\n    flag: orders-v2\n", ""},
		{"routes given twice", orders + "    flag: orders-percent\nroutes:\n" + orders + "    flag: orders-v2\n", ""},
		{"flag_name with the default flag", orders + "    flag_name: orders-v2\n", ""},
		{"feature_flag with the default flag", orders + "    feature_flag: orders-v2\n", ""},
		{"flagName with the default flag", orders + "    flagName: orders-v2\n", ""},
		{"percent_flag with the default flag", orders + "    percent_flag: orders-v2\n", ""},
		{"typo nested in eject", orders + "    eject: {consecutive_failure: 3}\n", "orders-percent"},
		{"typo nested in timeouts", orders + "    timeouts: {respone_header: 1s}\n", "orders-percent"},
		{"unknown key, another flag named", orders + "    flag: orders-v2\n    stikcy: ip\n", "orders-v2"},
	} {
		flag, problems, err := rampTargetOf(t, rampHead+"routes:\n"+tc.routes, "orders")
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s (problems %q): RampTarget chose flag %q; want a refusal", tc.name, strings.Join(problems, "; "), flag)
		case tc.want != "" && (err != nil || flag != tc.want):
			t.Errorf("%s (problems %q): flag %q, %v; want %q", tc.name, strings.Join(problems, "; "), flag, err, tc.want)
		}
	}
}
