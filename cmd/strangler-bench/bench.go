//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CPUs: the proxy gets one, the load generator and the backends the other,
// so that the proxy's figures are not disturbed by the load it serves.
const (
	proxyCPU = 0
	loadCPU  = 1
)

// Fixed parts of a cell's timing, also used by the estimate.
const (
	warmup      = 500 * time.Millisecond // closed loop before measuring: pools filled, heap grown
	openGrace   = 2 * time.Second        // how long after its schedule an open loop waits for answers
	idleSettle  = 500 * time.Millisecond // after the idle connections are open, before reading RSS
	cellSetup   = 600 * time.Millisecond // start, readiness, settling, stop: measured 0.3–0.5 s on a quiet machine
	idleCellDur = 3 * time.Second        // a whole idle cell, roughly
	startWait   = 15 * time.Second       // a peer not ready by then failed to start
	settlePoll  = 100 * time.Millisecond // between readings of the backends' counters while a proxy drains
	settleMax   = 5 * time.Second        // a proxy still sending copies by then is measured as it is
	ratePercent = 50                     // open-loop rate: this share of the reference peer's throughput
)

// bench is one run of the harness: what it measures, the backends, and the
// results so far.
type bench struct {
	opt       options
	dir       string   // temporary folder: configs, logs, the Strangler binary
	env       []string // the children's environment
	monolith  string   // backend host:port
	service   string
	backends  []*process // monolith first
	peers     []*peer
	scenarios []scenario
	client    *http.Client       // readiness and counters
	rates     map[string]float64 // open-loop rate per scenario, fixed on first use
	rateFrom  map[string]string  // which peer's throughput set it
	results   []cellResult
}

// cell is one measurement to make: a peer in a scenario, in one run.
type cell struct {
	run int
	sc  scenario
	p   *peer
}

// cellResult is what one cell measured.
type cellResult struct {
	run      int
	scenario string
	peer     string
	err      string // why the cell could not be measured; "" when it was

	rps         float64       // closed loop
	cpuPerReq   float64       // µs of proxy CPU per closed-loop request
	rate        float64       // the open loop's rate
	cpuAtRate   float64       // µs of proxy CPU per open-loop request
	swAtRate    float64       // the proxy's context switches per open-loop request
	loadAtRate  float64       // CPUs' worth the load generator and backends used over the open loop
	lat         [4]float64    // open loop p50, p90, p99, p99.9, in ms
	lag         [2]float64    // open loop: p50 and p99 of how late requests were sent, in ms
	errors      uint64        // both loops
	firstErr    string        // the first error's message
	hwmKB       uint64        // peak RSS of the proxy's processes
	toService   float64       // share of client requests the service answered
	shadowsSat  float64       // shadow copies the backends received per closed-loop request
	shadowsRate float64       // the same, over the open loop
	idleBase    uint64        // idle: RSS before the idle connections, KiB
	idleHeld    uint64        // idle: RSS with them held, KiB
	otherCPU    float64       // CPUs' worth used by other processes during the measured phases
	took        time.Duration // the whole cell
}

// latencyPercentiles are the open-loop percentiles the table reports.
var latencyPercentiles = [4]float64{50, 90, 99, 99.9}

// lagPercentiles are those of the load generator's own lateness.
var lagPercentiles = [2]float64{50, 99}

// referencePeer is the peer whose throughput sets the open-loop rate:
// nginx, or Strangler when nginx cannot run.
func referencePeer(peers []*peer) string {
	for _, name := range []string{peerNginx, peerStrangler} {
		for _, p := range peers {
			if p.name == name && p.missing == "" {
				return name
			}
		}
	}
	return ""
}

// plan lists the cells in the order they run: run by run, scenario by
// scenario, the peers in an order rotated each run so that no peer always
// follows the same one, with the reference peer first in the first run
// (its throughput sets the open-loop rate the others are measured at).
// Direct is measured once per body size per run, under the first scenario
// with that size: what a proxy does differs between scenarios, talking to
// a backend directly does not. Peers that cannot run a scenario have no
// cell; the table says why.
func plan(scs []scenario, peers []*peer, runs int) []cell {
	ref := referencePeer(peers)
	var cells []cell
	for run := range runs {
		directDone := map[int]bool{}
		for _, sc := range scs {
			order := make([]*peer, 0, len(peers))
			for i := range peers {
				order = append(order, peers[(i+run)%len(peers)])
			}
			if run == 0 {
				for i, p := range order {
					if p.name == ref {
						order = append(append([]*peer{p}, order[:i]...), order[i+1:]...)
						break
					}
				}
			}
			for _, p := range order {
				if p.missing != "" || p.unsupported(sc) != "" {
					continue
				}
				if p.name == peerDirect {
					if sc.kind == kindIdle || directDone[sc.size] {
						continue
					}
					directDone[sc.size] = true
				}
				cells = append(cells, cell{run: run, sc: sc, p: p})
			}
		}
	}
	return cells
}

// estimate is how long the cells should take.
func estimate(cells []cell, d time.Duration) time.Duration {
	var t time.Duration
	for _, c := range cells {
		if c.sc.kind == kindIdle {
			t += idleCellDur
		} else {
			t += warmup + 2*d + cellSetup
		}
	}
	return t
}

// run measures every cell, printing progress to stderr. It stops early,
// keeping what it has, when ctx ends.
func (b *bench) run(ctx context.Context, cells []cell) {
	for i, c := range cells {
		if ctx.Err() != nil {
			return
		}
		r := b.runCell(ctx, c)
		if ctx.Err() != nil {
			return // an interrupted cell measured nothing worth keeping
		}
		b.results = append(b.results, r)
		fmt.Fprintf(os.Stderr, "[%d/%d] run %d %-10s %-9s %s\n", i+1, len(cells), c.run+1, c.sc.name, c.p.name, r.summary())
	}
}

// summary is a cell's progress line.
func (r *cellResult) summary() string {
	switch {
	case r.err != "":
		return "FAILED: " + r.err
	case r.idleHeld > 0:
		return fmt.Sprintf("RSS %.1f MiB with idle connections (%.1f before)", mib(r.idleHeld), mib(r.idleBase))
	}
	s := fmt.Sprintf("%.0f req/s, %.1f µs CPU/req; at %.0f req/s: p50 %.2f p99 %.2f ms, %.1f µs CPU/req, %.2f context switches/req, load side %.0f %% busy; shadow/req %.2f/%.2f; errors %d; other processes %.2f CPU",
		r.rps, r.cpuPerReq, r.rate, r.lat[0], r.lat[2], r.cpuAtRate, r.swAtRate, 100*r.loadAtRate, r.shadowsSat, r.shadowsRate, r.errors, r.otherCPU)
	if r.hwmKB > 0 {
		s += fmt.Sprintf("; peak RSS %.1f MiB", mib(r.hwmKB))
	}
	if r.firstErr != "" {
		s += " (first: " + r.firstErr + ")"
	}
	return s
}

// instance is a running peer for one cell.
type instance struct {
	addr string   // where the load goes
	pgid int      // whose CPU and memory are measured
	proc *process // nil for direct: the backend outlives the cell
}

// stop stops the peer.
func (in *instance) stop() {
	if in.proc != nil {
		in.proc.stop()
	}
}

// runCell starts the cell's peer, measures it, and stops it.
func (b *bench) runCell(ctx context.Context, c cell) cellResult {
	start := time.Now()
	r := cellResult{run: c.run, scenario: c.sc.name, peer: c.p.name}
	in, err := b.start(ctx, c)
	if err != nil {
		r.err = err.Error()
		return r
	}
	if c.sc.kind == kindIdle {
		err = b.measureIdle(ctx, c, in, &r)
	} else {
		err = b.measureLoad(ctx, c, in, &r)
	}
	in.stop()
	if err != nil {
		r.err = err.Error()
	}
	r.took = time.Since(start)
	return r
}

// start launches the cell's peer in front of the backends, pinned to the
// proxy CPU, and waits until it answers. A peer that exits or does not
// answer in time is an error naming it, with the end of its log.
func (b *bench) start(ctx context.Context, c cell) (*instance, error) {
	if c.p.command == nil {
		return &instance{addr: b.monolith, pgid: b.backends[0].pgid()}, nil
	}
	dir := filepath.Join(b.dir, fmt.Sprintf("run%d-%s-%s", c.run+1, c.sc.name, c.p.name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ep := endpoints{monolith: b.monolith, service: b.service}
	var err error
	if ep.listen, err = freePort(); err != nil {
		return nil, err
	}
	if ep.admin, err = freePort(); err != nil {
		return nil, err
	}
	argv, err := c.p.command(c.p.bin, dir, c.sc, ep)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", c.p.name, err)
	}
	proc, err := startProcess(c.p.name, proxyCPU, filepath.Join(dir, "log"), c.p.env(b.env, b.opt.godebug), argv...)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, b.client, proc, c.p.readyURLs(ep)); err != nil {
		proc.stop()
		return nil, fmt.Errorf("%s failed to start: %v; last lines of its log %s:\n%s", c.p.name, err, proc.logPath, proc.logTail(10))
	}
	return &instance{addr: ep.listen, pgid: proc.pgid(), proc: proc}, nil
}

// waitReady polls urls in order until each answers 200, for at most
// startWait; it gives up at once if proc exits.
func waitReady(ctx context.Context, client *http.Client, proc *process, urls []string) error {
	deadline := time.Now().Add(startWait)
	poll := 20 * time.Millisecond
	for _, u := range urls {
		var last string
		for n := 0; ; n++ {
			if done, err := proc.exited(); done {
				return fmt.Errorf("exited (%v)", err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) || n > int(startWait/poll) {
				return fmt.Errorf("%s not ready after %v: %s", u, startWait, last)
			}
			last = get(ctx, client, u)
			if last == "" {
				break
			}
			time.Sleep(poll)
		}
	}
	return nil
}

// get sends one GET and returns "" for a 200, else what went wrong.
func get(ctx context.Context, client *http.Client, url string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return ""
}

// freePort returns a loopback host:port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startBackends starts the monolith and the service, pinned to the load
// CPU, and waits until both answer.
func (b *bench) startBackends(ctx context.Context, self string) error {
	for _, name := range []string{"monolith", "service"} {
		addr, err := freePort()
		if err != nil {
			return err
		}
		p, err := startBackend(ctx, b.client, name, filepath.Join(b.dir, "backend-"+name+".log"), b.env, self, addr)
		if p != nil {
			b.backends = append(b.backends, p)
		}
		if err != nil {
			return err
		}
		if name == "monolith" {
			b.monolith = addr
		} else {
			b.service = addr
		}
	}
	return nil
}

// startBackend starts this binary as backend name on addr with the extra
// backend options, pinned to the load CPU, and waits until it answers. The
// process, when not nil, is the caller's to stop even when err is set.
func startBackend(ctx context.Context, client *http.Client, name, logPath string, env []string, self, addr string, opts ...string) (*process, error) {
	argv := append([]string{self, backendFlag, addr}, opts...)
	p, err := startProcess("backend "+name, loadCPU, logPath, env, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, client, p, []string{"http://" + addr + countsPath}); err != nil {
		return p, fmt.Errorf("backend %s failed to start: %v; log:\n%s", name, err, p.logTail(10))
	}
	return p, nil
}

// stopBackends stops the backends.
func (b *bench) stopBackends() {
	for _, p := range b.backends {
		p.stop()
	}
}

// mib converts KiB to MiB.
func mib(kb uint64) float64 { return float64(kb) / 1024 }

// childEnv is the environment of every child: the path, and one CPU's
// worth of Go scheduler. Nothing else is inherited, so that an OTEL_* or
// GODEBUG setting in the caller's shell cannot change what is measured.
func childEnv() []string {
	env := []string{"GOMAXPROCS=1"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// withGodebug returns env with GODEBUG=godebug added, or env itself when
// godebug is empty. It never appends to env's backing array, which the
// backends share.
func withGodebug(env []string, godebug string) []string {
	if godebug == "" {
		return env
	}
	return append(slices.Clip(env), "GODEBUG="+godebug)
}

// checkGodebug rejects a -godebug value that is not a comma-separated list
// of key=value settings: the Go runtime ignores a malformed one silently,
// and a run would then measure something other than what its header says.
func checkGodebug(v string) error {
	if v == "" {
		return nil
	}
	for _, kv := range strings.Split(v, ",") {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(kv, " \t") {
			return fmt.Errorf("%q is not a key=value setting", kv)
		}
	}
	return nil
}

// godebugNote is the header's mention of -godebug, or "".
func godebugNote(v string) string {
	if v == "" {
		return ""
	}
	return ", GODEBUG=" + v + " for the Go proxies"
}
