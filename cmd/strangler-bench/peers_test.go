//go:build linux

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/proxy"
)

// testEndpoints are addresses nothing listens on: the configs are only
// checked, never served.
var testEndpoints = endpoints{listen: "127.0.0.1:18080", admin: "127.0.0.1:19090", monolith: "127.0.0.1:18081", service: "127.0.0.1:18082"}

func TestStranglerConfigIsValidForEveryScenario(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		dir := t.TempDir()
		argv, err := stranglerCommand("/bin/strangler", dir, sc, testEndpoints)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"/bin/strangler", "serve", "--config", filepath.Join(dir, "strangler.yaml"), "--log-level", "warn"}; strings.Join(argv, " ") != strings.Join(want, " ") {
			t.Errorf("%s: command %q, want %q", sc.name, argv, want)
		}
		cfg, err := proxy.LoadConfig(filepath.Join(dir, "strangler.yaml"))
		if err != nil {
			t.Fatalf("%s: %v\n%s", sc.name, err, stranglerConfig(sc, testEndpoints))
		}
		if warnings, err := proxy.Check(cfg); err != nil || len(warnings) > 0 {
			t.Errorf("%s: check: %v %q", sc.name, err, warnings)
		}
		if got, want := len(cfg.Routes), map[bool]int{false: 0, true: 1}[sc.routed()]; got != want {
			t.Errorf("%s: %d routes, want %d", sc.name, got, want)
		}
		if sc.routed() {
			r := cfg.Routes[0]
			if r.Sticky != "header:X-User-Id" || r.Path != "/api/orders/*" {
				t.Errorf("%s: route %+v", sc.name, r)
			}
			if want := map[bool]float64{false: 0, true: 100}[sc.kind == kindShadow]; r.Shadow.Percent != want {
				t.Errorf("%s: shadow percent %v, want %v", sc.name, r.Shadow.Percent, want)
			}
		}
	}
}

func TestNginxConfigPassesNginxT(t *testing.T) {
	t.Parallel()
	bin := lookBin("nginx")
	for _, sc := range scenarios {
		dir := t.TempDir()
		argv, err := nginxCommand("nginx", dir, sc, testEndpoints)
		if err != nil {
			t.Fatal(err)
		}
		conf := nginxConfig(sc, testEndpoints, dir)
		for _, want := range []string{"worker_processes 1;", "daemon off;", "keepalive 512;", "pid " + dir + "/nginx.pid;", "10% service;"} {
			if !strings.Contains(conf, want) {
				t.Errorf("%s: config lacks %q", sc.name, want)
			}
		}
		if got := strings.Contains(conf, "mirror /_shadow;"); got != (sc.kind == kindShadow) {
			t.Errorf("%s: mirror present = %v", sc.name, got)
		}
		if got := strings.Contains(conf, "location /api/orders/"); got != sc.routed() {
			t.Errorf("%s: route present = %v", sc.name, got)
		}
		if bin == "" {
			continue // the text checks above still ran
		}
		out, err := exec.Command(bin, append([]string{"-t", "-q"}, argv[1:]...)...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: nginx -t: %v\n%s\n%s", sc.name, err, out, conf)
		}
	}
}

func TestHAProxyConfigPassesHAProxyC(t *testing.T) {
	t.Parallel()
	bin := lookBin("haproxy")
	for _, sc := range scenarios {
		dir := t.TempDir()
		if _, err := haproxyCommand("haproxy", dir, sc, testEndpoints); err != nil {
			t.Fatal(err)
		}
		conf := haproxyConfig(sc, testEndpoints)
		for _, want := range []string{"nbthread 1", "balance hdr(X-User-Id)", "weight 10", "weight 90", "bind 127.0.0.1:18080"} {
			if !strings.Contains(conf, want) {
				t.Errorf("%s: config lacks %q", sc.name, want)
			}
		}
		if got := strings.Contains(conf, "use_backend orders"); got != sc.routed() {
			t.Errorf("%s: route present = %v", sc.name, got)
		}
		if bin == "" {
			continue
		}
		if out, err := exec.Command(bin, "-c", "-q", "-f", filepath.Join(dir, "haproxy.cfg")).CombinedOutput(); err != nil {
			t.Errorf("%s: haproxy -c: %v\n%s\n%s", sc.name, err, out, conf)
		}
	}
}

func TestLookBin(t *testing.T) {
	t.Parallel()
	if lookBin("sh") == "" {
		t.Error("sh not found")
	}
	if got := lookBin("no-such-server-" + strings.Repeat("x", 10)); got != "" {
		t.Errorf("found %q", got)
	}
}
