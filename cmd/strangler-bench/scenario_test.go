//go:build linux

package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestSelectScenarios(t *testing.T) {
	t.Parallel()
	names := func(scs []scenario) string {
		var n []string
		for _, s := range scs {
			n = append(n, s.name)
		}
		return strings.Join(n, ",")
	}
	for _, tc := range []struct{ filter, want string }{
		{"all", "plain-1k,plain-64k,split-1k,split-64k,shadow-1k,shadow-64k,idle"},
		{"", "plain-1k,plain-64k,split-1k,split-64k,shadow-1k,shadow-64k,idle"},
		{"idle, shadow", "shadow-1k,shadow-64k,idle"}, // table order, not filter order
		{"split-64k,split", "split-1k,split-64k"},     // no duplicates
		{"plain-1k", "plain-1k"},
	} {
		got, err := selectScenarios(tc.filter)
		if err != nil || names(got) != tc.want {
			t.Errorf("selectScenarios(%q) = %s, %v; want %s", tc.filter, names(got), err, tc.want)
		}
	}
	if _, err := selectScenarios("plain,mirror"); err == nil || !strings.Contains(err.Error(), `"mirror"`) {
		t.Errorf("unknown scenario: %v", err)
	}
	if got, err := selectPeers("haproxy,direct"); err != nil || strings.Join(got, ",") != "direct,haproxy" {
		t.Errorf("selectPeers = %v, %v", got, err)
	}
	if _, err := selectPeers("envoy"); err == nil {
		t.Error("selectPeers(envoy): want an error")
	}
}

func TestScenarioPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sc   scenario
		want string
	}{
		{scenarios[0], "/plain/7?size=1k"},
		{scenarios[3], "/api/orders/7?size=64k"},
		{scenarios[4], "/api/orders/7?size=1k"},
	} {
		if got := tc.sc.path(); got != tc.want {
			t.Errorf("%s: path %q, want %q", tc.sc.name, got, tc.want)
		}
	}
}

func TestPlanInterleavesRunsAndMeasuresDirectOncePerSize(t *testing.T) {
	t.Parallel()
	cells := plan(scenarios, tablePeers(), 3) // haproxy missing
	var got []string
	for _, c := range cells {
		got = append(got, fmt.Sprintf("%d/%s/%s", c.run, c.sc.name, c.p.name))
	}
	first := strings.Join(got[:5], " ")
	// Run 0: nginx (the rate reference) first in every scenario.
	if want := "0/plain-1k/nginx 0/plain-1k/direct 0/plain-1k/strangler 0/plain-64k/nginx 0/plain-64k/direct"; first != want {
		t.Errorf("run 0 starts %s, want %s", first, want)
	}
	perRun := map[int]int{}
	direct := map[string]int{}
	for _, c := range cells {
		perRun[c.run]++
		if c.p.name == peerDirect {
			direct[c.sc.name]++
		}
		if c.p.name == peerHAProxy {
			t.Errorf("cell for a missing peer: %+v", c)
		}
		if c.run > 0 && cells[0].run > c.run {
			t.Error("runs out of order")
		}
	}
	// Per run: direct ×2 (plain-1k, plain-64k), strangler and nginx in 7 scenarios.
	for run := range 3 {
		if perRun[run] != 16 {
			t.Errorf("run %d has %d cells, want 16", run, perRun[run])
		}
	}
	if direct["plain-1k"] != 3 || direct["plain-64k"] != 3 || len(direct) != 2 {
		t.Errorf("direct cells per scenario: %v", direct)
	}
	// Runs after the first rotate the order.
	if cells[16].p.name == cells[0].p.name && cells[32].p.name == cells[0].p.name {
		t.Error("the peer order never changes between runs")
	}
	if est := estimate(cells, 4e9); est <= 0 {
		t.Errorf("estimate %v", est)
	}
}

func TestRateForRecordsTheRateItUses(t *testing.T) {
	t.Parallel()
	nginx := &peer{name: peerNginx}
	for _, tc := range []struct {
		name      string
		flag, rps float64
		want      float64
	}{
		{"from the reference peer's throughput", 0, 30000, 30000 * ratePercent / 100},
		{"from -rate", 2500, 30000, 2500},
	} {
		b := &bench{opt: options{rate: tc.flag}, peers: []*peer{nginx}, rates: map[string]float64{}, rateFrom: map[string]string{}}
		c := cell{sc: scenarios[2], p: nginx}
		if got := b.rateFor(c, tc.rps); got != tc.want {
			t.Errorf("%s: rate %v, want %v", tc.name, got, tc.want)
		}
		// The table's legend lists the rates from b.rates.
		if got := b.rates[c.sc.name]; got != tc.want {
			t.Errorf("%s: recorded rate %v, want %v", tc.name, got, tc.want)
		}
		if got := b.rateFor(c, 1); got != tc.want {
			t.Errorf("%s: second cell's rate %v, want %v: the first fixes it", tc.name, got, tc.want)
		}
	}
}
