package proxy

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// An anchored value that is refused is refused at every use: Validate does
// not judge the placeholder put in its place under another key. It did,
// and reported problems the operator never wrote: "required" for a key
// that is set, "invalid CIDR \"\"" for a null. (The config was refused
// anyway; the messages were false.)
func TestAliasOfRefusedValueBringsNoFalseProblems(t *testing.T) {
	for name, yaml := range map[string]string{
		"scalar": `listen: 127.0.0.1:8080
admin_token_file: &m [x]
monolith: *m
flags: {file: flags.json}
routes:
  - name: orders
    path: /api/orders/*
    service: *m
`,
		"list entry": `listen: 127.0.0.1:8080
monolith: http://127.0.0.1:8081
flags: {file: flags.json}
secret_headers: &s [X-A, ~]
trusted_proxies: *s
`,
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 0))
		path := filepath.Join(dir, "strangler.yaml")
		writeFile(t, path, yaml)
		_, err := LoadConfig(path)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: want a ConfigError, got %v", name, err)
		}
		for _, p := range ce.Problems {
			if strings.Contains(p, "required") || strings.Contains(p, `""`) {
				t.Errorf("%s: false problem about a placeholder: %s\nall: %q", name, p, ce.Problems)
			}
		}
	}
}

// A key set in a later YAML document is not judged in the first only when
// the first lacks it (no false "required"): with "routes: []" after a
// ---, a bad service URL in the first document's routes is still
// reported.
func TestSecondDocumentHidesNoFirstDocumentProblem(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("a-percent", 0))
	path := filepath.Join(dir, "strangler.yaml")
	writeFile(t, path, `listen: 127.0.0.1:8080
monolith: http://127.0.0.1:8081
flags: {file: flags.json}
routes:
  - name: a
    path: /a/*
    service: htp:/x
---
routes: []
`)
	_, err := LoadConfig(path)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	for _, p := range ce.Problems {
		if strings.HasPrefix(p, "routes[0].service") {
			return
		}
	}
	t.Errorf("the first document's bad routes[0].service is not reported: %q", ce.Problems)
}
