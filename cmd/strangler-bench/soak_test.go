//go:build linux

package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/proxy"
)

func TestClassifyAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    error
		status int
		n      int64
		want   cause
		failed bool
	}{
		{"whole answer", nil, 200, smallBody, 0, false},
		{"refused", errors.New("connect: connection refused"), 0, 0, causeTransport, true},
		{"body cut short", io.ErrUnexpectedEOF, 200, 100, causeTransport, true},
		{"bad gateway", nil, 502, 60, cause502, true},
		{"unavailable", nil, 503, 30, cause503, true},
		{"gateway timeout", nil, 504, 60, cause504, true},
		{"internal error", nil, 500, 10, cause5xx, true},
		{"not implemented", nil, 501, 10, cause5xx, true},
		{"not found", nil, 404, 10, causeOther, true},
		{"200 with a wrong body", nil, 200, 12, causeOther, true},
	} {
		c, failed := classifyAnswer(tc.err, tc.status, tc.n, smallBody)
		if failed != tc.failed || (failed && c != tc.want) {
			t.Errorf("%s: got %s, failed %v; want %s, failed %v", tc.name, causeNames[c], failed, causeNames[tc.want], tc.failed)
		}
	}
}

func TestParseEventLogKeepsEachPostsLastFate(t *testing.T) {
	t.Parallel()
	el, err := parseEventLog(strings.NewReader("recv p1\nok p1\nrecv p2\nrecv p3\n503 p3\n503 -\nreset -\nreset -\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]postFate{"p1": fateOK, "p2": fateReceived, "p3": fateUnavailable}
	if !mapsEqual(el.posts, want) || el.unavailable != 2 || el.resets != 2 {
		t.Errorf("got %v, %d unavailable, %d resets; want %v, 2, 2", el.posts, el.unavailable, el.resets, want)
	}
	for _, bad := range []string{"recv\n", "boom p1\n", "ok \n"} {
		if _, err := parseEventLog(strings.NewReader(bad)); err == nil {
			t.Errorf("parseEventLog(%q): no error", bad)
		}
	}
}

func mapsEqual(a, b map[string]postFate) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestJudgePostsExplainsOnlyFailuresAfterReceipt(t *testing.T) {
	t.Parallel()
	var tally soakTally
	tally.add(methodPOST, 0, false, "p0", "")
	tally.add(methodPOST, cause503, true, "p1", "status 503")  // the service answered 503: explained
	tally.add(methodPOST, cause502, true, "p2", "status 502")  // received, then killed: explained
	tally.add(methodPOST, cause502, true, "p3", "status 502")  // never reached the service: not explained
	tally.add(methodPOST, cause502, true, "p4", "status 502")  // the service answered 200: not explained
	tally.add(methodPOST, causeTransport, true, "p5", "reset") // the proxy dropped the client: never explained
	tally.add(methodGET, cause502, true, "", "status 502")
	reset := `status 502: "Bad Gateway: route orders: service connection failed"`
	unreachable := `status 502: "Bad Gateway: route orders: service unreachable"`
	s := time.Second
	posts := append(tally.failedPosts,
		failedPost{id: "p6", c: cause502, at: 30*s + 2*time.Millisecond, detail: reset},       // reset just after a kill, never read: explained
		failedPost{id: "p7", c: cause502, at: 50 * s, detail: reset},                          // a reset long after any kill: not explained
		failedPost{id: "p8", c: cause502, at: 30*s + 3*time.Millisecond, detail: unreachable}, // refused at connect: must have been replayed
	)
	service, _ := parseEventLog(strings.NewReader("recv p1\n503 p1\nrecv p2\nrecv p4\nok p4\nrecv p5\n"))
	monolith, _ := parseEventLog(strings.NewReader("recv p0\nok p0\n"))
	v := judgePosts(posts, tally.postsLost, service, monolith, []time.Duration{12 * s, 30 * s})
	if v.failed != 8 || v.unavailable != 1 || v.killed != 1 || v.unread != 1 || len(v.unexplained) != 5 {
		t.Fatalf("got %+v; want 8 failed, 1 unavailable, 1 killed, 1 unread, 5 unexplained", v)
	}
	for i, want := range []unexplainedPost{
		{"p3", "client got 502; service: never received; monolith: never received"},
		{"p4", "client got 502; service: answered 200; monolith: never received"},
		{"p5", "client got transport; service: received, never answered; monolith: never received"},
		{"p7", "client got 502; service: never received; monolith: never received"},
		{"p8", "client got 502; service: never received; monolith: never received"},
	} {
		if v.unexplained[i] != want {
			t.Errorf("unexplained[%d] = %q, want %q", i, v.unexplained[i], want)
		}
	}
	c := tally.counts()
	if c.sent != [numMethods]uint64{1, 6} || c.errors(methodGET) != 1 || c.errors(methodPOST) != 5 || c.failed[methodPOST][cause502] != 3 {
		t.Errorf("counts %+v", c)
	}
	if tally.firstErr[methodPOST][cause502] != "status 502" || tally.firstErr[methodGET][cause502] != "status 502" {
		t.Errorf("first errors %q", tally.firstErr)
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 187
process_resident_memory_bytes 3.1457e+07
process_open_fds 93
strangler_fallbacks_total{reason="5xx",route="orders"} 12
strangler_fallbacks_total{reason="connect",route="orders"} 30
strangler_fallbacks_total{reason="connect",route="extra"} 1000
strangler_comparisons_total{result="match",route="orders"} 900 1712345678000
strangler_comparisons_total{route="orders",result="error"} 40
strangler_ejections_total{route="orders"} 3
strangler_requests_total{backend="service",code="200",route="orders"} 60
strangler_requests_total{backend="monolith",code="200",route="orders"} 40
odd_labels{a="x\"y}",b="back\\slash",c="line\nbreak"} +Inf
`
	ss, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	f := figuresOf(ss)
	if f.goroutines != 187 || f.rssBytes != 31457000 || f.fds != 93 || f.ejections != 3 {
		t.Errorf("gauges %+v", f)
	}
	if f.fallbacks["5xx"] != 12 || f.fallbacks["connect"] != 30 || sumMap(f.fallbacks) != 42 {
		t.Errorf("fallbacks %v: want the orders route's only", f.fallbacks)
	}
	if f.comparisons["match"] != 900 || f.comparisons["error"] != 40 || f.served["service"] != 60 {
		t.Errorf("comparisons %v, served %v", f.comparisons, f.served)
	}
	odd := ss[len(ss)-1]
	if odd.labels["a"] != `x"y}` || odd.labels["b"] != `back\slash` || odd.labels["c"] != "line\nbreak" {
		t.Errorf("labels %q", odd.labels)
	}
	for _, bad := range []string{"novalue", `m{a="1" 2`, `m{a=1} 2`, "m one", "m 1 2 3"} {
		if _, err := parseMetrics(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("parseMetrics(%q): no error", bad)
		}
	}
}

func TestSoakScheduleKeepsSamplesAtOnePointOfTheCycle(t *testing.T) {
	t.Parallel()
	p := defaultSoakPlan(2 * time.Minute)
	evs := p.schedule()
	at := map[soakEventKind][]time.Duration{}
	for i, ev := range evs {
		if i > 0 && ev.at < evs[i-1].at {
			t.Fatalf("not in time order at %d: %v after %v", i, ev.at, evs[i-1].at)
		}
		at[ev.kind] = append(at[ev.kind], ev.at)
	}
	s := time.Second
	for kind, want := range map[soakEventKind][]time.Duration{
		evKill:        {12 * s, 42 * s, 72 * s, 102 * s, 132 * s},
		evUnavailable: {45 * s, 105 * s},
		evSample:      {30 * s, 90 * s, 150 * s},
	} {
		if !slices.Equal(at[kind], want) {
			t.Errorf("kind %d at %v, want %v", kind, at[kind], want)
		}
	}
	if len(at[evRamp]) != 29 || len(at[evReload]) != 7 {
		t.Errorf("%d ramps, %d reloads; want 29 (2.5 s … 142.5 s), 7 (7 s … 127 s)", len(at[evRamp]), len(at[evReload]))
	}
	for _, ev := range evs {
		if ev.kind == evSample {
			continue
		}
		if ev.at > p.total-p.quietBeforeLast {
			t.Errorf("fault %d at %v, within %v of the last sample", ev.kind, ev.at, p.quietBeforeLast)
		}
		for _, smp := range at[evSample] {
			if d := ev.at - smp; d > -2*s && d < 2*s {
				t.Errorf("fault %d at %v, within 2 s of the sample at %v", ev.kind, ev.at, smp)
			}
		}
	}
}

// goodSoakReport is a report in which every goal is met.
func goodSoakReport() *soakReport {
	start := proxyFigures{goroutines: 200, fds: 120, rssBytes: 40 << 20,
		fallbacks: map[string]float64{"connect": 10}, comparisons: map[string]float64{"match": 1000},
		shadowSkipped: map[string]float64{}, served: map[string]float64{"service": 50, "monolith": 50}}
	end := proxyFigures{goroutines: 230, fds: 140, rssBytes: 45 << 20,
		fallbacks: map[string]float64{"connect": 50, "5xx": 30, "reset": 2}, ejections: 12, comparisons: map[string]float64{"match": 9000, "error": 300, "mismatch": 20},
		shadowSkipped: map[string]float64{"ejected": 500}, served: map[string]float64{"service": 480, "monolith": 520}}
	var total tallyCounts
	total.sent = [numMethods]uint64{1_080_000, 120_000}
	total.failed[methodPOST][cause503] = 40
	total.failed[methodPOST][cause502] = 5
	return &soakReport{
		header: []string{"**strangler-bench -soak 10m0s** test"},
		total:  total,
		start:  soakSample{at: 30 * time.Second, proxy: start},
		end:    soakSample{at: 630 * time.Second, proxy: end},
		posts:  postVerdict{failed: 45, unavailable: 40, killed: 2, unread: 3},
		faults: faultCounts{kills: 20, restarts: 20, ramps: 120, reloads: 30, unavailable: 10,
			rampSteps: soakRampSteps, rampPromise: soakRampPromise, down: soakDown, unavailFor: soakUnavailableFor, shadowResetShare: soakResetShare},
	}
}

func TestSoakReportAllGoalsMet(t *testing.T) {
	t.Parallel()
	r := goodSoakReport()
	if m := r.missed(); len(m) != 0 {
		t.Errorf("missed %q, want none", m)
	}
	md := r.markdown()
	for _, want := range []string{
		"**strangler-bench -soak 10m0s** test\n",
		"| requests | sent | errors | transport | 502 | 503 | 504 | other 5xx | other | goal |",
		"| GET | 1,080,000 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 errors: **met** |",
		"| POST | 120,000 | 45 | 0 | 5 | 40 | 0 | 0 | 0 | only after the service failed with them: 45 of 45 (503: 40, killed in flight: 2, killed before reading: 3): **met** |",
		"| goroutines | 200 | 230 | flat (≤ +50): **met** |",
		"| RSS MiB | 40.0 | 45.0 | flat (≤ +16.0 MiB): **met** |",
		"| open file descriptors | 120 | 140 | flat (≤ +50): **met** |",
		"| fallbacks to the monolith | 10 | 82 | 5xx 30, connect 50, reset 2 |",
		"| ejections of the service | 0 | 12 |  |",
		"| comparisons | 1,000 | 9,320 | error 300, match 9,000, mismatch 20 |",
		"| served by the service | | 48.0 % |",
		"| config reload errors | 0 | 0 | 0: **met** |",
		"Faults injected: the service SIGKILLed 20 times",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

func TestSoakReportSaysWhichGoalsWereMissed(t *testing.T) {
	t.Parallel()
	r := goodSoakReport()
	r.total.failed[methodGET][cause502] = 3
	r.total.failed[methodGET][causeTransport] = 1
	never := "client got 502; service: never received; monolith: never received"
	r.posts.unexplained = []unexplainedPost{{"p9", never}, {"p10", "client got 504; service: answered 200; monolith: never received"}, {"p11", never}}
	r.posts.failed += 3
	r.end.proxy.goroutines = 300    // +100 > max(50, 40)
	r.end.proxy.rssBytes = 80 << 20 // +40 MiB > 16
	r.end.proxy.configReloadErrors = 1
	r.faults.rampsLate = 2
	r.late = 7
	r.firstErr[methodGET][cause502] = "status 502: \"Bad Gateway: route orders: service connection failed\""
	missed := strings.Join(r.missed(), "\n")
	for _, want := range []string{
		"GET errors: 4 (transport: 1, 502: 3), want 0",
		"POST errors not explained by a service failure after the POST reached it: 3 of 48",
		"goroutines grew from 200 to 300 after warm-up (tolerance +50)",
		"RSS grew from 40.0 to 80.0 MiB",
		"config reload errors: 1",
		"flag ramps applied later than 2s: 2 of 120",
		"7 requests not sent in time",
	} {
		if !strings.Contains(missed, want) {
			t.Errorf("missed goals lack %q:\n%s", want, missed)
		}
	}
	if strings.Contains(missed, "descriptors") {
		t.Errorf("descriptors reported although flat:\n%s", missed)
	}
	md := r.markdown()
	for _, want := range []string{
		"| GET | 1,080,000 | 4 | 1 | 3 | 0 | 0 | 0 | 0 | 0 errors: **missed** |",
		"45 of 48 (503: 40, killed in flight: 2, killed before reading: 3): **missed** |",
		"| goroutines | 200 | 300 | flat (≤ +50): **missed** |",
		"- unexplained POST errors: 2 × client got 502; service: never received; monolith: never received (e.g. p9)\n- unexplained POST errors: 1 × client got 504",
		"- first GET 502 error: status 502",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

func TestMinuteLine(t *testing.T) {
	t.Parallel()
	prev := soakSample{at: 30 * time.Second}
	prev.client.sent = [numMethods]uint64{900, 100}
	cur := soakSample{at: 90 * time.Second, otherCPU: 0.03, proxy: proxyFigures{goroutines: 210, rssBytes: 41 << 20, fds: 130,
		fallbacks: map[string]float64{"connect": 5}, comparisons: map[string]float64{"match": 100}}}
	cur.client.sent = [numMethods]uint64{2700, 300}
	cur.client.failed[methodPOST][cause503] = 4
	got := minuteLine(prev, cur, faultCounts{kills: 3, unavailable: 1, ramps: 17, reloads: 4})
	want := "[1:30] +2,000 requests, GET errors +0, POST errors +4 | proxy: 210 goroutines, RSS 41.0 MiB, 130 fds, fallbacks 5 (connect 5), ejections 0, comparisons 100 (match 100) | so far: 3 kills, 1 503 windows, 17 ramps, 4 reloads | other processes 0.03 CPU"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestSoakConfigAndFlagsAreValid checks what the soak writes with the
// proxy's own validation, with and without the extra route.
func TestSoakConfigAndFlagsAreValid(t *testing.T) {
	t.Parallel()
	ep := endpoints{listen: "127.0.0.1:18080", admin: "127.0.0.1:19090", monolith: "127.0.0.1:18081", service: "127.0.0.1:18082"}
	for _, extra := range []bool{false, true} {
		dir := t.TempDir()
		if err := writeAtomic(filepath.Join(dir, "flags.json"), soakFlags(40)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "strangler.yaml")
		if err := writeAtomic(path, soakConfig(ep, extra)); err != nil {
			t.Fatal(err)
		}
		cfg, err := proxy.LoadConfig(path)
		if err != nil {
			t.Fatalf("extra %v: %v", extra, err)
		}
		warnings, err := proxy.Check(cfg)
		if err != nil || len(warnings) != 0 {
			t.Errorf("extra %v: warnings %q, %v", extra, warnings, err)
		}
		if got := len(cfg.Routes); got != map[bool]int{false: 1, true: 2}[extra] {
			t.Errorf("extra %v: %d routes", extra, got)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("writeAtomic left files behind: %v", entries)
		}
	}
}

func TestParsePortRangeLow(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"32768\t60999\n": 32768, "1024 65535": 1024, "x 1": 0, "": 0, "70000 70001": 0} {
		got, ok := parsePortRangeLow(in)
		if got != want && ok || (want == 0) == ok {
			t.Errorf("parsePortRangeLow(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
}

// TestSoakBackendFaults drives the soak backend over real connections: a
// POST is logged on receipt and answer, a 503 window fails everything and
// is logged, and a shadow copy can be answered by a connection reset.
func TestSoakBackendFaults(t *testing.T) {
	t.Parallel()
	events := filepath.Join(t.TempDir(), "events")
	sb, err := newSoakBackend(events, 1, time.Millisecond) // every shadow copy reset
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.close)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	do := func(method, path, id string, shadow bool) (int, error) {
		// A new connection each: on a reused one, the transport would
		// retry the reset GET and count two resets.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		if id != "" {
			req.Header.Set(soakIDHeader, id)
		}
		if shadow {
			req.Header.Set(shadowHeader, "1")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	if code, err := do(http.MethodPost, "/api/orders/7", "p1", false); code != 200 || err != nil {
		t.Fatalf("POST: %d, %v", code, err)
	}
	if _, err := do(http.MethodGet, "/api/orders/7", "", true); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("shadow copy: %v, want a connection reset", err)
	}
	if code, err := do(http.MethodPost, unavailablePath+"?for=1m", "", false); code != http.StatusNoContent || err != nil {
		t.Fatalf("unavailable: %d, %v", code, err)
	}
	for _, tc := range []struct{ method, id string }{{http.MethodPost, "p2"}, {http.MethodGet, ""}} {
		if code, err := do(tc.method, "/api/orders/7", tc.id, false); code != 503 || err != nil {
			t.Errorf("%s in the window: %d, %v; want 503", tc.method, code, err)
		}
	}
	if code, _ := do(http.MethodPost, unavailablePath+"?for=forever", "", false); code != http.StatusBadRequest {
		t.Errorf("bad duration: %d, want 400", code)
	}
	el, err := readEventLog(events)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]postFate{"p1": fateOK, "p2": fateUnavailable}
	if !mapsEqual(el.posts, want) || el.resets != 1 || el.unavailable != 2 {
		t.Errorf("event log: %v, %d resets, %d unavailable; want %v, 1, 2", el.posts, el.resets, el.unavailable, want)
	}
	if el, err := readEventLog(filepath.Join(t.TempDir(), "none")); err != nil || len(el.posts) != 0 {
		t.Errorf("a log never written: %v, %v", el, err)
	}
}

func TestParseOptionsSoak(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-soak", "10m"}, true},
		{[]string{"-soak", "2m", "-rate", "500"}, true},
		{[]string{"-soak", "30s"}, false},
		{[]string{"-soak", "25h"}, false},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("parseOptions(%q): %v, want ok %v", tc.args, err, tc.ok)
		}
	}
}
