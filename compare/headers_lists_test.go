package compare_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// headerCase is one pair of header maps and whether they must match. Each
// case is compared both ways round: the comparison must be symmetric.
type headerCase struct {
	name  string
	a, b  http.Header
	match bool
}

func runHeaderCases(t *testing.T, cases []headerCase) {
	t.Helper()
	r := mustRules(t, compare.RulesConfig{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, dir := range []struct {
				name string
				p, s http.Header
			}{{"a,b", tc.a, tc.b}, {"b,a", tc.b, tc.a}} {
				res := compare.Compare(&compare.Response{Status: 200, Header: dir.p}, &compare.Response{Status: 200, Header: dir.s}, r)
				want := compare.Mismatch
				if tc.match {
					want = compare.Match
				}
				if res.Outcome != want {
					t.Errorf("(%s) %v vs %v: outcome %v, want %v; differences %s", dir.name, dir.p, dir.s, res.Outcome, want, diffsJSON(t, res.Differences))
				}
			}
		})
	}
}

func TestHeaderListElements(t *testing.T) {
	t.Parallel()
	h := func(kv ...string) http.Header { return hdr(kv...) }
	runHeaderCases(t, []headerCase{
		// Equal as lists.
		{"Allow without space", h("Allow", "GET,HEAD"), h("Allow", "GET, HEAD"), true},
		{"Cache-Control two lines vs one", h("Cache-Control", "no-cache", "Cache-Control", "no-store"), h("Cache-Control", "no-cache,no-store"), true},
		{"Cache-Control two lines vs one with space", h("Cache-Control", "no-cache", "Cache-Control", "no-store"), h("Cache-Control", "no-cache, no-store"), true},
		{"CORS methods", h("Access-Control-Allow-Methods", "GET,POST"), h("Access-Control-Allow-Methods", "GET, POST"), true},
		{"tabs and extra spaces", h("Allow", "GET,\tHEAD ,  OPTIONS"), h("Allow", "GET, HEAD, OPTIONS"), true},
		{"empty elements", h("Allow", ", GET,,HEAD,"), h("Allow", "GET, HEAD"), true},
		{"empty line among lines", h("Allow", "GET", "Allow", "", "Allow", "HEAD"), h("Allow", "GET, HEAD"), true},
		{"comma inside quotes kept", h("X-Q", `"a,b" , c`), h("X-Q", `"a,b",c`), true},
		{"escaped quote inside quotes", h("X-Q", `"a\",b",c`), h("X-Q", `"a\",b", c`), true},
		{"same date", h("Sunset", "Tue, 15 Nov 1994 08:12:31 GMT"), h("Sunset", "Tue, 15 Nov 1994 08:12:31 GMT"), true},
		{"same Date", h("Date", "Tue, 15 Nov 1994 08:12:31 GMT"), h("Date", "Tue, 15 Nov 1994 08:12:31 GMT"), true},
		{"byte-equal", h("X-Frame-Options", "DENY"), h("X-Frame-Options", "DENY"), true},
		{"quote open across lines equals the combined line", h("X-Q", `"a`, "X-Q", `b"`), h("X-Q", `"a, b"`), true},
		{"empty lines joined", h("X-Q", "", "X-Q", "a"), h("X-Q", ", a"), true},

		// Still differences.
		{"order matters", h("X-List", "a,b"), h("X-List", "b, a"), false},
		{"order across lines", h("X-List", "b", "X-List", "a"), h("X-List", "a,b"), false},
		{"element missing", h("Allow", "GET,HEAD"), h("Allow", "GET"), false},
		{"element added", h("Access-Control-Allow-Methods", "GET,POST"), h("Access-Control-Allow-Methods", "GET, POST, DELETE"), false},
		{"space inside an element", h("Cache-Control", "max-age=0"), h("Cache-Control", "max-age = 0"), false},
		{"case of an element", h("Allow", "GET, HEAD"), h("Allow", "get, head"), false},
		{"whitespace inside quotes", h("X-Q", `"a,b", c`), h("X-Q", `"a, b", c`), false},
		{"whitespace inside quotes after an escaped quote", h("X-Q", `"a\",b", c`), h("X-Q", `"a\", b", c`), false},
		{"different date", h("Sunset", "Tue, 15 Nov 1994 08:12:31 GMT"), h("Sunset", "Wed, 16 Nov 1994 08:12:31 GMT"), false},
		{"empty list vs absent", h("Allow", ""), h(), false},
		{"one side only", h("Allow", "GET"), h(), false},
		{"quote open across lines, other text", h("X-Q", `"a`, "X-Q", `b"`), h("X-Q", `"a, c"`), false},
		{"quote open across lines, other spacing", h("X-Q", `"a`, "X-Q", `b"`), h("X-Q", `"a,b"`), false},
	})
}

// Headers whose elements form a set, or directives with case and quoting
// of their own, are compared as a client reads them: two frameworks write
// the same policy in their own order (found by a review).
func TestHeaderSetsAndDirectives(t *testing.T) {
	t.Parallel()
	h := func(kv ...string) http.Header { return hdr(kv...) }
	runHeaderCases(t, []headerCase{
		{"Cache-Control order", h("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"), h("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0"), true},
		{"Cache-Control across lines", h("Cache-Control", "no-store", "Cache-Control", "no-cache"), h("Cache-Control", "no-cache,no-store"), true},
		{"Cache-Control directive case", h("Cache-Control", "No-Cache, Max-Age=60"), h("Cache-Control", "no-cache, max-age=60"), true},
		{"Cache-Control quoted value", h("Cache-Control", `max-age="60", private="Set-Cookie"`), h("Cache-Control", `max-age=60, private="Set-Cookie"`), true},
		{"Allow order", h("Allow", "GET, HEAD"), h("Allow", "HEAD,GET"), true},
		{"CORS methods order", h("Access-Control-Allow-Methods", "GET, POST"), h("Access-Control-Allow-Methods", "POST, GET"), true},
		{"CORS headers case", h("Access-Control-Allow-Headers", "Content-Type, X-Token"), h("Access-Control-Allow-Headers", "x-token, content-type"), true},
		{"HSTS spacing and case", h("Strict-Transport-Security", "max-age=31536000; includeSubDomains"), h("Strict-Transport-Security", "max-age=31536000;includesubdomains"), true},

		{"Cache-Control directive missing", h("Cache-Control", "no-cache, no-store"), h("Cache-Control", "no-cache"), false},
		{"Cache-Control value", h("Cache-Control", "max-age=60"), h("Cache-Control", "max-age=600"), false},
		{"Cache-Control private against public", h("Cache-Control", "private, max-age=60"), h("Cache-Control", "public, max-age=60"), false},
		{"Cache-Control space around =", h("Cache-Control", "max-age=0"), h("Cache-Control", "max-age = 0"), false},
		{"Allow method case", h("Allow", "GET, HEAD"), h("Allow", "get, head"), false},
		{"CORS method missing", h("Access-Control-Allow-Methods", "GET, POST"), h("Access-Control-Allow-Methods", "GET"), false},
		{"HSTS without includeSubDomains", h("Strict-Transport-Security", "max-age=31536000; includeSubDomains"), h("Strict-Transport-Security", "max-age=31536000"), false},
	})
}

const monoCookie = "session=abc123; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"

func TestSetCookieAttributes(t *testing.T) {
	t.Parallel()
	sc := func(lines ...string) http.Header {
		h := http.Header{}
		for _, l := range lines {
			h.Add("Set-Cookie", l)
		}
		return h
	}
	mono := sc(monoCookie)
	runHeaderCases(t, []headerCase{
		// Per-answer differences that must not count.
		{"value and Max-Age differ", mono, sc("session=zzz999; Path=/; Domain=example.com; Max-Age=7200; Secure; HttpOnly; SameSite=Lax"), true},
		{"future Expires instead of Max-Age", mono, sc("session=zzz999; Path=/; Domain=example.com; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax"), true},
		{"attribute names' case and order", mono, sc("session=q; samesite=lax; httponly; secure; max-age=10; domain=example.com; path=/"), true},
		{"Domain case and leading dot", mono, sc("session=q; Path=/; Domain=.EXAMPLE.com; Max-Age=1; Secure; HttpOnly; SameSite=LAX"), true},
		{"value net/http refuses", sc("session=a b; Path=/"), sc("session=ab; Path=/"), true},
		{"several cookies in another order", sc("csrf=1; Path=/", monoCookie), sc(monoCookie, "csrf=2; Path=/"), true},
		{"both deleted, differently", sc("session=; Path=/; Max-Age=0"), sc(`session=""; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT`), true},
		{"Max-Age wins over a past Expires", sc("session=a; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), sc("session=b; Max-Age=3600"), true},
		{"unnamed cookies", sc("abc; Path=/"), sc("xyz; Path=/"), true},
		{"Partitioned on both, its name's case", sc("session=a; Path=/; Secure; Partitioned"), sc("session=b; Path=/; Secure; partitioned"), true},

		// Divergences that must count.
		{"deleted by Max-Age=0 and empty value", mono, sc("session=; Path=/; Domain=example.com; Max-Age=0; Secure; HttpOnly; SameSite=Lax"), false},
		{"deleted by Max-Age=0 only", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=0; Secure; HttpOnly; SameSite=Lax"), false},
		{"deleted by negative Max-Age", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=-1; Secure; HttpOnly; SameSite=Lax"), false},
		{"deleted by past Expires", mono, sc("session=abc123; Path=/; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax"), false},
		{"deleted by quoted empty value", mono, sc(`session=""; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax`), false},
		{"review: deleted with past Expires", mono, sc("session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), false},
		{"other Path", mono, sc("session=abc123; Path=/admin; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"), false},
		{"Path absent", mono, sc("session=abc123; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"), false},
		{"other Domain", mono, sc("session=abc123; Path=/; Domain=other.example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"), false},
		{"Domain absent", mono, sc("session=abc123; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"), false},
		{"Secure dropped", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=3600; HttpOnly; SameSite=Lax"), false},
		{"HttpOnly dropped", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=3600; Secure; SameSite=Lax"), false},
		{"all flags dropped", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=3600"), false},
		{"SameSite None", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=None"), false},
		{"SameSite Strict", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"), false},
		{"Partitioned dropped", sc("session=a; Path=/; Secure; SameSite=None; Partitioned"), sc("session=b; Path=/; Secure; SameSite=None"), false},
		{"SameSite absent is not Lax", mono, sc("session=abc123; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly"), false},
		{"other name", mono, sc("sid=abc123; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"), false},
		{"extra cookie", mono, sc(monoCookie, "csrf=1"), false},
		{"extra line for the same name", sc("session=a; Path=/", "session=b; Path=/admin"), sc("session=c; Path=/"), false},
		{"unnamed cookie deleted", sc("abc; Path=/"), sc("; Path=/"), false},
		{"persistent by Max-Age against a session cookie", sc("remember=1; Path=/; Max-Age=2592000"), sc("remember=2; Path=/"), false},
		{"persistent by Expires against a session cookie", sc("remember=1; Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT"), sc("remember=2; Path=/"), false},
		{"both session cookies", sc("s=1; Path=/"), sc("s=2; Path=/"), true},
	})
}

// TestSetCookieDifferenceText checks how an attribute difference is
// reported: under the header's name, with the cookie names as each side's
// value as before, a note that says which attributes differ, and never a
// cookie value.
func TestSetCookieDifferenceText(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	mono := hdr("Set-Cookie", monoCookie, "Set-Cookie", "csrf=tok3n-a; Path=/")
	svc := hdr("Set-Cookie", "session=; Path=/admin; Domain=example.com; Max-Age=0; HttpOnly; SameSite=Lax", "Set-Cookie", "csrf=tok3n-b; Path=/")
	for _, tc := range []struct {
		name       string
		p, s       http.Header
		primaryVal string
		note       string
	}{
		{"a,b", mono, svc, "primary", "Set-Cookie attributes differ: cookie session: primary [persistent; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax], shadow [deleted; Path=/admin; Domain=example.com; HttpOnly; SameSite=Lax]"},
		{"b,a", svc, mono, "shadow", "Set-Cookie attributes differ: cookie session: primary [deleted; Path=/admin; Domain=example.com; HttpOnly; SameSite=Lax], shadow [persistent; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := compare.Compare(&compare.Response{Status: 200, Header: tc.p}, &compare.Response{Status: 200, Header: tc.s}, r)
			if got, want := diffsJSON(t, res.Differences), `[{"kind":"header","header":"Set-Cookie","primary":"csrf, session","shadow":"csrf, session"}]`; got != want {
				t.Fatalf("differences %s, want %s", got, want)
			}
			if got := res.Differences[0].Note; got != tc.note {
				t.Errorf("note %q\nwant %q", got, tc.note)
			}
			out, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"abc123", "tok3n"} {
				if strings.Contains(string(out), secret) {
					t.Errorf("result holds cookie value %q: %s", secret, out)
				}
			}
		})
	}

	// Names that differ are told by the values; no note then.
	res := compare.Compare(&compare.Response{Status: 200, Header: hdr("Set-Cookie", monoCookie)}, &compare.Response{Status: 200, Header: hdr("Set-Cookie", "sid=abc123")}, r)
	if len(res.Differences) != 1 || res.Differences[0].Note != "" {
		t.Errorf("names differ: want one difference without a note, got %s", diffsJSON(t, res.Differences))
	}
}

// TestHeaderListsNoise checks that noise learning agrees with both rules:
// a header learned as noisy stays ignored, and monolith answers that are
// equal under the rules (list whitespace, cookie values) teach nothing.
func TestHeaderListsNoise(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	resp := func(kv ...string) *compare.Response { return &compare.Response{Status: 200, Header: hdr(kv...)} }
	for _, tc := range []struct {
		name         string
		monoA, monoB *compare.Response // the monolith's two answers, which teach
		p, s         *compare.Response // a later comparison without a second monolith answer
		fields       string            // what is learned
		wantMatch    bool
	}{
		{
			name:  "noisy list header stays ignored",
			monoA: resp("X-Node", "a,b"), monoB: resp("X-Node", "c, d"),
			p: resp("X-Node", "a, b"), s: resp("X-Node", "e,f"),
			fields: "header:X-Node", wantMatch: true,
		},
		{
			// A monolith that deletes the session on some answers teaches
			// nothing for later ones: Set-Cookie is never remembered.
			name:  "noisy Set-Cookie is not remembered",
			monoA: resp("Set-Cookie", monoCookie), monoB: resp("Set-Cookie", "session=; Max-Age=0"),
			p: resp("Set-Cookie", monoCookie), s: resp("Set-Cookie", "session=abc123; Path=/admin"),
			fields: "", wantMatch: false,
		},
		{
			name:  "list whitespace teaches nothing",
			monoA: resp("X-List", "a,b"), monoB: resp("X-List", "a, b"),
			p: resp("X-List", "a,b"), s: resp("X-List", "b, a"),
			fields: "", wantMatch: false,
		},
		{
			name:  "cookie values teach nothing",
			monoA: resp("Set-Cookie", monoCookie), monoB: resp("Set-Cookie", strings.Replace(monoCookie, "abc123", "def456", 1)),
			p: resp("Set-Cookie", monoCookie), s: resp("Set-Cookie", strings.Replace(monoCookie, "; Secure", "", 1)),
			fields: "", wantMatch: false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, dir := range []struct {
				name         string
				monoA, monoB *compare.Response
				p, s         *compare.Response
			}{{"a,b", tc.monoA, tc.monoB, tc.p, tc.s}, {"b,a", tc.monoB, tc.monoA, tc.s, tc.p}} {
				n := compare.NewNoise(0)
				// Learn: the monolith's answers are also primary and shadow here.
				n.Compare(dir.monoA, dir.monoB, dir.monoA, dir.monoB, r)
				if got := strings.Join(n.Fields(), ","); got != tc.fields {
					t.Errorf("(%s) learned %q, want %q", dir.name, got, tc.fields)
				}
				res := n.Compare(dir.p, dir.s, nil, nil, r)
				if got := res.Outcome == compare.Match; got != tc.wantMatch {
					t.Errorf("(%s) later comparison: outcome %v, want match %v; differences %s", dir.name, res.Outcome, tc.wantMatch, diffsJSON(t, res.Differences))
				}
				if tc.wantMatch && res.Noisy != 1 {
					t.Errorf("(%s) later comparison: Noisy = %d, want 1", dir.name, res.Noisy)
				}
			}
		})
	}
}

// TestHeaderListsDoNotAllocate checks that values that differ only in list
// whitespace, and Set-Cookie lines that differ only in their values, are
// compared without allocating, like byte-equal ones. Not parallel:
// testing.AllocsPerRun refuses to run in a parallel test.
func TestHeaderListsDoNotAllocate(t *testing.T) {
	r := mustRules(t, compare.RulesConfig{})
	for _, tc := range []struct {
		name string
		a, b http.Header
	}{
		{"list whitespace", hdr("Allow", "GET,HEAD", "Cache-Control", "no-cache", "Cache-Control", "no-store"), hdr("Allow", "GET, HEAD", "Cache-Control", "no-cache,no-store")},
		{"cookie values", hdr("Set-Cookie", monoCookie, "Set-Cookie", "csrf=1; Path=/"), hdr("Set-Cookie", "csrf=2; Path=/", "Set-Cookie", strings.Replace(monoCookie, "abc123", "def456", 1))},
	} {
		for _, dir := range [][2]http.Header{{tc.a, tc.b}, {tc.b, tc.a}} {
			p, s := &compare.Response{Status: 200, Header: dir[0]}, &compare.Response{Status: 200, Header: dir[1]}
			if res := compare.Compare(p, s, r); res.Outcome != compare.Match {
				t.Fatalf("%s: outcome %v: %s", tc.name, res.Outcome, diffsJSON(t, res.Differences))
			}
			if allocs := testing.AllocsPerRun(100, func() { compare.Compare(p, s, r) }); allocs != 0 {
				t.Errorf("%s: %v allocations per comparison, want 0", tc.name, allocs)
			}
		}
	}
}

// manyCookies is n Set-Cookie lines, each with its own name and value, in
// order or reversed (two services setting the same cookies from maps).
func manyCookies(n int, reversed bool, value string) []string {
	lines := make([]string, n)
	for i := range lines {
		j := i
		if reversed {
			j = n - 1 - i
		}
		lines[i] = fmt.Sprintf("c%d=%s%d; Path=/; Secure; HttpOnly; SameSite=Lax", j, value, j)
	}
	return lines
}

// manyVary is n Vary names, in order or reversed and upper-cased.
func manyVary(n int, reversed bool) string {
	names := make([]string, n)
	for i := range names {
		if reversed {
			names[i] = fmt.Sprintf("X-H%d", n-1-i)
		} else {
			names[i] = fmt.Sprintf("x-h%d", i)
		}
	}
	return strings.Join(names, ", ")
}

// Heads with thousands of Set-Cookie lines or Vary names (past the size
// where lines are found by a scan, and compared through sets instead)
// compare as the few-line ones do: the same cookies in another order
// match, one re-scoped cookie is a mismatch whose note names it, and so is
// a missing Vary name.
func TestManyHeaderLines(t *testing.T) {
	t.Parallel()
	const n = 3000
	rescoped := manyCookies(n, true, "b")
	rescoped[n/2] = strings.Replace(rescoped[n/2], "Path=/", "Path=/admin", 1)
	name := strings.SplitN(rescoped[n/2], "=", 2)[0]
	h := func(kv ...any) http.Header {
		out := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				out[kv[i].(string)] = []string{v}
			case []string:
				out[kv[i].(string)] = v
			}
		}
		return out
	}
	runHeaderCases(t, []headerCase{
		{"cookies in another order, other values", h("Set-Cookie", manyCookies(n, false, "a")), h("Set-Cookie", manyCookies(n, true, "b")), true},
		{"one cookie re-scoped", h("Set-Cookie", manyCookies(n, false, "a")), h("Set-Cookie", rescoped), false},
		{"one cookie missing", h("Set-Cookie", manyCookies(n, false, "a")), h("Set-Cookie", manyCookies(n, true, "b")[1:]), false},
		{"Vary names in another order and case", h("Vary", manyVary(n, false)), h("Vary", manyVary(n, true)), true},
		{"Vary names plus Accept-Encoding", h("Vary", manyVary(n, false)), h("Vary", manyVary(n, true)+", Accept-Encoding"), true},
		{"a Vary name missing", h("Vary", manyVary(n, false)), h("Vary", strings.Replace(manyVary(n, true), "X-H7,", "", 1)), false},
	})
	r := mustRules(t, compare.RulesConfig{})
	res := compare.Compare(&compare.Response{Status: 200, Header: h("Set-Cookie", manyCookies(n, false, "a"))},
		&compare.Response{Status: 200, Header: h("Set-Cookie", rescoped)}, r)
	if len(res.Differences) != 1 || !strings.Contains(res.Differences[0].Note, "cookie "+name+": primary [Path=/;") ||
		!strings.Contains(res.Differences[0].Note, "shadow [Path=/admin;") || strings.Count(res.Differences[0].Note, "cookie ") != 1 {
		t.Errorf("differences %s: want one, whose note names cookie %s only", diffsJSON(t, res.Differences), name)
	}
}

// FuzzHeaderSetsScale checks that Set-Cookie lines and Vary names compare
// alike below and above smallSet (a scan below, sets above): the same 40
// distinct lines added to both sides, enough to cross it, never change
// whether they match. a and b are lines separated by newlines.
func FuzzHeaderSetsScale(f *testing.F) {
	f.Add(false, "session=a; Path=/; Secure\ncsrf=1", "csrf=2\nsession=b; Path=/; Secure")
	f.Add(false, "session=a; Path=/", "session=; Path=/; Max-Age=0")
	f.Add(false, "a=1; SameSite=Lax; Partitioned", "a=2; samesite=lax")
	f.Add(true, "Origin, Accept-Encoding", "origin")
	f.Add(true, "Origin", "Authorization, Origin")
	f.Add(true, "\u017f", "s") // long s: Unicode folding would make it "s"; field names fold as ASCII
	f.Fuzz(func(t *testing.T, vary bool, a, b string) {
		if strings.Contains(strings.ToLower(a+b), "zzpad") {
			t.Skip("the padding's own names")
		}
		name := "Set-Cookie"
		if vary {
			name = "Vary"
		}
		pad := make([]string, 40)
		for i := range pad {
			if vary {
				pad[i] = fmt.Sprintf("X-Zzpad-%d", i)
			} else {
				pad[i] = fmt.Sprintf("zzpad%d=v; Path=/p%d; HttpOnly", i, i)
			}
		}
		lines := func(s string, padded bool) http.Header {
			var vs []string
			if s != "" {
				vs = strings.Split(s, "\n")
			}
			if padded {
				vs = append(vs, pad...)
			}
			if len(vs) == 0 {
				return http.Header{}
			}
			return http.Header{name: vs}
		}
		r := mustRules(t, compare.RulesConfig{})
		small := compare.Compare(&compare.Response{Status: 200, Header: lines(a, false)}, &compare.Response{Status: 200, Header: lines(b, false)}, r)
		large := compare.Compare(&compare.Response{Status: 200, Header: lines(a, true)}, &compare.Response{Status: 200, Header: lines(b, true)}, r)
		if small.Outcome != large.Outcome {
			t.Fatalf("%s %q vs %q: %v, but %v with 40 more lines on both sides (%s)", name, a, b, small.Outcome, large.Outcome, diffsJSON(t, large.Differences))
		}
	})
}

// TestLongHeaderValuesAreExcerpted: a head may be 512 KiB, and a route
// keeps 100 samples of differences; a header value is cut as a long JSON
// value is, around where the two sides differ.
func TestLongHeaderValuesAreExcerpted(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 200<<10)
	res := compare.Compare(
		&compare.Response{Status: 200, Header: hdr("X-Blob", long+"-primary")},
		&compare.Response{Status: 200, Header: hdr("X-Blob", long+"-shadow")},
		mustRules(t, compare.RulesConfig{}))
	if len(res.Differences) != 1 {
		t.Fatalf("differences %d, want 1", len(res.Differences))
	}
	d := res.Differences[0]
	var p, s string
	if err := json.Unmarshal(d.Primary, &p); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(d.Shadow, &s); err != nil {
		t.Fatal(err)
	}
	if len(p) > 4096 || len(s) > 4096 || !strings.HasSuffix(p, "-primary") || !strings.HasSuffix(s, "-shadow") || !strings.Contains(d.Note, "excerpts") {
		t.Errorf("primary %d bytes ending %q, shadow %d bytes ending %q, note %q; want short excerpts showing where they differ",
			len(p), p[max(0, len(p)-10):], len(s), s[max(0, len(s)-10):], d.Note)
	}
	// One side only: its excerpt, the other absent.
	res = compare.Compare(&compare.Response{Status: 200, Header: hdr("X-Blob", long)}, &compare.Response{Status: 200, Header: hdr()},
		mustRules(t, compare.RulesConfig{}))
	if d := res.Differences[0]; len(d.Primary) > 4096 || d.Shadow != nil {
		t.Errorf("primary %d bytes, shadow %s; want an excerpt and nothing", len(d.Primary), d.Shadow)
	}
}
