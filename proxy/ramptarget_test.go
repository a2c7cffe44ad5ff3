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

// Fixed (found by a review, b81fff8): two routes named "orders" (a copy pasted in
// the new version of the file, with another flag). Validate reports the
// duplicate name at the second one, routes[1].name, and RampTarget only
// looks for problems at the index of the first match, so it ramps
// routes[0]'s flag with a warning. Which of the two "orders" the running
// proxy serves is unknown: this is a problem with the route's name, which
// the commit says refuses the ramp.
func TestRampTargetRefusesDuplicateRouteName(t *testing.T) {
	t.Parallel()
	cfg := rampHead + `routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
    flag: orders-percent
  - name: orders
    path: /api/v2/orders/*
    service: http://127.0.0.1:8083
    flag: orders-v2
`
	flag, problems, err := rampTargetOf(t, cfg, "orders")
	if err == nil {
		t.Errorf("two routes named orders (problems %q): RampTarget chose flag %q; want a refusal", problems, flag)
	}
}

// Fixed (found by a review, b81fff8): "routes" given twice at the top level. The
// first list is kept and the second dropped ("routes: line N: given
// twice"), a problem that decides which route, so which flag, "orders"
// is; RampTarget let it pass as a problem elsewhere.
func TestRampTargetRefusesRoutesGivenTwice(t *testing.T) {
	t.Parallel()
	cfg := rampHead + `routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
    flag: orders-percent
routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
    flag: orders-v2
`
	flag, problems, err := rampTargetOf(t, cfg, "orders")
	if err == nil {
		t.Errorf("routes given twice (problems %q): RampTarget chose flag %q; want a refusal", problems, flag)
	}
}

// Fixed (found by a review, b81fff8): an unknown key in the route whose name is not
// within two edits of "flag" (flag_name, feature_flag, flagName,
// percent_flag, a YAML merge key "<<" carrying flag:) only warns, and the
// route falls back to its default flag, <name>-percent: when that flag
// exists in the file, ramp sets it and exits 0 while the operator meant
// another. With the default flag in play, any unknown key of the route
// should refuse.
func TestRampTargetRefusesMisspeltFlagKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"flag_name", "feature_flag", "flagName", "percent_flag"} {
		cfg := rampHead + `routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
    ` + key + `: orders-v2
`
		flag, problems, err := rampTargetOf(t, cfg, "orders")
		if err == nil {
			t.Errorf("%s: orders-v2 (problems %q): RampTarget chose the default flag %q; want a refusal",
				key, strings.Join(problems, "; "), flag)
		}
	}
}
