package proxy

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Validate's and Check's problems name a key path; LoadConfig and Check add
// where it is in the file, so that "routes[37].shadow.ignore_json[2]" need
// not be counted out by hand.
func TestConfigProblemsSayTheirLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"a value in a nested mapping",
			allProblemsBase + "    shadow:\n      percent: 150\n",
			[]string{"routes[0].shadow.percent: 150 is outside 0..100 (line 10)"}},
		{"a list entry in flow style, counted from 0",
			allProblemsBase + "    shadow: {ignore_json: [/a, bad, /b]}\n",
			[]string{`routes[0].shadow.ignore_json[1] "bad": a JSON Pointer is "" or starts with "/" (line 9)`}},
		{"a required key: the entry that lacks it",
			allProblemsBase + "  - name: users\n    path: /api/users/*\n",
			[]string{"routes[1].service: required (http://host:port) (in routes[1], line 9)"}},
		{"a required top-level key: no line to give",
			strings.Replace(allProblemsBase, "monolith: http://127.0.0.1:8081\n", "", 1),
			[]string{"monolith: required (http://host:port)"}},
		{"through an alias: where the value is written",
			"base: &t\n  connect: 1s\n  read: 1s\n" + strings.Replace(allProblemsBase, "    service:", "    timeouts: *t\n    service:", 1),
			// base is no key of the config; the route's timeouts are
			// fine. The anchor is refused once, at its definition.
			[]string{"base: unknown key (line 1)"}},
		{"a scalar behind an alias: the anchor's line, not the alias's",
			"x-url: &url 'htp:/x'\nx-pct: &pct 150\n" + strings.Replace(allProblemsBase, "    service: http://127.0.0.1:8082\n", "    service: *url\n    shadow: {percent: *pct}\n", 1),
			[]string{
				`routes[0].service: invalid URL "htp:/x" ` + urlWant + " (line 1)",
				"routes[0].shadow.percent: 150 is outside 0..100 (line 2)",
			}},
		{"a bad value behind an alias: the anchor's line",
			"trusted_proxies: &p [10.0.0.0/8, nonsense]\n" + allProblemsBase,
			[]string{`trusted_proxies[1]: invalid CIDR "nonsense" (line 1)`}},
		{"a route given as an alias: the line of the entry used",
			allProblemsBase + "  - &u {name: users, path: /api/users/*, service: 'htp:/y'}\n",
			[]string{`routes[1].service: invalid URL "htp:/y" ` + urlWant + " (line 9)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 0, "users-percent", 0))
			path := filepath.Join(dir, "strangler.yaml")
			writeFile(t, path, c.yaml)
			_, err := LoadConfig(path)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			if !slices.Equal(sortedProblems(ce.Problems), sortedProblems(c.want)) {
				t.Errorf("config:\n%s\ngot problems:\n%s\nwant:\n%s", c.yaml, strings.Join(ce.Problems, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// Check's problems and warnings (a route's flag that is no percentage, or
// not in the flag file yet) name the route's line too, and a flag's
// problem its line in the flag file, where it is to be fixed.
func TestCheckProblemsSayTheirLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), "{\"flags\": {\n"+strings.TrimPrefix(flagJSON("orders-percent", `"x"`), `{"flags":{`)+"\n")
	path := filepath.Join(dir, "strangler.yaml")
	writeFile(t, path, allProblemsBase+"    flag: orders-percent\n  - name: users\n    path: /api/users/*\n    service: http://127.0.0.1:8083\n")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Check(cfg)
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.HasPrefix(ce.Problems[0], "routes[0].flag: ") || !strings.HasSuffix(ce.Problems[0], " (flags.json line 2) (line 9)") {
		t.Errorf("Check's problems: %v, want routes[0].flag's, at line 2 of the flag file and line 9 of the config", err)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], `routes[1].flag: flag "users-percent" is not in`) || !strings.HasSuffix(warnings[0], " (in routes[1], line 10)") {
		t.Errorf("Check's warnings: %q, want routes[1].flag's, in the entry at line 10", warnings)
	}
}

// A path the file does not hold as written (an index past the list, a key
// under a scalar, text that is no path) gets the nearest line there is, or
// none, and never a line of something else.
func TestPlaceOfOddPaths(t *testing.T) {
	t.Parallel()
	raw := []byte("listen: x\nroutes:\n  - name: a\n  - b\n")
	for _, c := range []struct{ problem, want string }{
		{"routes[1]: x", "routes[1]: x (line 4)"},
		{"routes[2].name: x", "routes[2].name: x (in routes, line 2)"},
		{"routes[1].name: x", "routes[1].name: x (in routes[1], line 4)"},
		{"routes[x]: x", "routes[x]: x (in routes, line 2)"},
		{"routes[0]name: x", "routes[0]name: x (in routes[0], line 3)"},
		{"listen.a.b: x", "listen.a.b: x (in listen, line 1)"},
		{"nothing: x", "nothing: x"},
		{"config: empty", "config: empty"},
		{"no path at all", "no path at all"},
		{"", ""},
		{"[0]: x", "[0]: x"},
	} {
		if got := withLines(raw, []string{c.problem}); got[0] != c.want {
			t.Errorf("%q: got %q, want %q", c.problem, got[0], c.want)
		}
	}
	// A file that does not parse adds nothing.
	if got := withLines([]byte("listen: ["), []string{"listen: x"}); got[0] != "listen: x" {
		t.Errorf("unparsable file: %q", got[0])
	}
}

// A flag file with two "flags" objects is a warning of Check (validate
// and serve print it), naming the flag file's lines, not the config's.
func TestCheckWarnsOfTwoFlagsObjects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), "{\"flags\": {},\n\"flags\": "+strings.TrimPrefix(flagJSON("orders-percent", 10), `{"flags":`)+"\n")
	path := filepath.Join(dir, "strangler.yaml")
	writeFile(t, path, allProblemsBase)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Check(cfg)
	want := "flag file " + filepath.Join(dir, "flags.json") + `: the file has 2 "flags" objects (lines 1, 2): flagd reads only the one at line 2, and every flag is in the one read; merge them into one`
	if err != nil || !slices.Contains(warnings, want) {
		t.Errorf("Check: %q, %v; want the warning\n%s", warnings, err, want)
	}
}

// withLines' work grows with the file and the problems, not with their
// product: a lookup per problem that scanned the whole mapping made 40,000
// x- keys and 40,000 problems take minutes (a regression review). Four
// times the size must cost about four times as much, not sixteen; the
// ratio is of two measures taken in one run, each the best of three.
func TestWithLinesWorkIsLinear(t *testing.T) {
	build := func(n int) ([]byte, []string) {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "x-%d: 0\n", i)
		}
		b.WriteString("trusted_proxies:\n")
		problems := make([]string, n)
		for i := range n {
			b.WriteString("  - x\n")
			problems[i] = fmt.Sprintf("trusted_proxies[%d]: invalid CIDR %q", i, "x")
		}
		return []byte(b.String()), problems
	}
	cost := func(n int) time.Duration {
		raw, problems := build(n)
		best := time.Duration(math.MaxInt64)
		for range 3 {
			start := time.Now()
			got := withLines(raw, problems)
			best = min(best, time.Since(start))
			if !strings.HasSuffix(got[n-1], fmt.Sprintf("(line %d)", 2*n+1)) {
				t.Fatalf("last problem: %q", got[n-1])
			}
		}
		return best
	}
	small, large := cost(5000), cost(20000)
	if ratio := float64(large) / float64(small); ratio > 9 {
		t.Errorf("4 times the keys and problems cost %.1f times as much (%v, %v): quadratic", ratio, small, large)
	}
}
