//go:build linux

package main

import (
	"fmt"
	"slices"
	"strings"
)

// Kinds of scenario: what the proxy is asked to do with each request.
const (
	kindPlain  = "plain"  // forward to the monolith; no route matches
	kindSplit  = "split"  // route at 10 %, sticky on X-User-Id
	kindShadow = "shadow" // the split, plus a copy of every request to the other side, compared (Strangler) or discarded (nginx)
	kindIdle   = "idle"   // hold idle keep-alive connections; memory only
)

// scenario is one workload: a kind and a response body size.
type scenario struct {
	name string
	kind string
	size int // response body bytes
}

// scenarios lists every scenario in the order the table shows them.
var scenarios = []scenario{
	{"plain-1k", kindPlain, smallBody},
	{"plain-64k", kindPlain, largeBody},
	{"split-1k", kindSplit, smallBody},
	{"split-64k", kindSplit, largeBody},
	{"shadow-1k", kindShadow, smallBody},
	{"shadow-64k", kindShadow, largeBody},
	{"idle", kindIdle, smallBody},
}

// sizeName is the query value that asks a backend for this body size.
func sizeName(size int) string {
	if size == largeBody {
		return "64k"
	}
	return "1k"
}

// routed reports whether the scenario's requests match the route (and so
// carry a sticky X-User-Id).
func (s scenario) routed() bool { return s.kind == kindSplit || s.kind == kindShadow }

// path is the request path and query the load sends: under the route for
// routed scenarios, elsewhere (to the monolith) otherwise.
func (s scenario) path() string {
	if s.routed() {
		return "/api/orders/7?size=" + sizeName(s.size)
	}
	return "/plain/7?size=" + sizeName(s.size)
}

// selectScenarios returns the scenarios filter names, in table order:
// comma-separated scenario names ("split-1k") or kinds ("shadow"), or "all".
func selectScenarios(filter string) ([]scenario, error) {
	if filter == "" || filter == "all" {
		return scenarios, nil
	}
	want := map[string]bool{}
	for _, f := range strings.Split(filter, ",") {
		f = strings.TrimSpace(f)
		known := false
		for _, s := range scenarios {
			known = known || s.name == f || s.kind == f
		}
		if !known {
			return nil, fmt.Errorf("-scenarios: unknown %q (want names such as plain-1k, kinds plain, split, shadow, idle, or all)", f)
		}
		want[f] = true
	}
	var out []scenario
	for _, s := range scenarios {
		if want[s.name] || want[s.kind] {
			out = append(out, s)
		}
	}
	return out, nil
}

// selectPeers returns the peer names filter keeps, in table order.
func selectPeers(filter string) ([]string, error) {
	all := []string{peerDirect, peerStrangler, peerNginx, peerHAProxy, peerGoHTTP, peerGoNet}
	if filter == "" || filter == "all" {
		return all, nil
	}
	want := map[string]bool{}
	for _, f := range strings.Split(filter, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(all, f) {
			return nil, fmt.Errorf("-peers: unknown %q (want %s)", f, strings.Join(all, ", "))
		}
		want[f] = true
	}
	var out []string
	for _, p := range all {
		if want[p] {
			out = append(out, p)
		}
	}
	return out, nil
}
