package proxy

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestSplitAccuracyOver10000Keys(t *testing.T) {
	t.Parallel()
	for _, pct := range []float64{1, 10, 50} {
		for _, route := range []string{"orders", "users"} {
			t.Run(fmt.Sprintf("%s/%v", route, pct), func(t *testing.T) {
				t.Parallel()
				seed := routeSeed(route)
				n := 0
				for i := range 10000 {
					if toService(bucket(seed, fmt.Sprintf("user-%d", i)), pct) {
						n++
					}
				}
				got := float64(n) / 100
				if math.Abs(got-pct) > 1 {
					t.Errorf("%v%% asked, %.2f%% of 10,000 keys sent to the service", pct, got)
				}
			})
		}
	}
}

func TestSplitIsStickyAndRampIsMonotonic(t *testing.T) {
	t.Parallel()
	seed := routeSeed("orders")
	onService := map[string]bool{}
	for pct := 0.0; pct <= 100; pct += 0.5 {
		for i := range 2000 {
			key := fmt.Sprintf("k%d", i)
			b := bucket(seed, key)
			if b != bucket(seed, key) {
				t.Fatalf("bucket of %q is not stable", key)
			}
			svc := toService(b, pct)
			if onService[key] && !svc {
				t.Fatalf("raising to %v%% moved %q back to the monolith", pct, key)
			}
			onService[key] = svc
		}
	}
	for k, svc := range onService {
		if !svc {
			t.Fatalf("%q not on the service at 100%%", k)
		}
	}
	if toService(0, 0) {
		t.Error("0% sent bucket 0 to the service")
	}
}

func TestSplitDiffersByRoute(t *testing.T) {
	t.Parallel()
	// At 50 % on two routes, a user should not land on the same side of
	// both every time: routes ramp different users first.
	a, b := routeSeed("orders"), routeSeed("users")
	same := 0
	for i := range 10000 {
		k := fmt.Sprintf("user-%d", i)
		if toService(bucket(a, k), 50) == toService(bucket(b, k), 50) {
			same++
		}
	}
	if same < 4500 || same > 5500 {
		t.Errorf("routes agree on %d of 10,000 keys; want about half (independent)", same)
	}
}

func TestStickyKey(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name, sticky, remote, target string
		header                       http.Header
		trusted                      []netip.Prefix
		want                         string
	}{
		{"header", "header:x-user-id", "192.0.2.1:5", "/", http.Header{"X-User-Id": {"alice"}}, nil, "alice"},
		{"header missing falls back to ip", "header:X-User-Id", "192.0.2.1:5", "/", nil, nil, "192.0.2.1"},
		{"cookie", "cookie:uid", "192.0.2.1:5", "/", http.Header{"Cookie": {"a=1; uid=bob; c=3"}}, nil, "bob"},
		{"cookie quoted", "cookie:uid", "192.0.2.1:5", "/", http.Header{"Cookie": {`uid="bob"`}}, nil, "bob"},
		{"cookie prefix is not a match", "cookie:uid", "192.0.2.1:5", "/", http.Header{"Cookie": {"xuid=eve"}}, nil, "192.0.2.1"},
		{"query", "query:u", "192.0.2.1:5", "/x?a=1&u=carol%20c", nil, nil, "carol c"},
		{"query encoded name", "query:u", "192.0.2.1:5", "/x?%75=dan", nil, nil, "dan"},
		{"query missing", "query:u", "192.0.2.1:5", "/x?uu=1", nil, nil, "192.0.2.1"},
		{"ip untrusted peer ignores XFF", "ip", "192.0.2.1:5", "/", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, trusted, "192.0.2.1"},
		{"ip trusted peer uses right-most untrusted", "ip", "10.1.1.1:5", "/", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9, 10.2.2.2"}}, trusted, "203.0.113.9"},
		{"ip trusted peer several XFF lines", "ip", "10.1.1.1:5", "/", http.Header{"X-Forwarded-For": {"1.1.1.1", "203.0.113.7"}}, trusted, "203.0.113.7"},
		{"ip all trusted falls back to peer", "ip", "10.1.1.1:5", "/", http.Header{"X-Forwarded-For": {"10.3.3.3"}}, trusted, "10.1.1.1"},
		{"ipv6 peer", "ip", "[2001:db8::1]:5", "/", nil, nil, "2001:db8::1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "http://x"+c.target, nil)
			r.RemoteAddr = c.remote
			if c.header != nil {
				r.Header = c.header
			}
			if got := newSticky(c.sticky).key(r, c.trusted); got != c.want {
				t.Errorf("key = %q, want %q", got, c.want)
			}
		})
	}
}

func TestProxySplitIsStickyPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 30), nil, nil)
	first := map[int]string{}
	for round := range 3 {
		for i := range 200 {
			resp, _ := e.get("/api/orders/1", "X-User-Id", fmt.Sprintf("user-%d", i))
			by := resp.Header.Get("X-Served-By")
			if round == 0 {
				first[i] = by
			} else if first[i] != by {
				t.Fatalf("user-%d served by %s, then by %s", i, first[i], by)
			}
		}
	}
	n := 0
	for _, by := range first {
		if by == "service" {
			n++
		}
	}
	if n < 30 || n > 90 {
		t.Errorf("%d of 200 users on the service at 30%%", n)
	}
}

func TestProxyRandomSplit(t *testing.T) {
	t.Parallel()
	cfg := `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - {name: orders, path: /api/orders/*, service: "{{service}}", sticky: random}
`
	e := newEnv(t, cfg, flagJSON("orders-percent", 50), nil, nil)
	got := e.servedBy(400, "/api/orders/1")
	if got["service"] < 120 || got["monolith"] < 120 {
		t.Errorf("random 50%%: %v", got)
	}
}

func TestFlagEditPickedUpLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	if got := e.servedBy(50, "/api/orders/1"); got["service"] != 0 {
		t.Fatalf("0%%: %v", got)
	}
	writeFile(t, e.flagFile, flagJSON("orders-percent", 100))
	eventually(t, 2*time.Second, "100% applied", func() bool {
		resp, _ := e.get("/api/orders/1", "X-User-Id", "someone")
		return resp.Header.Get("X-Served-By") == "service"
	})
	if got := e.servedBy(50, "/api/orders/1"); got["service"] != 50 {
		t.Fatalf("100%%: %v", got)
	}
	if v := e.metric(`strangler_route_percent{route="orders"}`); v != 100 {
		t.Errorf("strangler_route_percent = %v, want 100", v)
	}
}

func TestInvalidFlagFileKeepsLastGood(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), nil, nil)
	for i, bad := range []string{"", "{", `{"flags":5}`, `{}`, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":1`} {
		writeFile(t, e.flagFile, bad)
		eventually(t, 2*time.Second, "reload error counted", func() bool {
			return e.metric("strangler_flag_reload_errors_total") >= float64(i+1)
		})
		if got := e.servedBy(20, "/api/orders/1"); got["service"] != 20 {
			t.Fatalf("after %q: %v; want all on the service (last good flags)", bad, got)
		}
		if v := e.metric("strangler_flag_last_reload_successful"); v != 0 {
			t.Errorf("after %q: strangler_flag_last_reload_successful = %v, want 0 (stale flags)", bad, v)
		}
		if st := e.routeStatus(); st.FlagsStale == "" || st.Percent != 100 {
			t.Errorf("after %q: /api/routes flags_stale %q, percent %v; want the reason, and the last good 100", bad, st.FlagsStale, st.Percent)
		}
	}
	// A valid file again: current flags, and the gauge says so.
	writeFile(t, e.flagFile, flagJSON("orders-percent", 0))
	eventually(t, 2*time.Second, "flags current again", func() bool {
		return e.metric("strangler_flag_last_reload_successful") == 1
	})
	if got := e.servedBy(20, "/api/orders/1"); got["monolith"] != 20 {
		t.Errorf("after the rollback to 0: %v", got)
	}
	if st := e.routeStatus(); st.FlagsStale != "" {
		t.Errorf("current flags: /api/routes flags_stale %q, want none", st.FlagsStale)
	}
}

func TestFlagProblemsSendTrafficToMonolith(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, flags string }{
		{"missing flag", flagJSON("other-percent", 100)},
		{"out of range", flagJSON("orders-percent", 150)},
		{"negative", flagJSON("orders-percent", -5)},
		{"not a number", `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":"lots"},"defaultVariant":"on"}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvNoCheck(t, basicConfig, c.flags)
			if got := e.servedBy(20, "/api/orders/1"); got["monolith"] != 20 {
				t.Fatalf("%v; want all on the monolith", got)
			}
			if v := e.waitMetric(`strangler_flag_errors_total{flag="orders-percent"}`, 20); v < 20 {
				t.Errorf("strangler_flag_errors_total = %v, want >= 20", v)
			}
		})
	}
}

func TestTargetingRuleForcesUsers(t *testing.T) {
	t.Parallel()
	flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"all":100,"none":0,"ramp":0},"defaultVariant":"ramp",
	  "targeting":{"if":[{"in":[{"var":"targetingKey"},["vip-1","vip-2"]]},"all",{"==":[{"var":"method"},"DELETE"]},"none",null]}}}}`
	e := newEnv(t, basicConfig, flags, nil, nil)
	for _, c := range []struct{ user, method, want string }{
		{"vip-1", "GET", "service"}, {"vip-2", "GET", "service"}, {"someone", "GET", "monolith"}, {"vip-1", "DELETE", "service"},
	} {
		req, _ := http.NewRequest(c.method, e.proxyURL+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", c.user)
		resp, _ := e.do(req)
		if got := resp.Header.Get("X-Served-By"); got != c.want {
			t.Errorf("%s %s: served by %s, want %s", c.user, c.method, got, c.want)
		}
	}
}
