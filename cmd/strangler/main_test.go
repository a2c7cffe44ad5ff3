package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSetup(t *testing.T, flagsJSON string) (cfgPath, flagPath string) {
	t.Helper()
	dir := t.TempDir()
	cfgPath, flagPath = filepath.Join(dir, "strangler.yaml"), filepath.Join(dir, "flags.json")
	cfg := `listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
monolith: http://127.0.0.1:8081
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
  - name: users
    path: /api/users/*
    service: http://127.0.0.1:8083
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flagPath, []byte(flagsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, flagPath
}

const twoFlags = `{
  "flags": {
    "orders-percent": {"state": "ENABLED", "variants": {"on": 10}, "defaultVariant": "on"},
    "other": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
      "targeting": {"if": [{"==": [{"var": "targetingKey"}, "x"]}, "b", null]}}
  }
}`

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRampRoundTrip(t *testing.T) {
	t.Parallel()
	cfg, flagFile := writeSetup(t, twoFlags)
	code, out, errOut := runCmd("ramp", "--config", cfg, "orders", "25")
	if code != 0 || out != "orders: 10 -> 25\n" {
		t.Fatalf("ramp: code %d, out %q, err %q", code, out, errOut)
	}
	// Flags after the positional arguments work too.
	code, out, errOut = runCmd("ramp", "orders", "2.5", "--config", cfg)
	if code != 0 || out != "orders: 25 -> 2.5\n" {
		t.Fatalf("ramp: code %d, out %q", code, out)
	}
	if errOut != "" {
		t.Errorf("ramp to 2.5: stderr %q", errOut)
	}
	// Finer than the split's 10,000 buckets: set as typed, with a note on
	// what the split makes of it.
	code, out, errOut = runCmd("ramp", "--config", cfg, "orders", "0.004")
	if want := "strangler: ramp: note: the split works in steps of 0.01 %: 0.004 % sends 0 % of users\n"; code != 0 || out != "orders: 2.5 -> 0.004\n" || errOut != want {
		t.Fatalf("ramp 0.004: code %d, out %q, err %q; want the note %q", code, out, errOut, want)
	}
	code, out, errOut = runCmd("ramp", "--config", cfg, "orders", "2.5")
	if code != 0 || out != "orders: 0.004 -> 2.5\n" || errOut != "" {
		t.Fatalf("ramp 2.5: code %d, out %q, err %q", code, out, errOut)
	}
	b, _ := os.ReadFile(flagFile)
	if !strings.Contains(string(b), `"targeting": {"if": [{"==": [{"var": "targetingKey"}, "x"]}, "b", null]}`) {
		t.Errorf("ramp changed another flag:\n%s", b)
	}
	if code, _, _ := runCmd("validate", "--config", cfg); code != 0 {
		t.Errorf("validate after ramp: %d", code)
	}
	// Arguments that cannot be a ramp are usage errors (2); a route the
	// config does not have is refused by the config (1).
	for _, bad := range []struct {
		args []string
		code int
	}{
		{[]string{"orders", "101"}, 2}, {[]string{"orders", "-1"}, 2}, {[]string{"orders", "NaN"}, 2},
		{[]string{"orders", "ten"}, 2}, {[]string{"orders", "1e1"}, 2}, {[]string{"orders", "-0"}, 2},
		{[]string{"orders"}, 2}, {[]string{"nosuch", "5"}, 1},
	} {
		code, _, errOut := runCmd(append([]string{"ramp", "--config", cfg}, bad.args...)...)
		if code != bad.code || errOut == "" {
			t.Errorf("ramp %v: code %d, stderr %q; want %d with a message", bad.args, code, errOut, bad.code)
		}
	}
	if b2, _ := os.ReadFile(flagFile); !bytes.Equal(b, b2) {
		t.Error("a refused ramp changed the file")
	}
}

// A route whose flag the file lacks (users) gets it from ramp, with a note,
// and the proxy's checks accept the file it leaves.
func TestRampAddsMissingFlag(t *testing.T) {
	t.Parallel()
	cfg, flagFile := writeSetup(t, twoFlags)
	code, out, errOut := runCmd("ramp", "--config", cfg, "users", "5")
	if code != 0 || out != "users: 0 -> 5\n" || !strings.Contains(errOut, `note: flag "users-percent" was not in`) {
		t.Fatalf("ramp: code %d, out %q, err %q", code, out, errOut)
	}
	if b, _ := os.ReadFile(flagFile); !strings.Contains(string(b), `"users-percent": {"state": "ENABLED", "variants": {"on": 5}, "defaultVariant": "on"}`) {
		t.Errorf("flag file after ramp:\n%s", b)
	}
	if code, _, errOut := runCmd("validate", "--config", cfg); code != 0 || strings.Contains(errOut, "users-percent") {
		t.Errorf("validate after ramp: code %d, stderr %q", code, errOut)
	}
}

// Ramping the files a Deployment is made from, outside the Pod: the
// admin token the Pod mounts is not here, which is a note, not a warning
// that the proxy would refuse the config.
func TestRampOutsideThePod(t *testing.T) {
	t.Parallel()
	cfg, _ := writeSetup(t, twoFlags)
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append([]byte("admin_token_file: /nonexistent/strangler-admin/token\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd("ramp", "--config", cfg, "orders", "25")
	if code != 0 || out != "orders: 10 -> 25\n" || strings.Contains(errOut, "warning") ||
		!strings.Contains(errOut, `note: `+cfg+`: admin_token_file: "/nonexistent/strangler-admin/token" does not exist on this machine`) {
		t.Errorf("ramp: code %d, out %q, stderr %q", code, out, errOut)
	}
}

// ramp keeps a targeting rule and says on stderr what the rule still
// decides (issue 2: targeting pins chosen users while the rest ramp).
func TestRampTargetedFlagNotes(t *testing.T) {
	t.Parallel()
	cfg, flagFile := writeSetup(t, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"ramp":10,"all":100},"defaultVariant":"ramp",`+
		`"targeting":{"if":[{"in":[{"var":"targetingKey"},["beta-1"]]},"all"]}}}}`)
	code, out, errOut := runCmd("ramp", "--config", cfg, "orders", "25")
	if code != 0 || out != "orders: 10 -> 25\n" || !strings.Contains(errOut, "targeting rule") || !strings.Contains(errOut, "all=100") {
		t.Errorf("code %d, out %q, stderr %q", code, out, errOut)
	}
	if b, _ := os.ReadFile(flagFile); !strings.Contains(string(b), `"ramp":25`) || !strings.Contains(string(b), `["beta-1"]]},"all"]`) {
		t.Errorf("flag file after ramp: %s", b)
	}
}

// ramp edits flag files; with flagd it says so instead of an lstat error.
func TestRampWithFlagdSaysWhere(t *testing.T) {
	t.Parallel()
	cfg, _ := writeSetup(t, twoFlags)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte("file: flags.json"), []byte("flagd: {host: 127.0.0.1, port: 8015}"), 1), 0o644)
	code, _, errOut := runCmd("ramp", "--config", cfg, "orders", "5")
	if code != 1 || !strings.Contains(errOut, "flagd daemon") || !strings.Contains(errOut, `"orders-percent"`) {
		t.Errorf("code %d, stderr %q; want 1 naming flagd and the flag", code, errOut)
	}
	// With a problem elsewhere in the config too, both are said: the
	// reason the ramp cannot go on, and the problem.
	b, _ = os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte("  - name: users\n"), []byte("  - name: users\n    stikcy: ip\n"), 1), 0o644)
	code, _, errOut = runCmd("ramp", "--config", cfg, "orders", "0")
	if code != 1 || !strings.Contains(errOut, "flagd daemon") || !strings.Contains(errOut, "routes[1].stikcy: unknown key") {
		t.Errorf("with a problem elsewhere: code %d, stderr %q; want 1 naming flagd and the problem", code, errOut)
	}
}

// A DISABLED flag sends its route to the monolith whatever its value: a
// ramp up is refused, saying so and leaving the file; a ramp to 0 is done
// with a note.
func TestRampDisabledFlag(t *testing.T) {
	t.Parallel()
	cfg, flagFile := writeSetup(t, strings.Replace(twoFlags, `"orders-percent": {"state": "ENABLED"`, `"orders-percent": {"state": "DISABLED"`, 1))
	before, _ := os.ReadFile(flagFile)
	code, out, errOut := runCmd("ramp", "--config", cfg, "orders", "30")
	if after, _ := os.ReadFile(flagFile); code != 1 || out != "" || !strings.Contains(errOut, `set its "state" to "ENABLED"`) || string(after) != string(before) {
		t.Errorf("ramp up: exit %d, stdout %q, stderr %q, file changed %v; want 1 saying the flag is disabled, file as it was", code, out, errOut, string(after) != string(before))
	}
	code, out, errOut = runCmd("ramp", "--config", cfg, "orders", "0")
	if code != 0 || out != "orders: 10 -> 0\n" || !strings.Contains(errOut, "DISABLED") {
		t.Errorf("ramp to 0: exit %d, stdout %q, stderr %q; want 0 with a note that it is DISABLED", code, out, errOut)
	}
}

func TestValidateExitCodes(t *testing.T) {
	t.Parallel()
	cfg, flagFile := writeSetup(t, twoFlags)
	code, out, errOut := runCmd("validate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "ok (2 routes)") {
		t.Errorf("valid: code %d out %q", code, out)
	}
	if !strings.Contains(errOut, `warning: routes[1].flag: flag "users-percent" is not in`) {
		t.Errorf("missing-flag warning absent: %q", errOut)
	}
	os.WriteFile(flagFile, []byte("{"), 0o644)
	if code, _, errOut := runCmd("validate", "--config", cfg); code != 1 || !strings.HasPrefix(errOut, cfg+": flags.file:") {
		t.Errorf("broken flags: code %d, stderr %q", code, errOut)
	}
	os.WriteFile(cfg, []byte("listen: x\nbogus: 1\n"), 0o644)
	code, _, errOut = runCmd("validate", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, cfg+": bogus: unknown key (line 2)") {
		t.Errorf("bad config: code %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCmd("serve", "--config", cfg); code != 1 {
		t.Errorf("serve on a bad config: exit %d, want 1", code)
	}
}

// A config with problems has the flags of its other routes checked in
// the same run, so an operator fixing a typo is not sent back for the
// flag file's problem next; a route with a problem of its own, or a
// problem that could change which flags are meant, is not judged by a
// flag it may not mean. serve says the same, the flags' as warnings (as
// it would start with them), and starts nothing.
func TestValidateNamesFlagProblemsWithConfigProblems(t *testing.T) {
	t.Parallel()
	const badFlags = `{"flags": {
  "orders-percent": {"state": "ENABLED", "variants": {"on": 150}, "defaultVariant": "on"},
  "users-percent": {"state": "ENABLED", "variants": {"on": "x"}, "defaultVariant": "on"}}}`
	const (
		orders = "routes[0].flag: flag value outside 0..100"
		users  = "routes[1].flag: flag value is not a number"
	)
	for _, tc := range []struct {
		name, from, to string
		want, not      []string
	}{
		{"a typo in another route", "  - name: users\n", "  - name: users\n    stikcy: ip\n",
			[]string{"routes[1].stikcy: unknown key", orders}, []string{"routes[1].flag"}},
		{"a problem outside the routes", "listen: 127.0.0.1:8080\n", "listen: nowhere\n",
			[]string{`listen: invalid address "nowhere"`, orders, users}, nil},
		{"a problem of the document", "    service: http://127.0.0.1:8083\n", "    service: http://127.0.0.1:8083\n---\nlisten: x\n",
			[]string{"config: line 13: a second YAML document"}, []string{".flag:"}},
		{"a problem in the flag source", "  file: flags.json\n", "  file: flags.json\n  fiel: flags2.json\n",
			[]string{"flags.fiel: unknown key"}, []string{".flag:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := writeSetup(t, badFlags)
			b, _ := os.ReadFile(cfg)
			if !bytes.Contains(b, []byte(tc.from)) {
				t.Fatalf("the setup has no %q", tc.from)
			}
			os.WriteFile(cfg, bytes.Replace(b, []byte(tc.from), []byte(tc.to), 1), 0o644)
			for _, cmd := range []string{"validate", "serve"} {
				code, out, errOut := runCmd(cmd, "--config", cfg)
				if code != 1 || out != "" {
					t.Errorf("%s: exit %d, stdout %q, want 1 and nothing; stderr:\n%s", cmd, code, out, errOut)
				}
				for _, w := range tc.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("%s: stderr lacks %q:\n%s", cmd, w, errOut)
					}
				}
				for _, n := range tc.not {
					if strings.Contains(errOut, n) {
						t.Errorf("%s: stderr has %q:\n%s", cmd, n, errOut)
					}
				}
			}
		})
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	if code, out, _ := runCmd("version"); code != 0 || !strings.HasPrefix(out, "strangler ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := runCmd("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	// Help asked for is not an error, for the command or a subcommand,
	// and a subcommand's names what it takes besides its flags (ramp's
	// ROUTE and PCT were missing; version refused --help as an argument).
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Usage:"},
		{[]string{"demo", "--help"}, "Usage: strangler demo [--listen ADDR]"},
		{[]string{"validate", "-h"}, "Usage: strangler validate --config FILE"},
		{[]string{"serve", "--help"}, "Usage: strangler serve --config FILE [--log-format"},
		{[]string{"ramp", "--help"}, "Usage: strangler ramp --config FILE ROUTE PCT"},
		{[]string{"version", "--help"}, "Usage: strangler version"},
		{[]string{"version", "--help", "extra"}, "Usage: strangler version"},
		{[]string{"ramp", "orders", "25", "-h"}, "Usage: strangler ramp"},
		{[]string{"-help"}, "Usage:"},
	} {
		// Asked for, help is the answer: on stdout, for a pager.
		code, out, errOut := runCmd(tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) || errOut != "" {
			t.Errorf("%q: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 0 and %q on stdout only", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestValidateUnreachableFlagd(t *testing.T) {
	t.Parallel()
	cfg, _ := writeSetup(t, twoFlags)
	b, _ := os.ReadFile(cfg)
	// Port 1 on loopback: nothing listens there.
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "file: flags.json", "flagd: {host: 127.0.0.1, port: 1}", 1)), 0o644)
	code, _, errOut := runCmd("validate", "--config", cfg)
	if code != 1 || !strings.HasPrefix(errOut, cfg+": flags.flagd: ") || strings.Contains(errOut, "flags.flagd: flags:") || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("code %d, stderr %q; want 1 and the daemon named", code, errOut)
	}
}

// The demo moves its default ports aside when they are taken, never an
// address the operator chose.
func TestDemoListenOnlyDefaultsMove(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	if ln, err := listenOrAny(addr, false); err == nil {
		ln.Close()
		t.Errorf("an address the operator chose, taken: listened on %s", ln.Addr())
	}
	ln, err := listenOrAny(addr, true)
	if err != nil {
		t.Fatalf("a default address, taken: %v", err)
	}
	defer ln.Close()
	if ln.Addr().String() == addr {
		t.Errorf("listened on the taken address %s", addr)
	}
}

// A rollback is not blocked by a problem elsewhere in the config (which
// the running proxy refused, and serves the previous version of): ramp
// sets the flag and warns. A problem that could change which flag or
// file is meant refuses it, as before.
func TestRampDespiteProblemsElsewhere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, from, to string
		code           int
		want           string // in stderr
		out            string // on stdout when applied
	}{
		{"typo in another route", "  - name: users\n", "  - name: users\n    stikcy: ip\n", 0, "routes[1].stikcy: unknown key", "orders: 10 -> 0\n"},
		{"bad URL in this route", "    service: http://127.0.0.1:8082\n", "    service: htp:/x\n", 0, "routes[0].service: invalid URL", "orders: 10 -> 0\n"},
		{"unknown key in this route, default flag", "    service: http://127.0.0.1:8082\n", "    service: http://127.0.0.1:8082\n    flag_name: orders-v2\n", 1, "routes[0].flag_name: unknown key", ""},
		{"unknown key in this route, another flag named", "    service: http://127.0.0.1:8082\n", "    service: http://127.0.0.1:8082\n    flag: other\n    stikcy: ip\n", 0, "routes[0].stikcy: unknown key", "orders: 1 -> 0\n"},
		{"bad flags key", "  file: flags.json\n", "  file: flags.json\n  fiel: x\n", 1, "flags.fiel: unknown key", ""},
		{"two routes of that name", "  - name: users\n", "  - name: orders\n", 1, "duplicate name", ""},
	} {
		cfg, flagFile := writeSetup(t, twoFlags)
		b, _ := os.ReadFile(cfg)
		if !strings.Contains(string(b), tc.from) {
			t.Fatalf("%s: setup: %q not in the config", tc.name, tc.from)
		}
		os.WriteFile(cfg, []byte(strings.Replace(string(b), tc.from, tc.to, 1)), 0o644)
		code, out, errOut := runCmd("ramp", "--config", cfg, "orders", "0")
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != tc.out {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, with %q", tc.name, code, out, errOut, tc.code, tc.out, tc.want)
		}
		if fb, _ := os.ReadFile(flagFile); (string(fb) != twoFlags) != (tc.code == 0) {
			t.Errorf("%s: flag file changed %v, want %v", tc.name, string(fb) != twoFlags, tc.code == 0)
		}
	}
}

func TestParsePercent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"25", 25, true}, {"25%", 25, true}, {"2.5", 2.5, true}, {"0", 0, true}, {"100", 100, true},
		{"100.0", 100, true}, {".5", 0.5, true}, {"5.", 5, true}, {"007", 7, true},
		{"100.01", 0, false}, {"101", 0, false}, {"-0", 0, false}, {"-1", 0, false}, {"+5", 0, false},
		{"1e1", 0, false}, {"0x1p4", 0, false}, {"Inf", 0, false}, {"NaN", 0, false}, {" 5", 0, false},
		{"5 ", 0, false}, {"5%%", 0, false}, {"%", 0, false}, {"", 0, false}, {".", 0, false},
		{"1.2.3", 0, false}, {"1_0", 0, false}, {"ten", 0, false},
	} {
		got, ok := parsePercent(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parsePercent(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// serve starts with a route's flag or shadow flag that cannot be a
// percentage, and its warnings say what each does meanwhile.
func TestLoadCheckedServingWarnsPerFlag(t *testing.T) {
	t.Parallel()
	cfg, _ := writeSetup(t, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":"10"},"defaultVariant":"on"},
	  "users-percent":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
	  "users-shadow":{"state":"ENABLED","variants":{"on":"x"},"defaultVariant":"on"}}}`)
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(b, "    shadow: {flag: users-shadow}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	if _, err := loadChecked(cfg, true, func(w string) { warnings = append(warnings, w) }); err != nil {
		t.Fatalf("serving: %v", err)
	}
	got := strings.Join(warnings, "\n")
	for _, want := range []string{"routes[0].flag: ", ": the route stays on the monolith until the flag is fixed", "routes[1].shadow.flag: ", ": the route compares nothing until the flag is fixed"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if _, err := loadChecked(cfg, false, func(string) {}); err == nil {
		t.Error("validate accepted the flags")
	}
}
