//go:build linux

package main

import (
	"strings"
	"testing"
)

// tablePeers are the four peers as discoverPeers would return them on a
// machine without HAProxy.
func tablePeers() []*peer {
	none := func(scenario) string { return "" }
	return []*peer{
		{name: peerDirect, unsupported: none},
		{name: peerStrangler, unsupported: none},
		{name: peerNginx, unsupported: none},
		{name: peerHAProxy, missing: "not installed", unsupported: func(sc scenario) string {
			if sc.kind == kindShadow {
				return "n/a (no mirror)"
			}
			return ""
		}},
	}
}

// rowOf returns the cells of the table row for scenario and peer.
func rowOf(t *testing.T, md, scenario, peer string) []string {
	t.Helper()
	for _, line := range strings.Split(md, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) == len(tableColumns) && cells[0] == scenario && cells[1] == peer {
			return cells
		}
	}
	t.Fatalf("no row %s / %s in:\n%s", scenario, peer, md)
	return nil
}

func TestTableMediansRatiosAndMissingPeers(t *testing.T) {
	t.Parallel()
	res := []cellResult{
		// direct is measured under plain-1k and is the reference for split-1k too.
		{run: 0, scenario: "plain-1k", peer: peerDirect, rps: 40000, cpuPerReq: 10, cpuAtRate: 12, toService: 0},
		{run: 1, scenario: "plain-1k", peer: peerDirect, rps: 38000, cpuPerReq: 10, cpuAtRate: 12},
		{run: 2, scenario: "plain-1k", peer: peerDirect, rps: 42000, cpuPerReq: 10, cpuAtRate: 12},
		{run: 0, scenario: "split-1k", peer: peerNginx, rps: 30000, cpuPerReq: 20, cpuAtRate: 25, lat: [4]float64{0.2, 0.5, 2, 4}, toService: 0.1, hwmKB: 15 * 1024},
		{run: 1, scenario: "split-1k", peer: peerNginx, rps: 31000, cpuPerReq: 19, cpuAtRate: 24, lat: [4]float64{0.2, 0.5, 2, 4}, toService: 0.1, hwmKB: 15 * 1024, otherCPU: 0.4},
		{run: 2, scenario: "split-1k", peer: peerNginx, rps: 29000, cpuPerReq: 21, cpuAtRate: 26, lat: [4]float64{0.2, 0.5, 2, 4}, toService: 0.1, hwmKB: 15 * 1024},
		{run: 0, scenario: "split-1k", peer: peerStrangler, rps: 15000, cpuPerReq: 40, cpuAtRate: 50, lag: [2]float64{0.2, 0.9}, swAtRate: 4.5, loadAtRate: 0.62, lat: [4]float64{0.3, 1, 3, 30}, toService: 0.094, hwmKB: 34 * 1024, errors: 2, firstErr: "status 502 Bad Gateway"},
		{run: 1, scenario: "split-1k", peer: peerStrangler, err: "strangler failed to start: exited (exit status 1); last lines of log:\n    bad config"},
		{run: 2, scenario: "split-1k", peer: peerStrangler, rps: 16000, cpuPerReq: 42, cpuAtRate: 60, lag: [2]float64{0.4, 1.1}, swAtRate: 1.5, loadAtRate: 0.97, lat: [4]float64{0.3, 1, 5, 50}, toService: 0.096, hwmKB: 36 * 1024, errors: 1},
		{run: 0, scenario: "shadow-1k", peer: peerNginx, rps: 10000, cpuPerReq: 50, shadowsSat: 1, shadowsRate: 1},
		{run: 0, scenario: "shadow-1k", peer: peerStrangler, err: "strangler failed to start: boom"},
		{run: 0, scenario: "idle", peer: peerNginx, idleBase: 12 * 1024, idleHeld: 13 * 1024, hwmKB: 13 * 1024},
	}
	rep := report{
		header:    []string{"**strangler-bench** test header"},
		scenarios: []scenario{scenarios[0], scenarios[2], scenarios[4], scenarios[6]},
		peers:     tablePeers(),
		results:   res,
		rates:     map[string]float64{"plain-1k": 15000, "split-1k": 15000},
		idleConns: 1024,
		conns:     64,
	}
	md := rep.markdown()
	if !strings.HasPrefix(md, "**strangler-bench** test header\n\n| scenario | peer | req/s |") {
		t.Errorf("header and column titles first; got:\n%s", md)
	}

	d := rowOf(t, md, "plain-1k", peerDirect)
	if d[2] != "40,000 (38,000–42,000)" || d[4] != "1.00×" || d[10] != "10.0 (10.0–10.0)" || d[14] != "—" {
		t.Errorf("direct row: %q", d)
	}
	s := rowOf(t, md, "split-1k", peerStrangler)
	want := map[int]string{
		2:  "15,500 (15,000–16,000)", // the failed run is left out of the median
		3:  "0.52×",                  // 15,500 / 30,000
		4:  "0.39×",                  // 15,500 / 40,000 (direct from plain-1k)
		5:  "0.30 (0.30–0.30)",
		7:  "4.00 (3.00–5.00)", // p99: median of 3 and 5, with the range
		9:  "3",                // errors summed over the runs
		10: "41.0 (40.0–42.0)",
		11: "2.05×", // 41 / 20
		12: "4.10×", // 41 / 10
		14: "35.0 (34.0–36.0)",
		15: "9.5 %",
		16: "—", // no shadow in a split
		17: "3.00 (1.50–4.50)",
		18: "80 (62–97)",  // per cent of the load side's CPU
		19: "2.20×",       // CPU at rate: 55 / 25
		20: "0.30 / 1.00", // medians of the runs' lag p50 and p99
	}
	for i, w := range want {
		if s[i] != w {
			t.Errorf("strangler split-1k column %q = %q, want %q", tableColumns[i], s[i], w)
		}
	}
	if _, ok := findRow(md, "split-1k", peerDirect); ok {
		t.Error("direct has a split-1k row; it was measured under plain-1k only")
	}
	if r := rowOf(t, md, "split-1k", peerHAProxy); r[2] != "not installed" {
		t.Errorf("missing haproxy: %q", r)
	}
	if r := rowOf(t, md, "shadow-1k", peerStrangler); r[2] != "failed" {
		t.Errorf("failed strangler: %q", r)
	}
	if r := rowOf(t, md, "shadow-1k", peerNginx); r[16] != "1.00 / 1.00" {
		t.Errorf("nginx shadow/req: %q", r[16])
	}
	if r := rowOf(t, md, "idle", peerNginx); r[2] != "1024 idle conns" || r[14] != "13.0 held (1.0 KiB/conn)" {
		t.Errorf("idle row: %q", r)
	}
	for _, note := range []string{
		"- split-1k / strangler: 1 of 3 runs failed; first: strangler failed to start: exited (exit status 1); last lines of log: ⏎ bad config; split-1k / strangler: 3 errors over 2 runs; first: status 502 Bad Gateway\n",
		"- shadow-1k / strangler: 1 of 1 runs failed; first: strangler failed to start: boom\n",
		"- split-1k / nginx: run 2 disturbed: other processes used 0.40 CPU during it\n",
		"requests/s: plain-1k 15,000, split-1k 15,000.",
		"64 keep-alive connections",
	} {
		if !strings.Contains(md, note) {
			t.Errorf("missing note %q in:\n%s", note, md)
		}
	}
}

// findRow is rowOf without failing.
func findRow(md, scenario, peer string) ([]string, bool) {
	for _, line := range strings.Split(md, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) == len(tableColumns) && cells[0] == scenario && cells[1] == peer {
			return cells, true
		}
	}
	return nil, false
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{thousands(0), "0"},
		{thousands(999.4), "999"},
		{thousands(1000), "1,000"},
		{thousands(1234567.8), "1,234,568"},
		{thousands(-12345), "-12,345"},
		{fmtRatio(1, 4), "0.25×"},
		{fmtRatio(1, 0), "—"},
		{fmtRatio(0, 3), "—"},
		{fmtMs(0.1234), "0.12"},
		{fmtMs(12.345), "12.3"},
		{fmtMs(123.45), "123"},
		{fmtSpread(spread{med: 2, min: 1, max: 3, n: 3}, 1), "2.0 (1.0–3.0)"},
		{fmtSpread(spread{med: 2500, min: 2500, max: 2500, n: 1}, 0), "2,500"},
		{plural(1, "run"), "1 run"},
		{plural(3, "run"), "3 runs"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
