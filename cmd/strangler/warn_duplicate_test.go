package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeWarnsOfTheDefinitionInForce: a flag defined twice whose
// definition in force is out of range (150) keeps its route on the
// monolith, and serve's warning says so, not that the route follows it.
func TestServeWarnsOfTheDefinitionInForce(t *testing.T) {
	dir := t.TempDir()
	cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nmonolith: http://127.0.0.1:1\nflags: {file: flags.json}\n" +
		"routes:\n  - name: orders\n    path: /api/orders/*\n    service: http://127.0.0.1:2\n"
	flagsJSON := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
  "orders-percent":{"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"}}}`
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flags.json"), []byte(flagsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	if _, err := loadChecked(filepath.Join(dir, "s.yaml"), true, func(w string) { warnings = append(warnings, w) }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(warnings, "\n"); !strings.Contains(got, "150") || !strings.Contains(got, "stays on the monolith") {
		t.Errorf("warnings:\n%s\nwant the value in force (150) and that the route stays on the monolith", got)
	}
}
