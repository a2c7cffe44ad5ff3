package main

// Pinned behaviours of the command line that the other tests leave free,
// found by a hand mutation test of main.go, demo.go and tracing.go. Each
// test names what an operator, a CI job or a newcomer relies on.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The top level's answers: a bare `strangler` is a usage error (exit 2,
// the usage on stderr, so a script's captured stdout stays empty); `help`
// and the usual --version spellings are answers on stdout with exit 0.
func TestPinnedTopLevelCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args      []string
		code      int
		out, errb string // exact; "usage" stands for the usage text
	}{
		{nil, 2, "", "usage"},
		{[]string{"help"}, 0, "usage", ""},
		{[]string{"--version"}, 0, "strangler " + buildVersion() + "\n", ""},
		{[]string{"-version"}, 0, "strangler " + buildVersion() + "\n", ""},
	} {
		code, out, errOut := runCmd(tc.args...)
		want := func(s string) string {
			if s == "usage" {
				return usage
			}
			return s
		}
		if code != tc.code || out != want(tc.out) || errOut != want(tc.errb) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errOut, tc.code, want(tc.out), want(tc.errb))
		}
	}
}

// A version stamped at build time (-ldflags -X main.version=...) is what
// `strangler version` prints; without one, a name for an unreleased build,
// never Go's "(devel)" placeholder. Not parallel: it sets the package's
// version, which parallel tests read only after it has been put back.
func TestPinnedVersionOutput(t *testing.T) {
	if code, out, _ := runCmd("version"); code != 0 || !regexp.MustCompile(`^strangler (v\S+|devel(-[0-9a-f]+)?)\n$`).MatchString(out) {
		t.Errorf("unstamped: exit %d, stdout %q; want a module version or devel[-REVISION]", code, out)
	}
	defer func(v string) { version = v }(version)
	version = "v9.8.7"
	if code, out, _ := runCmd("version"); code != 0 || out != "strangler v9.8.7\n" {
		t.Errorf("stamped: exit %d, stdout %q; want %q", code, out, "strangler v9.8.7\n")
	}
}

// What is not a ramp is refused before the flag file is touched, with the
// reason an operator can act on: a negative number (or percentage) is a
// percent out of range, not an "unknown flag"; an extra word is refused,
// not ignored ("orders 25 50" is a slip, not a 25). A bad flag's problem
// is printed once, not once by the flag package and again by run.
func TestPinnedRampArgumentRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // once on stderr
	}{
		{[]string{"orders", "-5"}, `ramp: percent "-5": want a number from 0 to 100`},
		{[]string{"orders", "-5%"}, `ramp: percent "-5%": want a number from 0 to 100`},
		{[]string{"orders", "25", "50"}, "ramp: want ROUTE PERCENT"},
		{[]string{"--bogus", "orders", "25"}, "flag provided but not defined: -bogus"},
	} {
		cfg, flagFile := writeSetup(t, twoFlags)
		code, out, errOut := runCmd(append([]string{"ramp", "--config", cfg}, tc.args...)...)
		if code != 2 || out != "" || strings.Count(errOut, tc.want) != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant 2 and %q once", tc.args, code, out, errOut, tc.want)
		}
		if b, _ := os.ReadFile(flagFile); string(b) != twoFlags {
			t.Errorf("%q: the flag file changed:\n%s", tc.args, b)
		}
	}
}

// validate's one line on stdout is what CI logs show: the file as named
// (strangler.yaml in the working directory when --config is not given)
// and the routes counted in English. Run as a process for its directory.
func TestPinnedValidateDefaultConfigAndCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		drop string // a route taken out of writeSetup's two
		want string
	}{
		{"", "strangler.yaml: ok (2 routes)\n"},
		{"  - name: users\n    path: /api/users/*\n    service: http://127.0.0.1:8083\n", "strangler.yaml: ok (1 route)\n"},
	} {
		cfg, _ := writeSetup(t, twoFlags)
		b, _ := os.ReadFile(cfg)
		if !strings.Contains(string(b), tc.drop) {
			t.Fatalf("the setup has no %q", tc.drop)
		}
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), tc.drop, "", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := command(t, "validate")
		cmd.Dir = filepath.Dir(cfg)
		var errb strings.Builder
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil || string(out) != tc.want {
			t.Errorf("validate in %s: %v, stdout %q, stderr %q; want %q", cmd.Dir, err, out, errb.String(), tc.want)
		}
	}
}

// The demo's defaults are what the README promises a newcomer: the proxy
// on 127.0.0.1:8080, the admin on 127.0.0.1:9090, 10 % to the service,
// 200 requests sent at start. --help shows them.
func TestPinnedDemoDefaults(t *testing.T) {
	t.Parallel()
	code, out, _ := runCmd("demo", "--help")
	for _, want := range []string{`-listen string`, `(default "127.0.0.1:8080")`, `(default "127.0.0.1:9090")`, `(default "10")`, `(default 200)`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("demo --help: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
}

// A port is a number a listener takes or a service name ("http"); an
// empty port would listen anywhere, so --listen 127.0.0.1: is refused.
func TestPinnedDemoPorts(t *testing.T) {
	t.Parallel()
	for port, want := range map[string]bool{"8080": true, "65535": true, "0": true, "http": true, "HTTP": true,
		"65536": false, "-1": false, "_x": false, "1x": false} {
		if got := validPort(port); got != want {
			t.Errorf("validPort(%q) = %v, want %v", port, got, want)
		}
	}
	if code, _, errOut := runCmd("demo", "--listen", "127.0.0.1:"); code != 2 || !strings.Contains(errOut, `demo: --listen "127.0.0.1:": want host:port`) {
		t.Errorf("--listen 127.0.0.1:: exit %d, stderr %q; want 2", code, errOut)
	}
}

// An address the operator chose for the demo, taken, is an error (exit
// 1, nothing served), not moved aside as the defaults are: a newcomer
// following a tutorial's port must not find the demo elsewhere.
func TestPinnedDemoChosenAddressTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	cmd := command(t, "demo", "--listen", taken.Addr().String(), "--admin", "127.0.0.1:0", "--requests", "0")
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := exitCode(t, cmd, 30*time.Second, "the demo ran on another address than the one chosen", &out)
	if code != 1 || !strings.Contains(errb.String(), "address already in use") || out.String() != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing served, the address in use", code, out.String(), errb.String())
	}
}

// A demo run as a newcomer sees it: what it prints on stdout until "Press
// Ctrl-C", its stderr (no info logs of the proxy's over the instructions), the
// flag it wrote (the metrics' percent) and its exit on the signal.
func TestPinnedDemoRuns(t *testing.T) {
	t.Parallel()
	// Hold the default proxy port (or find it held already): the demo
	// must move aside on the same host and say so.
	if ln, err := net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		t.Cleanup(func() { ln.Close() })
	}
	for _, tc := range []struct {
		name    string
		args    []string
		sig     syscall.Signal
		percent string   // in the metrics
		want    []string // regexps on stdout
		not     []string // substrings not on stdout
	}{
		// At 0 % every request is the monolith's and every shadow copy the
		// service's: the counts and the comparison's sides are exact.
		{"all on the monolith", []string{"--admin", "127.0.0.1:0", "--percent", "0", "--requests", "5"}, syscall.SIGINT, "0",
			[]string{`\(127\.0\.0\.1:8080 was taken: 127\.0\.0\.1:\d+ is used instead\)`,
				`Sent 5 order requests as 5 users: 0 served by the service, 5 by the monolith\.`,
				`Shadow comparison found: GET /api/orders/\d+: body /total: monolith=42\.5, service="42\.50"  \(all: http://127\.0\.0\.1:\d+/api/diffs\)`,
				`ramp it: .* orders 50\n`},
			nil},
		// At 50 % the suggested ramp still changes something; no requests
		// asked for, none sent or reported. SIGTERM (a container's stop)
		// ends it as Ctrl-C does.
		{"half, no traffic", []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--percent", "50", "--requests", "0"}, syscall.SIGTERM, "50",
			[]string{`ramp it: .* orders 100\n`}, []string{"Sent ", "Shadow comparison", "was taken"}},
		{"a fraction", []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--percent", "2.5", "--requests", "0"}, syscall.SIGINT, "2.5",
			[]string{`ramp it: .* orders 50\n`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd, got, stderr := startDemo(t, tc.args...)
			for _, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(got) {
					t.Errorf("stdout lacks %s:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("stdout has %q:\n%s", n, got)
				}
			}
			a := regexp.MustCompile(`admin:\s+(http://\S+)/api/routes`).FindStringSubmatch(got)
			if a == nil {
				t.Fatalf("no admin URL:\n%s\nstderr:\n%s", got, stderr.String())
			}
			resp, err := http.Get(a[1] + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("strangler_route_percent{route=\"orders\"} %s\n", tc.percent); !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %q", want)
			}
			cmd.Process.Signal(tc.sig)
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit on %v: %v", tc.sig, err)
			}
			// The proxy's own log is at warn, so nothing of it shows. (The
			// flagd provider's few JSON lines cannot be silenced: flags/doc.go.)
			if s := stderr.String(); strings.Contains(s, "level=") {
				t.Errorf("the proxy logged below warn on stderr:\n%s", s)
			}
		})
	}
}

// startPinnedServe starts `strangler serve --config FILE args...`, with
// env added, on a config without routes whose limits.max_body is 1KiB,
// and waits for /readyz.
func startPinnedServe(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "monolith") }))
	return startServeArgs(t, mono, "limits: {max_body: 1KiB}\nroutes: []\n", `{"flags":{}}`, args, env...)
}

// --log-format and --log-level decide what an SRE's collector gets: text
// is key=value lines, not JSON; debug shows each refused request (here a
// body over max_body), which the default (info) does not; warn leaves the
// routine lines out. Checked after the exit, when every line is written.
func TestPinnedServeLogFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"default", nil, []string{`"msg":"serving"`, `"msg":"shutting down"`}, []string{"request refused"}},
		{"text at debug", []string{"--log-format", "text", "--log-level", "debug"},
			[]string{"level=INFO msg=serving", `level=DEBUG msg="request refused"`}, []string{`"msg":"serving"`}},
		{"warn", []string{"--log-level", "warn"}, nil, []string{`msg":"serving"`, `"msg":"shutting down"`, "request refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startPinnedServe(t, nil, tc.args...)
			resp, err := http.Post("http://"+p.listen+"/upload", "text/plain", strings.NewReader(strings.Repeat("x", 2048)))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("a body over max_body: %d, want 413", resp.StatusCode)
			}
			p.stop(t)
			logs := p.logs.String()
			for _, w := range tc.want {
				if !strings.Contains(logs, w) {
					t.Errorf("the log lacks %q:\n%s", w, logs)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(logs, n) {
					t.Errorf("the log has %q:\n%s", n, logs)
				}
			}
		})
	}
}

// SIGHUP reloads at once, even a file that did not change (the watcher
// reloads only changed content, after it settles): an operator who fixed
// a file the config names, or wants the reload now, sends it and reads
// "config reloaded". The child starts with SIGHUP's default action
// (env --default-signal): this test process ignores SIGHUP once an
// in-process serve has returned, and a child would inherit that, so a
// serve that did not catch SIGHUP would survive it here and nowhere else.
func TestPinnedServeSIGHUPReloadsNow(t *testing.T) {
	t.Parallel()
	if defaultHUP() == nil {
		t.Skip("no env --default-signal here: the child would inherit an ignored SIGHUP")
	}
	p := startPinnedServe(t, nil)
	p.waitLog(t, `"msg":"serving"`)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `"msg":"config reloaded"`)
	if p.exited(0) {
		t.Fatalf("SIGHUP ended serve: %v", p.waitErr)
	}
	p.stop(t)
}

// An edit of the config file is applied without a signal: in Kubernetes
// a ConfigMap update reaches the Pod's file, and nobody sends SIGHUP.
func TestPinnedServeWatchesConfigFile(t *testing.T) {
	t.Parallel()
	p := startPinnedServe(t, nil)
	b, err := os.ReadFile(p.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfgPath, append(b, "shutdown_timeout: 7s\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `"msg":"config reloaded"`)
	p.stop(t)
}

// With tracing on, the log says so once, the SDK's complaint about an
// OTEL_* value goes to the log as a "tracing" warning (not a plain line),
// and the spans still batched are flushed at the exit: a trace of the
// last requests before a rollout's restart is not lost.
func TestPinnedServeTracingLogAndFlush(t *testing.T) {
	t.Parallel()
	p := startPinnedServe(t, append(tracingOn, "OTEL_TRACES_SAMPLER=bogus"))
	resp, err := http.Get("http://" + p.listen + "/traced")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.stop(t)
	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"tracing on"`) || !regexp.MustCompile(`"msg":"tracing","error":"[^"]*bogus`).MatchString(logs) {
		t.Errorf("the log lacks tracing on, or the sampler's error as a tracing warning:\n%s", logs)
	}
	if !strings.Contains(p.out.String(), `"SpanContext"`) {
		t.Errorf("no span written at the exit; stdout:\n%s", p.out.String())
	}
}

// Which OTEL_* environments turn tracing on, and what a refused one says:
// OTEL_SDK_DISABLED in any case turns it off; OTEL_TRACES_EXPORTER=none is
// off, and then OTEL_PROPAGATORS is not read (a bad value does not stop
// the proxy); a traces-only endpoint turns it on; an exporter setting the
// SDK refuses is named in the error. Not parallel: t.Setenv.
func TestPinnedTracingEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		on   bool
		err  string // in the error; "" none
	}{
		{"disabled, upper case", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}, false, ""},
		{"disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, false, ""},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_PROPAGATORS": "b4"}, false, ""},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1"}, true, ""},
		{"nothing", nil, false, ""},
		{"bad protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"}, false, `OTEL_EXPORTER_OTLP_PROTOCOL="bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
				"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_PROPAGATORS"} {
				t.Setenv(k, tc.env[k])
			}
			tp, _, shutdown, err := setupTracing(t.Context())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if (tp != nil) != tc.on {
				t.Errorf("tracing on %v, want %v", tp != nil, tc.on)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			shutdown(ctx)
		})
	}
}
