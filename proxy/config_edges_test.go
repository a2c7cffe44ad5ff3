package proxy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A percentage written with two decimals gives the service exactly
// percent×100 of the 10,000 buckets. Multiplied in floating point without
// rounding, 573 of them landed just above the whole number (0.07×100 =
// 7.000000000000001) and gave one bucket more.
func TestSplitHonoursTwoDecimals(t *testing.T) {
	t.Parallel()
	var wrong []string
	for k := 0; k <= 10000; k++ {
		p := float64(k) / 100 // what a flag file's "0.07" decodes to
		n := 0
		for b := uint32(0); b < Buckets; b++ {
			if toService(b, p) {
				n++
			}
		}
		if n != k {
			wrong = append(wrong, fmt.Sprintf("%v%%: %d buckets, want %d", p, n, k))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of 10001 two-decimal percentages get the wrong number of buckets, e.g.\n%s",
			len(wrong), strings.Join(wrong[:min(8, len(wrong))], "\n"))
	}
}

// Sticky names the split can never see are refused, since every request
// would silently fall back to the client address: a cookie or query name
// with a leading space (the typo sticky: "cookie: sid"), one holding '=',
// and the headers ServeHTTP deletes before the split.
func TestStickyNamesTheSplitCannotSeeAreRefused(t *testing.T) {
	t.Parallel()
	for _, sticky := range []string{
		`'cookie: sid'`,
		`'query: uid'`,
		`'cookie:a=b'`,
		`'query:a=b'`,
		`'header:Expect'`,
		`'header:X-Strangler-Shadow'`,
	} {
		cfg := strings.Replace(validConfig(""), "sticky: header:X-User-Id", "sticky: "+sticky, 1)
		if _, err := parseAndValidate(t, cfg); err == nil {
			t.Errorf("sticky: %s accepted, but the split never sees that key: every request falls back to the client address", sticky)
		}
	}
}

// A null entry in routes (a stray "-", or a template that rendered a route
// empty) is reported. The YAML decoder drops it silently, and Validate's
// messages then numbered the routes after it differently from the file.
func TestNullRouteEntryIsReported(t *testing.T) {
	t.Parallel()
	yaml := `
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
monolith: http://127.0.0.1:8081
flags:
  file: flags.json
routes:
  -
  - name: orders
    path: /api/orders/*
    service: htp:/x
`
	_, err := parseAndValidate(t, yaml)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "routes[0]:") && !strings.Contains(msg, "routes[1].service") {
		t.Errorf("the null entry is not reported, and the bad service (the file's routes[1]) is named by another index:\n%s", msg)
	}
	// And alone, a null entry is no error at all.
	if _, err := parseAndValidate(t, validConfig("  - ~\n")); err == nil {
		t.Error("routes: a null entry (- ~) is silently accepted and dropped")
	}
}

// Patterns that can never match a request are refused: chi matches the
// path only, so '?' and '#' in a pattern never match; the proxy resolves
// dot segments and decodes escaped unreserved characters before matching,
// so patterns holding them never match either. Accepted, the route was
// silently dead (its traffic went to the monolith whatever its flag said).
// The same characters inside a parameter's regexp are fine.
func TestPatternsThatCanNeverMatchAreRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern string
		refused bool
	}{
		{"/api/orders?x=1", true},
		{"/api/orders#top", true},
		{"/api/../admin/*", true},
		{"/api/./orders/*", true},
		{"/api/%2e%2E/admin/*", true},
		{"/api/%6Frders/*", true},
		{"/api/orders/*", false},
		{"/files/{name:[a-z]+\\.json}", false},
		{"/{lang:en|fr}?", true}, // the ? is outside the parameter
		{"/opt/{x:a?b}", false},
		{"/a/b%2Fc/*", false}, // an encoded slash stays encoded: it can match
		{"/v1.2/orders", false},
	} {
		cfg := strings.Replace(validConfig(""), "path: /api/orders/*", "path: '"+c.pattern+"'", 1)
		_, err := parseAndValidate(t, cfg)
		if (err != nil) != c.refused {
			t.Errorf("path %q: error %v, want refused %v", c.pattern, err, c.refused)
		}
	}
}

// The watcher skips a refused content while the file keeps it, but not
// for good: content B refused (its admin_token_file did not exist yet),
// then C applied, then B written again once valid, is applied. (It was
// ignored forever: no reload, no log line, no error counted.)
func TestWatchRetriesContentRefusedEarlier(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, nil)
	e.watchConfig()

	token := filepath.Join(e.dir, "token")
	withToken := basicConfig + "admin_token_file: " + token + "\n"
	adminStatus := func() int { s, _ := e.adminGet("/api/routes"); return s }

	e.rewriteConfig(withToken) // B: refused, the token file is missing
	eventually(t, 3*time.Second, "B refused", func() bool { return e.metric("strangler_config_reload_errors_total") == 1 })

	e.rewriteConfig(basicConfig + "access_log: true\n") // C: applied
	eventually(t, 3*time.Second, "C applied", func() bool { return e.srv.table.Load().cfg.AccessLog })

	writeFile(t, token, "s3cret\n")
	e.rewriteConfig(withToken) // B again, valid now
	deadline := time.Now().Add(3 * time.Second)
	for adminStatus() != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("B rewritten (and now valid) not applied within 3s: the admin API is still open; reload errors %v, last reload ok %v",
				e.metric("strangler_config_reload_errors_total"), e.metric("strangler_config_last_reload_successful"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A token rotated in place to one of the same length within one tick of
// the file system's timestamps (coarse: a jiffy on older Linux, 1-2 s on
// other file systems) takes effect at once. A cache keyed on size and
// modification time kept the revoked token valid and refused the new one.
// The Chtimes below stands for that same tick.
func TestAdminTokenRotationSameSize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	writeFile(t, token, "old-token-1\n")
	e := newEnv(t, basicConfig+"admin_token_file: "+token+"\n", flagJSON("orders-percent", 10), nil, nil)
	get := func(auth string) int { return e.adminStatus("/api/routes", auth) }
	if get("Bearer old-token-1") != 200 {
		t.Fatal("old token refused before rotation")
	}
	fi, err := os.Stat(token)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, token, "new-token-2\n") // rotated: revoke the old one
	if err := os.Chtimes(token, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if get("Bearer old-token-1") != 401 || get("Bearer new-token-2") != 200 {
		t.Errorf("after rotation: old token -> %d, new token -> %d; want 401 and 200", get("Bearer old-token-1"), get("Bearer new-token-2"))
	}
}

// sticky: ip behind a trusted proxy keys one client the same however its
// X-Forwarded-For entry is written. Some front proxies (Azure Application
// Gateway, some IIS/ARR setups) write "ip:port"; with the port in the key,
// one user got a new bucket per connection.
func TestXFFKeyIsCanonical(t *testing.T) {
	t.Parallel()
	trusted := parseTrusted([]string{"127.0.0.1", "2001:db8:ffff::/64"})
	key := func(xff string) string {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.RemoteAddr = "127.0.0.1:4000"
		r.Header.Set("X-Forwarded-For", xff)
		return newSticky("ip").key(r, trusted)
	}
	a, b := key("203.0.113.7:50001"), key("203.0.113.7:50002")
	if a != b {
		t.Errorf("one client on two connections gets two keys: %q and %q", a, b)
	}
	for _, tc := range []struct{ xff, want string }{
		{"203.0.113.7:50001", "203.0.113.7"},
		{"2001:DB8:0::1", "2001:db8::1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"198.51.100.7, [2001:db8:ffff::a]", "198.51.100.7"}, // a trusted hop in brackets is still trusted
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"203.0.113.7, 127.0.0.1:8443", "203.0.113.7"}, // a trusted hop written with a port is still trusted
		{"unknown", "unknown"},
	} {
		if got := key(tc.xff); got != tc.want {
			t.Errorf("X-Forwarded-For %q: key %q, want %q", tc.xff, got, tc.want)
		}
	}
}

// Ejection time doubles per ejection in a row up to max_time, and never
// wraps: shifted first and checked after, a base_time of 2^34+1 ns gave
// 2^30 ns (about 1 s) at the 31st ejection in a row.
func TestEjectionTimeDoublesToMax(t *testing.T) {
	t.Parallel()
	odd := time.Duration(1<<34 + 1)
	for _, tc := range []struct {
		base, max time.Duration
		streak    int
		want      time.Duration
	}{
		{2 * time.Second, 10 * time.Second, 0, 2 * time.Second},
		{2 * time.Second, 10 * time.Second, 1, 4 * time.Second},
		{2 * time.Second, 10 * time.Second, 2, 8 * time.Second},
		{2 * time.Second, 10 * time.Second, 3, 10 * time.Second},
		{2 * time.Second, 10 * time.Second, 1000, 10 * time.Second},
		{odd, time.Hour, 30, time.Hour},
		{odd, time.Duration(1<<63 - 1), 28, odd << 28},
		{odd, time.Duration(1<<63 - 1), 29, time.Duration(1<<63 - 1)},
		{odd, time.Duration(1<<63 - 1), 30, time.Duration(1<<63 - 1)},
		{time.Nanosecond, time.Duration(1<<63 - 1), 62, 1 << 62},
		{time.Nanosecond, time.Duration(1<<63 - 1), 63, 1 << 62},
	} {
		if got := ejectionTime(tc.base, tc.max, tc.streak); got != tc.want {
			t.Errorf("ejectionTime(%v, %v, %d) = %v, want %v", tc.base, tc.max, tc.streak, got, tc.want)
		}
	}
}

// A method chi does not know (PURGE, PROPFIND, a custom token) follows the
// split on a route that accepts every method; chi's Find matched nothing
// for it, so it went to the monolith whatever the route's percentage. A
// route that lists its methods still does not take it, and a less
// specific route that accepts every method does.
func TestCustomMethodsFollowTheSplit(t *testing.T) {
	t.Parallel()
	cfg := basicConfig + `  - name: items
    path: /api/orders/{id}/items
    methods: [GET]
    service: {{service}}
`
	e := newEnv(t, cfg, flagJSON("orders-percent", 100, "items-percent", 100), nil, nil)
	for _, tc := range []struct{ method, path, want string }{
		{"PURGE", "/api/orders/1", "service"},
		{"PROPFIND", "/api/orders/1", "service"},
		{"GET", "/api/orders/1/items", "service"},
		{"PURGE", "/api/orders/1/items", "service"}, // items lists GET only: orders takes it
		{"PURGE", "/elsewhere", "monolith"},
	} {
		req, _ := http.NewRequest(tc.method, e.proxyURL+tc.path, nil)
		req.Header.Set("X-User-Id", "u")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Served-By"); got != tc.want {
			t.Errorf("%s %s: served by %q, want %s", tc.method, tc.path, got, tc.want)
		}
	}
}

// A refused change undone by hand (the file written back as it was, byte
// for byte the running config) clears the failed-reload gauge: the file
// and the proxy agree again. It stayed 0, and the alert firing, until
// someone sent SIGHUP.
func TestWatchClearsFailedReloadWhenFileIsPutBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, nil)
	e.watchConfig()
	running, err := os.ReadFile(e.configPath())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.configPath(), string(running)+"bogus_key: 1\n")
	eventually(t, 3*time.Second, "the bad change refused", func() bool {
		return e.metric("strangler_config_last_reload_successful") == 0
	})
	writeFile(t, e.configPath(), string(running))
	eventually(t, 3*time.Second, "the gauge back to 1 once the file holds the running config", func() bool {
		return e.metric("strangler_config_last_reload_successful") == 1
	})
	// At least the refusal (a loaded machine may also catch the file
	// half written, since it is written in place here).
	if n := e.metric("strangler_config_reload_errors_total"); n < 1 {
		t.Errorf("reload errors %v, want the refusal counted", n)
	}
}
