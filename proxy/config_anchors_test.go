package proxy

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func loadAnchored(t *testing.T, y string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("a-percent", 0, "b-percent", 0, "c-percent", 0, "orders-percent", 0))
	path := filepath.Join(dir, "strangler.yaml")
	writeFile(t, path, y)
	return LoadConfig(path)
}

func problemsOf(err error) []string {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Problems
	}
	if err != nil {
		return []string{err.Error()}
	}
	return nil
}

// A route that clashes with an earlier one for some of its methods stays
// in the pattern index, so a third route clashing only with it (on the
// methods the first does not have) is reported too: every problem at once.
func TestClashChainReported(t *testing.T) {
	_, err := loadAnchored(t, `listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: {file: flags.json}
routes:
  - {name: a, path: /x/*, methods: [GET], service: http://127.0.0.1:2}
  - {name: b, path: /x/*, methods: [GET, POST], service: http://127.0.0.1:2}
  - {name: c, path: /x/*, methods: [POST], service: http://127.0.0.1:2}
`)
	ps := problemsOf(err)
	found := false
	for _, p := range ps {
		if strings.HasPrefix(p, "routes[2].path:") {
			found = true
		}
	}
	if !found {
		t.Errorf("routes[2] (POST) clashes with routes[1] (GET, POST) on /x/* but is not reported; problems: %q", ps)
	}
}

// A refused base_time hides its max_time from Validate (judged against the
// default otherwise) under an alias too: no false "max_time: 10s is less
// than base_time 30s" (30s is the default, not what the operator wrote).
func TestAliasedRefusedBaseTimeNoFalseMaxTime(t *testing.T) {
	_, err := loadAnchored(t, `listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: {file: flags.json}
routes:
  - name: a
    path: /a
    service: http://127.0.0.1:2
    eject: {base_time: &bt bogus, max_time: 20s}
  - name: b
    path: /b
    service: http://127.0.0.1:2
    eject: {base_time: *bt, max_time: 10s}
`)
	for _, p := range problemsOf(err) {
		if strings.Contains(p, "max_time") {
			t.Errorf("false problem under an alias of a refused base_time: %s", p)
		}
	}
}

// expandAliases replaces every alias by a copy of its target, without
// anchors: the same document as the operator means it. It gives up (nil)
// past maxExpanded nodes: an alias inside its own anchor's node, or
// aliases of aliases, grow the copy exponentially with its depth (one
// fuzz input took 46 s and gigabytes), and the loader refuses such a
// document: a node that holds itself decodes to no Config.
func expandAliases(n *yaml.Node) *yaml.Node {
	budget := maxExpanded
	return expandWithin(n, &budget)
}

const maxExpanded = 1 << 14

func expandWithin(n *yaml.Node, budget *int) *yaml.Node {
	if *budget--; *budget < 0 {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return expandWithin(n.Alias, budget)
	}
	c := *n
	c.Anchor = ""
	c.Content = nil
	for _, k := range n.Content {
		e := expandWithin(k, budget)
		if e == nil {
			return nil
		}
		c.Content = append(c.Content, e)
	}
	return &c
}

// A config with anchors is accepted exactly
// when its expansion is, and decodes to the same Config.
func anchorsAgree(t *testing.T, y string) {
	var doc yaml.Node
	if yaml.Unmarshal([]byte(y), &doc) != nil || len(doc.Content) == 0 {
		return
	}
	full := expandAliases(&doc)
	if full == nil {
		return
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if enc.Encode(full) != nil {
		return
	}
	expanded := buf.String()
	if len(expanded) > 1<<16 {
		return
	}
	c1, e1 := loadAnchored(t, y)
	c2, e2 := loadAnchored(t, expanded)
	if (e1 == nil) != (e2 == nil) {
		t.Fatalf("anchored: %q\nexpanded: %q\n%s\n---- expanded:\n%s", problemsOf(e1), problemsOf(e2), y, expanded)
	}
	if e1 == nil {
		c1.raw, c2.raw, c1.dir, c2.dir = nil, nil, "", ""
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("decoded differently:\n%+v\n%+v\n%s", c1, c2, y)
		}
	}
}

var reviewAnchorSeeds = []string{
	`listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: {file: flags.json}
timeouts: &t {connect: 1s, idle: 2m}
shadow_queue: &n 100
limits: {max_header_count: *n}
routes:
  - name: a
    path: /a
    methods: &m [GET, POST]
    service: &svc http://127.0.0.1:2
    timeouts: *t
    eject: &e {base_time: 10s, max_time: 20s, consecutive_failures: *n}
    shadow: {percent: 5, methods: *m, ignore_json: &ij [/a, /b/*]}
    fallback: {methods: *m, max_body: &mb 1MiB}
  - name: b
    path: /b
    methods: *m
    service: *svc
    timeouts: *t
    eject: *e
    max_body: *mb
    shadow: &sh {percent: 1, ignore_json: *ij, timeout: 2s}
  - {name: c, path: /c, service: *svc, shadow: *sh, preserve_host: &ph false}
preserve_host: *ph
`,
	`listen: &l 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: &f {file: flags.json}
routes:
  - &r {name: a, path: /a, service: http://127.0.0.1:2}
`,
	mergeConfig,
	`listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: {file: flags.json}
x-a: &a {service: http://127.0.0.1:2, timeouts: {connect: 1s}}
x-b: &b {service: http://127.0.0.1:3, max_body: 1KiB, eject: &e {base_time: 1s}}
routes:
  - {<<: [*a, *b], name: a, path: /a}
  - {<<: *b, name: b, path: /b, eject: {<<: *e, max_time: 5s}}
  - <<: {name: c, path: /c}
    service: http://127.0.0.1:4
`,
}

func TestAnchorsAgreeWithExpansion(t *testing.T) {
	for _, s := range reviewAnchorSeeds {
		anchorsAgree(t, s)
	}
}

func FuzzAnchorsAgreeWithExpansion(f *testing.F) {
	for _, s := range reviewAnchorSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		anchorsAgree(t, s)
	})
}
