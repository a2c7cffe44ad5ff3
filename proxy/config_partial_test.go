package proxy

import (
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

const reviewFullConfig = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
shutdown_timeout: 5s
preserve_host: true
timeouts: {connect: 1s, response_header: 2s, idle: 3s}
trusted_proxies: [10.0.0.0/8]
secret_headers: [X-Secret]
shadow_workers: 2
shadow_queue: 3
shadow_memory: 1MiB
access_log: true
limits: {read_header_timeout: 1s, idle_timeout: 2s, stall_timeout: 3s, max_header_bytes: 1KiB, max_header_count: 10, underscore_headers: drop, max_body: 1MiB}
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    methods: [GET, POST]
    service: http://127.0.0.1:2
    flag: orders-percent
    sticky: header:X-User-Id
    preserve_host: false
    timeouts: {connect: 1s}
    max_body: 1KiB
    shadow: {percent: 5, methods: [GET], ignore_headers: [Date], ignore_json: [/ts], max_body: 1KiB, timeout: 1s, noise: true}
    fallback: {on: [connect], methods: [GET], max_body: 1KiB}
    eject: {consecutive_failures: 3, base_time: 1s, max_time: 10s}
`

// Every scalar replaced by a map, a list, null or a wrong scalar: a
// partial decode handed to Validate must never panic.
func TestPartialConfigNeverPanics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON("orders-percent", 0))
	path := filepath.Join(dir, "strangler.yaml")
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(reviewFullConfig), &root); err != nil {
		t.Fatal(err)
	}
	var nodes []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		nodes = append(nodes, n)
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	repl := []string{"{a: 1}", "[1, 2]", "null", "x y", "-1", "~", "[null]", "{}", "[]"}
	for i, n := range nodes {
		if n.Kind == yaml.DocumentNode {
			continue
		}
		for _, r := range repl {
			var rn yaml.Node
			yaml.Unmarshal([]byte("v: "+r), &rn)
			val := rn.Content[0].Content[1]
			saved := *n
			*n = *val
			b, _ := yaml.Marshal(&root)
			*n = saved
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Errorf("node %d (%q) := %s: panic %v\n%s", i, saved.Value, r, v, b)
					}
				}()
				loadConfigBytes(path, b)
			}()
		}
	}
}

// The sticky key of an X-Forwarded-For client already written canonically
// costs no allocation on the hot path.
func TestXFFKeyNoAlloc(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.RemoteAddr = "10.1.2.3:5555"
	r.Header.Set("X-Forwarded-For", "198.51.100.9, 203.0.113.7, 10.0.0.2")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if got := clientIP(r, trusted); got != "203.0.113.7" {
		t.Fatalf("clientIP = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { clientIP(r, trusted) }); n != 0 {
		t.Errorf("clientIP allocates %v times per call for a canonical address", n)
	}
}
