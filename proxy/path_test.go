package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestNormalizePathResolvesDotSegmentsOnly(t *testing.T) {
	t.Parallel()
	cases := []struct{ target, path, escaped string }{
		{"/api/orders/7", "/api/orders/7", "/api/orders/7"},
		{"/api/orders/../admin", "/api/admin", "/api/admin"},
		{"/api/orders/../../admin", "/admin", "/admin"},
		{"/api/orders/%2e%2e/admin", "/api/admin", "/api/admin"},
		{"/api/orders/%2E%2e/admin", "/api/admin", "/api/admin"},
		{"/api/orders/.%2e/admin", "/api/admin", "/api/admin"},
		{"/api/orders/%2e./admin", "/api/admin", "/api/admin"},
		{"/api/orders/./7", "/api/orders/7", "/api/orders/7"},
		{"/api/orders/%2e/7", "/api/orders/7", "/api/orders/7"},
		{"/api/orders/7/.", "/api/orders/7/", "/api/orders/7/"},
		{"/api/orders/7/..", "/api/orders/", "/api/orders/"},
		{"/..", "/", "/"},
		{"/../../..", "/", "/"},
		{"/a/b/../../../c", "/c", "/c"},
		{"/a//../b", "/a/b", "/a/b"},
		{"/a/./../b/./c/.", "/b/c/", "/b/c/"},
		// An encoded slash is part of its segment, never a separator.
		{"/api/orders%2F..%2Fadmin", "/api/orders/../admin", "/api/orders%2F..%2Fadmin"},
		{"/api/orders/%2F../admin", "/api/orders//../admin", "/api/orders/%2F../admin"},
		{"/api/orders/x%2F/../admin", "/api/orders/admin", "/api/orders/admin"},
		{"/api/x%2Fy/../orders/%2F7", "/api/orders//7", "/api/orders/%2F7"},
		{"/a/%2e%2e%2fb", "/a/../b", "/a/..%2fb"}, // one segment
		// A RawPath net/url will not forward is not routed on either.
		{"/.%2F\"", "/\"", "/%22"},
		{"/api%2Forders/x\"", "/api/orders/x\"", "/api/orders/x%22"},
		// Unreserved characters percent-encoded are those characters
		// (RFC 3986 §6.2.2.2); other escapes stay.
		{"/api/%6Frders/7", "/api/orders/7", "/api/orders/7"},
		{"/%61pi/orders/%37", "/api/orders/7", "/api/orders/7"},
		{"/a%7Eb/%2Fc%41%2d%5F", "/a~b//cA-_", "/a~b/%2FcA-_"},
		{"/a/%2E%2e%2F%2e/b", "/a/.././b", "/a/..%2F./b"},
		// Not dot segments.
		{"/a/.../b", "/a/.../b", "/a/.../b"},
		{"/a/.b/..c/c.", "/a/.b/..c/c.", "/a/.b/..c/c."},
		{"/a/%252e%252e/b", "/a/%2e%2e/b", "/a/%252e%252e/b"},
		{"/static/app.min.js", "/static/app.min.js", "/static/app.min.js"},
		{"/caf%C3%A9/../x", "/x", "/x"},
		{"*", "*", "*"},
		// Absolute form.
		{"http://shop.example/a/../b", "/b", "/b"},
	}
	for _, c := range cases {
		u, err := url.ParseRequestURI(c.target)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		normalizePath(u)
		if u.Path != c.path || u.EscapedPath() != c.escaped {
			t.Errorf("%s: path %q escaped %q, want %q %q", c.target, u.Path, u.EscapedPath(), c.path, c.escaped)
		}
		again := *u
		normalizePath(&again)
		if again.Path != u.Path || again.RawPath != u.RawPath {
			t.Errorf("%s: not idempotent: %q then %q", c.target, u.EscapedPath(), again.EscapedPath())
		}
	}
}

func TestNormalizePathKeepsQueryAndAllocatesOnlyToRewrite(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process's allocations.
	u, _ := url.ParseRequestURI("/a/../b?x=../y;z=%2e%2E&&q=/./")
	normalizePath(u)
	if u.Path != "/b" || u.RawQuery != "x=../y;z=%2e%2E&&q=/./" {
		t.Errorf("got %q ? %q", u.Path, u.RawQuery)
	}
	// A path with a non-default escaping (RawPath set) costs net/url's own
	// check, one allocation; the common path costs nothing.
	for _, target := range []string{"/api/orders/7", "/static/app.min.js", "/caf%C3%A9/x.y"} {
		u, _ := url.ParseRequestURI(target)
		if n := testing.AllocsPerRun(100, func() { normalizePath(u) }); n != 0 {
			t.Errorf("%s: %v allocations", target, n)
		}
	}
}

func TestDotSegmentsResolvedBeforeRoutingAndForwarded(t *testing.T) {
	t.Parallel()
	echo := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Served-By", name)
			w.Header().Set("X-Got-Request-Uri", r.RequestURI)
		})
	}
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), echo("monolith"), echo("service"))
	cases := []struct{ target, backend, got string }{
		{"/api/orders/7", "service", "/api/orders/7"},
		{"/api/orders/../admin", "monolith", "/api/admin"},
		{"/api/orders/../../admin", "monolith", "/admin"},
		{"/api/orders/%2e%2e/admin", "monolith", "/api/admin"},
		{"/api/orders/%2E%2E/%2e%2e/admin", "monolith", "/admin"},
		{"/api/orders/./../admin", "monolith", "/api/admin"},
		{"/api/x/../orders/7", "service", "/api/orders/7"},
		{"/api/x/%2e%2e/orders/7", "service", "/api/orders/7"},
		{"/api/orders/a%2Fb", "service", "/api/orders/a%2Fb"},
		{"/api/orders%2F7", "monolith", "/api/orders%2F7"},
		{"/api/orders%2F..%2Fadmin", "monolith", "/api/orders%2F..%2Fadmin"},
		{"/api%2Forders/7\"", "service", "/api/orders/7%22"},
		{"/api/orders/7?q=../x;y=%2e&z", "service", "/api/orders/7?q=../x;y=%2e&z"},
		{"/api/%6Frders/7", "service", "/api/orders/7"},
		{"/%61pi/orders/7?q=%6F", "service", "/api/orders/7?q=%6F"},
		{"/api/orders%2f%37", "monolith", "/api/orders%2f7"},
		{"/api/admin/../orders/7?a=1;b=2", "service", "/api/orders/7?a=1;b=2"},
	}
	for i, c := range cases {
		raw := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: dots-%d\r\nConnection: close\r\n\r\n", c.target, i)
		resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
		if got := statuses(resps); !slices.Equal(got, []int{200}) {
			t.Errorf("%s: answers %v", c.target, got)
			continue
		}
		h := resps[0].header
		if h.Get("X-Served-By") != c.backend || h.Get("X-Got-Request-Uri") != c.got {
			t.Errorf("%s: routed to %s as %q, want %s as %q", c.target, h.Get("X-Served-By"), h.Get("X-Got-Request-Uri"), c.backend, c.got)
		}
	}
}
