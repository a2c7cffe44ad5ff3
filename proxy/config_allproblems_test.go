package proxy

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allProblemsBase is a valid config, one key a line from line 1: the cases
// below add to it or change it, and name lines by this numbering.
const allProblemsBase = `listen: 127.0.0.1:8080
monolith: http://127.0.0.1:8081
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
`

const urlWant = "(want http://host:port or https://host:port, optionally with a path prefix)"

// TestConfigReportsAllProblemsExactly loads each config as serve, validate
// and a reload do (LoadConfig) and wants exactly the problems listed: a
// problem of one value must not hide the others (a bad duration hid a bad
// URL), and no problem may be made up (a key given twice emptied the whole
// config, and Validate then called every key required).
func TestConfigReportsAllProblemsExactly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // nil: accepted
		// inOrder: want is also the order of the output, problems of
		// shape first (the README's example of validate's output).
		inOrder bool
	}{
		{"valid config", allProblemsBase, nil, false},
		{"valid config with a trailing ---", allProblemsBase + "---\n", nil, false},
		{"wrong-kind duration and bad URL",
			strings.Replace(allProblemsBase, "http://127.0.0.1:8081", "htp:/x", 1) + "shutdown_timeout: 5\n",
			[]string{
				`shutdown_timeout: line 9: invalid duration "5" (use Go syntax such as 250ms, 2s, 1m)`,
				`monolith: invalid URL "htp:/x" ` + urlWant + " (line 2)",
			}, false},
		{"bad size and workers and queue over their maximum",
			allProblemsBase + "shadow_memory: 1GB\nshadow_workers: 10001\nshadow_queue: 1000001\n",
			[]string{
				`shadow_memory: line 9: invalid size "1GB" (use bytes or KiB, MiB, GiB, e.g. 1MiB)`,
				"shadow_workers: 10001 is more than the maximum of 10000 (line 10)",
				"shadow_queue: 1000001 is more than the maximum of 1000000 (line 11)",
			}, false},
		{"bad durations in a route and a bad service after it",
			allProblemsBase + "    timeouts: {connect: 5}\n    eject: {base_time: 1, max_time: 10s}\n" +
				"  - {name: users, path: /api/users/*, service: 'htp:/y'}\n",
			[]string{
				`routes[0].timeouts.connect: line 9: invalid duration "5" (use Go syntax such as 250ms, 2s, 1m)`,
				// max_time is not judged against the default base_time.
				`routes[0].eject.base_time: line 10: invalid duration "1" (use Go syntax such as 250ms, 2s, 1m)`,
				`routes[1].service: invalid URL "htp:/y" ` + urlWant + " (line 11)",
			}, false},
		{"duplicate top-level key, the rest valid", "listen: 127.0.0.1:1\n" + allProblemsBase,
			[]string{"listen: line 2: given twice (first at line 1)"}, false},
		{"duplicate top-level key and a bad URL",
			strings.Replace(allProblemsBase, "http://127.0.0.1:8081", "htp:/x", 1) + "flags: {file: flags.json}\n",
			[]string{
				"flags: line 9: given twice (first at line 3)",
				`monolith: invalid URL "htp:/x" ` + urlWant + " (line 2)",
			}, false},
		{"duplicate key in a route, the rest valid", allProblemsBase + "    name: orders\n",
			[]string{"routes[0].name: line 9: given twice (first at line 6)"}, false},
		{"second document, the first valid", allProblemsBase + "---\nlisten: 127.0.0.1:2\n",
			[]string{"config: line 9: a second YAML document (after ---) is not read: keep the whole config in one document"}, false},
		{"second document holding the rest of the config", "listen: 127.0.0.1:1\n---\n" + allProblemsBase,
			[]string{"config: line 2: a second YAML document (after ---) is not read: keep the whole config in one document"}, false},
		{"second document and a bad first one",
			strings.Replace(allProblemsBase, "http://127.0.0.1:8081", "htp:/x", 1) + "---\nlisten: 127.0.0.1:2\n",
			[]string{
				"config: line 9: a second YAML document (after ---) is not read: keep the whole config in one document",
				`monolith: invalid URL "htp:/x" ` + urlWant + " (line 2)",
			}, false},
		{"unknown key and a bad URL (README's validate example)",
			allProblemsBase + "    sticky: header:X-User-Id\n" +
				"  - name: users\n    path: /api/users/*\n    service: htp:/x\n    timeouts: {response_header: 5s}\n" +
				"  - name: items\n    path: /api/items/*\n    methods: [GET]\n    servce: http://127.0.0.1:8084\n",
			[]string{
				"routes[2].servce: unknown key (line 17)",
				`routes[1].service: invalid URL "htp:/x" ` + urlWant + " (line 12)",
				"routes[2].service: required (http://host:port) (in routes[2], line 14)",
			}, true},
		{"refused value not judged again", strings.Replace(allProblemsBase, "listen: 127.0.0.1:8080", "listen: [127.0.0.1:8080]", 1),
			[]string{"listen: line 1: want a single value, got a list"}, false},
		{"refused route entries keep the later routes' indexes",
			allProblemsBase + "  - users\n  -\n  - {name: users, path: /api/users/*, service: 'htp:/y'}\n",
			[]string{
				`routes[1]: line 9: want a mapping (key: value), got "users"`,
				"routes[2]: line 10: empty list entry (a - with nothing after it)",
				`routes[3].service: invalid URL "htp:/y" ` + urlWant + " (line 11)",
			}, false},
		{"refused flagd is not a missing flag source",
			strings.Replace(allProblemsBase, "file: flags.json", "flagd: 5", 1),
			[]string{`flags.flagd: line 4: want a mapping (key: value), got "5"`}, false},
		{"whole file a list", "- listen: 127.0.0.1:1\n",
			[]string{"config: line 1: want a mapping (key: value), got a list"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 0, "users-percent", 0, "items-percent", 0))
			path := filepath.Join(dir, "strangler.yaml")
			writeFile(t, path, c.yaml)
			cfg, err := LoadConfig(path)
			var got []string
			if err != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("not a ConfigError: %v", err)
				}
				got = ce.Problems
			}
			if !slices.Equal(sortedProblems(got), sortedProblems(c.want)) {
				t.Errorf("config:\n%s\ngot problems:\n%s\nwant:\n%s", c.yaml, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if c.inOrder && !slices.Equal(got, c.want) {
				t.Errorf("problems in the order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if err == nil && cfg == nil {
				t.Error("no config and no error")
			}
		})
	}
}

func sortedProblems(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
