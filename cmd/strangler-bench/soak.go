//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The soak (-soak DURATION): Strangler alone in front of the two backends,
// at a steady open-loop rate, while the soak breaks things on a schedule
// and checks that clients do not notice. See doc.go for what it does and
// soakreport.go for how it is judged.

// The soak's fixed settings.
const (
	soakWarmup          = 30 * time.Second     // load and faults before the first sample
	soakDefaultRate     = 2000                 // requests/s when -rate is not given
	soakPostShare       = 0.10                 // of the requests; the rest are GETs
	soakTail            = 3 * time.Second      // load past the last sample, so that it is read under load
	soakGrace           = 10 * time.Second     // for answers after the schedule ends
	soakDown            = time.Second          // the service's outage after each SIGKILL, before its restart
	soakUnavailableFor  = 5 * time.Second      // each 503 window
	soakResetShare      = 0.05                 // of the shadow copies the service gets
	soakServiceLatency  = 2 * time.Millisecond // per answer: a kill then catches requests in flight
	soakApplyWait       = 3 * time.Second      // a ramp or reload not visible by then did not apply
	soakRampPromise     = 2 * time.Second      // the README's promise for flag edits
	soakRestartAttempts = 5                    // to restart the service on its port
	soakGaugeReadings   = 3                    // /metrics readings per sample; gauges are their median
	soakGaugeEvery      = 500 * time.Millisecond
	soakPollEvery       = 25 * time.Millisecond // /api/routes, waiting for a ramp or reload
	soakPath            = "/api/orders/7?size=1k"
	busyMachine         = 0.25 // CPUs' worth of other processes above which the soak warns
	soakExtraRoute      = "extra"
)

// soakRampSteps are the flag's values, in turn: each differs from the last,
// so that the moment it applies is visible.
var soakRampSteps = []float64{60, 50, 40, 50}

// soakPostBody is every POST's body.
var soakPostBody = []byte(`{"order":{"item":7,"quantity":1,"note":"soak"}}`)

// defaultSoakPlan is the schedule: the service killed every 30 s
// and 503 for 5 s every minute, the flag ramped every 5 s, the config
// reloaded every 20 s. Every period divides the minute between samples,
// and no fault falls within a few seconds of a sample (at 30 s into each
// minute), so that every sample sees the same point of the cycle.
func defaultSoakPlan(soak time.Duration) soakPlan {
	return soakPlan{
		warmup: soakWarmup, total: soakWarmup + soak,
		killEvery: 30 * time.Second, killAt: 12 * time.Second,
		unavailEvery: time.Minute, unavailAt: 45 * time.Second, unavailFor: soakUnavailableFor,
		rampEvery: 5 * time.Second, rampAt: 2500 * time.Millisecond,
		reloadEvery: 20 * time.Second, reloadAt: 7 * time.Second,
		sampleEvery:     time.Minute,
		quietBeforeLast: 5 * time.Second,
	}
}

// soakRun is one soak: its processes, files and what it has seen so far.
type soakRun struct {
	opt         options
	plan        soakPlan
	stderr      io.Writer
	dir         string
	env         []string
	self        string
	admin       *http.Client // readiness, /metrics, /api/routes, the service's fault switch
	ep          endpoints
	cfgPath     string
	flagsPath   string
	monolith    *process
	service     *process // replaced at each restart
	serviceOpts []string
	proxy       *process
	version     string

	start   time.Time // of the load
	tally   soakTally
	faults  faultCounts
	samples []soakSample

	// CPU accounting, for how busy the rest of the machine was: the last
	// reading, and the CPU time of the service processes killed so far.
	lastAt         time.Time
	lastBusy       time.Duration
	lastOurs       time.Duration
	killedServices time.Duration
}

// runSoak runs the soak and returns the exit code: 0 when every goal was
// met, 1 when one was missed or the soak could not run, 130 when
// interrupted.
func runSoak(opt options, stdout, stderr io.Writer) int {
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer stopAll()
	onInterrupt(cancel, stderr)

	s, err := startSoak(ctx, opt, stderr)
	keep := err != nil
	if s != nil {
		defer func() {
			s.stop()
			if keep {
				fmt.Fprintln(stderr, "configs, event logs and logs kept in", s.dir)
			} else {
				os.RemoveAll(s.dir)
			}
		}()
	}
	if err != nil {
		fmt.Fprintln(stderr, "strangler-bench:", err)
		return 1
	}
	rep := s.run(ctx)
	table := rep.markdown()
	fmt.Fprint(stdout, "\n"+table)
	code := 0
	if opt.out != "" {
		if err := os.WriteFile(opt.out, []byte(table), 0o644); err != nil {
			fmt.Fprintln(stderr, "strangler-bench:", err)
			code = 1
		}
	}
	for _, m := range rep.missed() {
		fmt.Fprintln(stderr, "goal missed:", m)
		code, keep = 1, true
	}
	if code == 0 {
		fmt.Fprintln(stderr, "every goal met")
	}
	if rep.otherCPU.max > busyMachine {
		fmt.Fprintf(stderr, "note: other processes used up to %.2f CPU during the soak: the machine was not quiet, and starved processes time out; rerun on a quiet machine before blaming Strangler\n", rep.otherCPU.max)
	}
	if ctx.Err() != nil {
		code = 130
	}
	fmt.Fprintf(stderr, "total runtime %v\n", time.Since(began).Round(time.Second))
	return code
}

// startSoak builds Strangler, starts the backends and Strangler in front
// of them, and waits until all answer. The returned soakRun, when not nil,
// owns a temporary folder and the processes even when err is set.
func startSoak(ctx context.Context, opt options, stderr io.Writer) (*soakRun, error) {
	if runtime.NumCPU() < 2 {
		return nil, fmt.Errorf("needs 2 CPUs (one for the proxy, one for the load), have %d", runtime.NumCPU())
	}
	if err := pinSelf(ctx, loadCPU); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "strangler-soak-")
	if err != nil {
		return nil, err
	}
	s := &soakRun{
		opt: opt, plan: defaultSoakPlan(opt.soak), stderr: stderr, dir: dir, env: childEnv(), self: self,
		admin:     &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second},
		cfgPath:   filepath.Join(dir, "strangler.yaml"),
		flagsPath: filepath.Join(dir, "flags.json"),
		faults: faultCounts{
			shadowResetShare: soakResetShare, down: soakDown, unavailFor: soakUnavailableFor,
			rampSteps: soakRampSteps, rampPromise: soakRampPromise,
		},
	}
	if opt.strangler == "" {
		fmt.Fprintln(stderr, "building ./cmd/strangler …")
	}
	p := discoverPeers(ctx, []string{peerStrangler}, false, "", dir, opt.strangler)[0]
	if p.missing != "" {
		return s, errors.New("strangler: " + p.missing)
	}
	s.version = p.version
	if s.ep.monolith, err = freePort(); err != nil {
		return s, err
	}
	if s.ep.service, err = stablePort(); err != nil {
		return s, err
	}
	if s.ep.listen, err = freePort(); err != nil {
		return s, err
	}
	if s.ep.admin, err = freePort(); err != nil {
		return s, err
	}
	s.monolith, err = startBackend(ctx, s.admin, "monolith", filepath.Join(dir, "monolith.log"), s.env, self, s.ep.monolith,
		"-events", filepath.Join(dir, "monolith.events"))
	if err != nil {
		return s, err
	}
	s.serviceOpts = []string{"-events", filepath.Join(dir, "service.events"),
		"-reset-shadows", strconv.FormatFloat(100*soakResetShare, 'f', -1, 64), "-latency", soakServiceLatency.String()}
	if s.service, err = startBackend(ctx, s.admin, "service", filepath.Join(dir, "service.log"), s.env, self, s.ep.service, s.serviceOpts...); err != nil {
		return s, err
	}
	if err := writeAtomic(s.flagsPath, soakFlags(50)); err != nil {
		return s, err
	}
	if err := writeAtomic(s.cfgPath, soakConfig(s.ep, false)); err != nil {
		return s, err
	}
	s.proxy, err = startProcess("strangler", proxyCPU, filepath.Join(dir, "strangler.log"), p.env(s.env, s.opt.godebug),
		p.bin, "serve", "--config", s.cfgPath, "--log-level", "warn")
	if err != nil {
		return s, err
	}
	if err := waitReady(ctx, s.admin, s.proxy, p.readyURLs(s.ep)); err != nil {
		return s, fmt.Errorf("strangler failed to start: %v; last lines of its log %s:\n%s", err, s.proxy.logPath, s.proxy.logTail(10))
	}
	return s, nil
}

// stop stops every process the soak started.
func (s *soakRun) stop() {
	for _, p := range []*process{s.proxy, s.service, s.monolith} {
		if p != nil {
			p.stop()
		}
	}
}

// run sends the load while walking the schedule, then reads the backends'
// event logs and returns the report.
func (s *soakRun) run(ctx context.Context) *soakReport {
	rate := s.opt.rate
	if rate == 0 {
		rate = soakDefaultRate
	}
	fmt.Fprintf(s.stderr, "soak: %v after a %v warm-up at %s req/s; a line per minute; the table at the end\n", s.opt.soak, s.plan.warmup, thousands(rate))
	load := &soakLoad{
		tr: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        s.opt.conns,
			MaxIdleConnsPerHost: s.opt.conns,
			MaxConnsPerHost:     s.opt.conns,
			// Shorter than the proxy's 90 s, so that the client, not the
			// proxy, closes an idle connection: no request races a close.
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			DisableCompression:    true,
		},
		url:   "http://" + s.ep.listen + soakPath,
		tally: &s.tally,
	}
	defer load.tr.CloseIdleConnections()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	done := make(chan loadResult, 1)
	start := time.Now()
	s.start, s.tally.start, s.lastAt = start, start, start
	if busy, ours, err := s.cpu(); err == nil {
		s.lastBusy, s.lastOurs = busy, ours
	}
	go func() {
		done <- openLoop(loadCtx, s.opt.conns, rate, s.plan.total+soakTail, soakGrace, load.send)
	}()
	aborted := s.walk(ctx, start)
	if aborted != "" {
		stopLoad()
	}
	res := <-done

	rep := &soakReport{
		header: s.header(rate), aborted: aborted,
		total: s.tally.counts(), samples: len(s.samples),
	}
	if failed := rep.total.errors(methodGET) + rep.total.errors(methodPOST); res.errors > failed {
		rep.late = res.errors - failed
	}
	if len(s.samples) > 0 {
		rep.start, rep.end = s.samples[0], s.samples[len(s.samples)-1]
	}
	var other []float64
	for _, smp := range s.samples {
		if smp.otherCPU >= 0 {
			other = append(other, smp.otherCPU)
		}
	}
	rep.otherCPU = spreadOf(other)
	var err error
	if s.faults.serviceEvents, err = readEventLog(filepath.Join(s.dir, "service.events")); err != nil {
		s.faults.problems = append(s.faults.problems, "service event log: "+err.Error())
	}
	if s.faults.monolithEvents, err = readEventLog(filepath.Join(s.dir, "monolith.events")); err != nil {
		s.faults.problems = append(s.faults.problems, "monolith event log: "+err.Error())
	}
	s.tally.mu.Lock()
	rep.posts = judgePosts(s.tally.failedPosts, s.tally.postsLost, s.faults.serviceEvents, s.faults.monolithEvents, s.faults.killedAt)
	rep.firstErr = s.tally.firstErr
	s.tally.mu.Unlock()
	rep.faults = s.faults
	return rep
}

// walk carries out the schedule, from start; it returns why it stopped
// early, or "".
func (s *soakRun) walk(ctx context.Context, start time.Time) string {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, ev := range s.plan.schedule() {
		if wait := time.Until(start.Add(ev.at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			return "interrupted"
		}
		if done, err := s.proxy.exited(); done {
			return fmt.Sprintf("strangler exited (%v); last lines of its log %s:\n%s", err, s.proxy.logPath, s.proxy.logTail(10))
		}
		var err error
		switch ev.kind {
		case evKill:
			err = s.killService(ctx)
		case evUnavailable:
			s.unavailable(ctx)
		case evRamp:
			s.ramp(ctx, ev.n)
		case evReload:
			s.reload(ctx, ev.n)
		case evSample:
			err = s.sample(ctx, time.Since(start))
		}
		if err != nil {
			return err.Error()
		}
	}
	return ""
}

// killService SIGKILLs the service, leaves its port closed for soakDown,
// and starts it again on the same port. Only a service that cannot be
// restarted stops the soak.
func (s *soakRun) killService(ctx context.Context) error {
	t0 := time.Now()
	if t, err := groupCPU(s.service.pgid()); err == nil {
		s.killedServices += t // its CPU time leaves /proc with it
	}
	s.faults.killedAt = append(s.faults.killedAt, time.Since(s.start))
	if err := s.service.kill(); err != nil {
		return err
	}
	s.faults.kills++
	select {
	case <-time.After(soakDown):
	case <-ctx.Done():
		return ctx.Err()
	}
	var last error
	for attempt := range soakRestartAttempts {
		p, err := startBackend(ctx, s.admin, "service", s.service.logPath, s.env, s.self, s.ep.service, s.serviceOpts...)
		if err == nil {
			s.service = p
			s.faults.restarts++
			s.faults.maxDown = max(s.faults.maxDown, time.Since(t0))
			if attempt > 0 {
				s.faults.problems = append(s.faults.problems, fmt.Sprintf("restart %d took %d attempts; the first failed: %v", s.faults.kills, attempt+1, flatten(last.Error())))
			}
			return nil
		}
		if p != nil {
			p.stop()
		}
		last = err
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("service not restarted on %s after %d attempts: %v", s.ep.service, soakRestartAttempts, last)
}

// unavailable makes the service answer 503 for soakUnavailableFor.
func (s *soakRun) unavailable(ctx context.Context) {
	u := fmt.Sprintf("http://%s%s?for=%v", s.ep.service, unavailablePath, soakUnavailableFor)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = s.admin.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = errors.New(resp.Status)
			}
		}
	}
	if err != nil {
		s.faults.problems = append(s.faults.problems, fmt.Sprintf("503 window %d not opened: %v", s.faults.unavailable+1, err))
		return
	}
	s.faults.unavailable++
}

// ramp rewrites the flag file with step n's percent, as `strangler ramp`
// does (a temporary file, then a rename), and times how long the proxy
// takes to show it.
func (s *soakRun) ramp(ctx context.Context, n int) {
	pct := soakRampSteps[n%len(soakRampSteps)]
	if err := writeAtomic(s.flagsPath, soakFlags(pct)); err != nil {
		s.faults.problems = append(s.faults.problems, "ramp: "+err.Error())
		return
	}
	s.faults.ramps++
	took, ok := s.await(ctx, func(rs []routeInfo) bool {
		i := slices.IndexFunc(rs, func(r routeInfo) bool { return r.Name == soakRoute })
		return i >= 0 && rs[i].Percent == pct
	})
	s.faults.maxRampApply = max(s.faults.maxRampApply, took)
	switch {
	case !ok:
		s.faults.rampsMissed++
	case took > soakRampPromise:
		s.faults.rampsLate++
	}
}

// reload rewrites the config, with the extra route on odd reloads and off
// on even ones, sends SIGHUP, and times how long the proxy takes to show
// it. (The proxy's own file watch would apply it too, a little later.)
func (s *soakRun) reload(ctx context.Context, n int) {
	extra := n%2 == 0
	if err := writeAtomic(s.cfgPath, soakConfig(s.ep, extra)); err != nil {
		s.faults.problems = append(s.faults.problems, "reload: "+err.Error())
		return
	}
	if err := syscall.Kill(s.proxy.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		s.faults.problems = append(s.faults.problems, "reload: SIGHUP: "+err.Error())
		return
	}
	s.faults.reloads++
	took, ok := s.await(ctx, func(rs []routeInfo) bool {
		return slices.ContainsFunc(rs, func(r routeInfo) bool { return r.Name == soakExtraRoute }) == extra
	})
	s.faults.maxReloadApply = max(s.faults.maxReloadApply, took)
	if !ok {
		s.faults.reloadsMissed++
	}
}

// routeInfo is what the soak reads of GET /api/routes.
type routeInfo struct {
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
	State   string  `json:"state"`
}

// await polls /api/routes until applied holds, for at most soakApplyWait,
// and returns how long it took and whether it happened.
func (s *soakRun) await(ctx context.Context, applied func([]routeInfo) bool) (time.Duration, bool) {
	t0 := time.Now()
	for range int(soakApplyWait/soakPollEvery) + 1 {
		if rs, err := s.routes(ctx); err == nil && applied(rs) {
			return time.Since(t0), true
		}
		if time.Since(t0) > soakApplyWait || ctx.Err() != nil {
			break
		}
		time.Sleep(soakPollEvery)
	}
	return time.Since(t0), false
}

// routes reads the proxy's GET /api/routes.
func (s *soakRun) routes(ctx context.Context) ([]routeInfo, error) {
	b, err := s.adminGet(ctx, "/api/routes")
	if err != nil {
		return nil, err
	}
	var rs []routeInfo
	return rs, json.Unmarshal(b, &rs)
}

// adminGet returns the body of a 200 answer of the proxy's admin listener.
func (s *soakRun) adminGet(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.ep.admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.admin.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", path, resp.Status)
	}
	return b, err
}

// sample reads the proxy's figures soakGaugeReadings times, keeps the
// gauges' medians and the last counters, and prints a progress line. A
// proxy that answers none of the readings stops the soak.
func (s *soakRun) sample(ctx context.Context, at time.Duration) error {
	var goroutines, fds, rss []float64
	var last proxyFigures
	var lastErr error
	for i := range soakGaugeReadings {
		if i > 0 {
			select {
			case <-time.After(soakGaugeEvery):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		b, err := s.adminGet(ctx, "/metrics")
		var ss []series
		if err == nil {
			ss, err = parseMetrics(bytes.NewReader(b))
		}
		if err != nil {
			lastErr = err
			continue
		}
		last = figuresOf(ss)
		goroutines, fds, rss = append(goroutines, last.goroutines), append(fds, last.fds), append(rss, last.rssBytes)
	}
	if len(goroutines) == 0 {
		return fmt.Errorf("the proxy's /metrics did not answer: %v", lastErr)
	}
	last.goroutines, last.fds, last.rssBytes = median3(goroutines), median3(fds), median3(rss)
	cur := soakSample{at: at, client: s.tally.counts(), proxy: last, otherCPU: -1}
	if busy, ours, err := s.cpu(); err == nil {
		now := time.Now()
		// Sampled differently, the two counters wobble by a few hundredths.
		cur.otherCPU = max(0, float64((busy-s.lastBusy)-(ours-s.lastOurs))/float64(now.Sub(s.lastAt)))
		s.lastAt, s.lastBusy, s.lastOurs = now, busy, ours
	}
	var prev soakSample
	if len(s.samples) > 0 {
		prev = s.samples[len(s.samples)-1]
	}
	s.samples = append(s.samples, cur)
	fmt.Fprintln(s.stderr, minuteLine(prev, cur, s.faults))
	return nil
}

// cpu returns the CPU time the whole machine has been busy and the part of
// it the soak's own processes (the harness, the backends, killed services
// included, and the proxy) used.
func (s *soakRun) cpu() (busy, ours time.Duration, err error) {
	if busy, ours, err = machineAndSelfCPU(); err != nil {
		return 0, 0, err
	}
	ours += s.killedServices
	for _, p := range []*process{s.monolith, s.service, s.proxy} {
		t, err := groupCPU(p.pgid())
		if err != nil {
			return 0, 0, err
		}
		ours += t
	}
	return busy, ours, nil
}

// header returns the README-ready lines above the tables.
func (s *soakRun) header(rate float64) []string {
	version := s.version
	if version == "" {
		version = "strangler (version unknown)"
	}
	return []string{
		fmt.Sprintf("**strangler-bench -soak %v** %s · nproc %d · %s · %s · %s",
			s.opt.soak, time.Now().Format("2006-01-02"), runtime.NumCPU(), cpuModel(), runtime.Version(), version),
		"",
		fmt.Sprintf("%v after a %v warm-up, open loop at %s req/s over %d keep-alive connections (%.0f %% GET, %.0f %% POST of %d bytes; X-User-Id from %s users). "+
			"One route, sticky on X-User-Id, at 50 %% ramped every %v, shadow 100 %%, fallback on connect, reset, timeout and 5xx, ejection after 5 failures (2 s, doubling to 10 s), timeouts connect 200 ms, response header 2 s; the service takes %v per answer, the monolith none. "+
			"Strangler on CPU %d (GOMAXPROCS=1%s), load and backends on CPU %d.",
			s.opt.soak, s.plan.warmup, thousands(rate), s.opt.conns, 100*(1-soakPostShare), 100*soakPostShare, len(soakPostBody), thousands(users),
			s.plan.rampEvery, soakServiceLatency, proxyCPU, godebugNote(s.opt.godebug), loadCPU),
	}
}

// soakLoad sends the soak's requests and tallies their answers.
type soakLoad struct {
	tr     *http.Transport
	url    string
	tally  *soakTally
	nextID atomic.Uint64
}

// send sends one request, a GET or (one in ten) a POST with a unique id,
// as a random user of the pool, reads the whole answer and tallies it. It
// returns an error for a failed request; a request cut off by the end of
// the load is not tallied (openLoop counts it as late).
func (l *soakLoad) send(ctx context.Context, rng *rand.Rand) error {
	m, id := methodGET, ""
	var body io.Reader
	if rng.Float64() < soakPostShare {
		m, id = methodPOST, "p"+strconv.FormatUint(l.nextID.Add(1), 10)
		body = bytes.NewReader(soakPostBody)
	}
	req, err := http.NewRequestWithContext(ctx, methodNames[m], l.url, body)
	if err != nil {
		return err
	}
	req.Header["X-User-Id"] = userIDs[rng.IntN(users)]
	if id != "" {
		req.Header.Set(soakIDHeader, id)
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.tr.RoundTrip(req)
	var status int
	var n int64
	var text []byte
	if err == nil {
		status = resp.StatusCode
		if status == http.StatusOK {
			n, err = io.Copy(io.Discard, resp.Body)
		} else {
			text, err = io.ReadAll(io.LimitReader(resp.Body, 200))
			n = int64(len(text))
		}
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c, failed := classifyAnswer(err, status, n, smallBody)
	if !failed {
		l.tally.add(m, c, false, id, "")
		return nil
	}
	detail := fmt.Sprintf("status %d: %q", status, strings.TrimSpace(string(text)))
	if err != nil {
		detail = err.Error()
	}
	l.tally.add(m, c, true, id, detail)
	return fmt.Errorf("%s %s", methodNames[m], detail)
}

// soakFlags is the flag file with the route at pct, and the extra route's
// flag at 0 (its route exists every other reload; its flag always).
func soakFlags(pct float64) string {
	p := strconv.FormatFloat(pct, 'f', -1, 64)
	return `{"flags":{` +
		`"orders-percent":{"state":"ENABLED","variants":{"on":` + p + `},"defaultVariant":"on"},` +
		`"extra-percent":{"state":"ENABLED","variants":{"off":0},"defaultVariant":"off"}}}` + "\n"
}

// soakConfig is Strangler's config for the soak, with or without the extra
// route (which only exists to make each reload change something).
func soakConfig(ep endpoints, extra bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: %s
admin_listen: %s
monolith: http://%s
flags: {file: flags.json}
timeouts: {connect: 200ms, response_header: 2s}
routes:
  - name: %s
    path: /api/orders/*
    service: http://%s
    sticky: header:X-User-Id
    shadow: {percent: 100}
    fallback: {on: [connect, reset, timeout, 5xx]}
    eject: {consecutive_failures: 5, base_time: 2s, max_time: 10s}
`, ep.listen, ep.admin, ep.monolith, soakRoute, ep.service)
	if extra {
		fmt.Fprintf(&b, `  - name: %s
    path: /api/extra/*
    service: http://%s
    sticky: random
`, soakExtraRoute, ep.monolith)
	}
	return b.String()
}

// writeAtomic replaces path's content as editors and `strangler ramp` do:
// a temporary file in the same folder, then a rename, so that a reader
// sees the old content or the new, never half of it.
func writeAtomic(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// stablePort returns a free loopback host:port below the kernel's
// ephemeral range: while the service is down between a kill and its
// restart, no outgoing connection (of which the proxy opens many) can be
// given its port.
func stablePort() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if l, ok := parsePortRangeLow(string(b)); ok {
			low = l
		}
	}
	from := max(1024, low-10000)
	for range 100 {
		if from >= low {
			break
		}
		addr := "127.0.0.1:" + strconv.Itoa(from+rand.IntN(low-from))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr, nil
		}
	}
	return freePort()
}

// parsePortRangeLow returns the low end of ip_local_port_range ("32768\t60999").
func parsePortRangeLow(s string) (int, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, false
	}
	low, err := strconv.Atoi(f[0])
	return low, err == nil && low > 0 && low < 65536
}
