package proxy

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// CheckAlongside judges the flags of the routes that have no problem of
// their own ("routes[1]…" is routes[1]'s, "routes[10]" not routes[1]'s),
// and none when a problem could change which flags are meant.
func TestCheckAlongsideSkipsRoutesWithProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Every route's flag is 150: a problem wherever it is judged.
	var flagsJSON, routes strings.Builder
	flagsJSON.WriteString(`{"flags": {`)
	for i := range 11 {
		if i > 0 {
			flagsJSON.WriteString(",")
		}
		name := string(rune('a' + i))
		flagsJSON.WriteString(`"` + name + `-percent": {"state": "ENABLED", "variants": {"on": 150}, "defaultVariant": "on"}`)
		routes.WriteString("  - {name: " + name + ", path: /" + name + "/*, service: 'http://127.0.0.1:1'}\n")
	}
	flagsJSON.WriteString("}}")
	writeFile(t, filepath.Join(dir, "flags.json"), flagsJSON.String())
	cfg, err := ParseConfig([]byte("listen: 127.0.0.1:0\nmonolith: http://127.0.0.1:1\nflags: {file: flags.json}\nroutes:\n"+routes.String()), dir)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		name     string
		problems []string
		judged   []int
	}{
		{"none", nil, all},
		{"outside the routes", []string{`listen: invalid address "x" (line 1)`}, all},
		{"a route's key", []string{"routes[1].stikcy: unknown key (line 6)"}, []int{0, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"a route as a whole", []string{`routes[2]: line 7: want a mapping (key: value), got "5"`}, []int{0, 1, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"a route of two digits", []string{"routes[10].path: required"}, all[:10]},
		{"not a route's index", []string{"routes[1x].path: required", "routes[3]x"}, all},
		{"the document", []string{"config: line 9: a second YAML document (after ---) is not read"}, nil},
		{"the flag source", []string{"flags.fiel: unknown key (line 3)"}, nil},
		{"the routes list", []string{"routes: want a list"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := CheckAlongside(cfg, tc.problems)
			var judged []int
			var ce *ConfigError
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					i, ok := routeOf(p)
					if !ok || !strings.Contains(p, "outside 0..100") {
						t.Fatalf("a problem of no route's flag: %q", p)
					}
					judged = append(judged, i)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(judged, tc.judged) {
				t.Errorf("the flags of routes %v were judged, want %v", judged, tc.judged)
			}
		})
	}
}
