//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The soak's pure parts: the fault schedule, what a client answer counts
// as, reading the proxy's /metrics, the table and the goals.

// soakEventKind is one thing the soak does on its schedule.
type soakEventKind int

const (
	evKill        soakEventKind = iota // SIGKILL the service, restart it on the same port after soakDown
	evUnavailable                      // the service answers 503 for soakUnavailableFor
	evRamp                             // rewrite the flag file with the next percent
	evReload                           // rewrite the config (the extra route toggled) and SIGHUP
	evSample                           // read the proxy's figures; print a line
)

// soakEvent is one scheduled action, at an offset from the load's start.
type soakEvent struct {
	at   time.Duration
	kind soakEventKind
	n    int // the how-manieth of its kind, from 0
}

// soakPlan is when each fault recurs: every `every`, first at `at`.
type soakPlan struct {
	warmup          time.Duration // the first sample; figures before it are the warm-up's
	total           time.Duration // warm-up + soak: the last sample
	killEvery       time.Duration
	killAt          time.Duration
	unavailEvery    time.Duration
	unavailAt       time.Duration
	unavailFor      time.Duration
	rampEvery       time.Duration
	rampAt          time.Duration
	reloadEvery     time.Duration
	reloadAt        time.Duration
	sampleEvery     time.Duration
	quietBeforeLast time.Duration // no fault this close to the last sample
}

// schedule lists the plan's events in time order. Samples fall at the
// warm-up's end and then every sampleEvery, so that with the faults'
// periods dividing sampleEvery every sample is taken at the same point of
// the fault cycle, and the last at total. Faults start at once (the
// warm-up sees them too, so that every path is warm when the first sample
// is taken) and stop quietBeforeLast before the last sample; a failure
// window that would not end by then is left out.
func (p soakPlan) schedule() []soakEvent {
	var evs []soakEvent
	stop := p.total - p.quietBeforeLast
	add := func(kind soakEventKind, at, every, lasts time.Duration) {
		if every <= 0 {
			return
		}
		for n := 0; at+lasts <= stop && n < 1_000_000; n++ {
			evs = append(evs, soakEvent{at: at, kind: kind, n: n})
			at += every
		}
	}
	add(evKill, p.killAt, p.killEvery, 0)
	add(evUnavailable, p.unavailAt, p.unavailEvery, p.unavailFor)
	add(evRamp, p.rampAt, p.rampEvery, 0)
	add(evReload, p.reloadAt, p.reloadEvery, 0)
	n := 0
	for at := p.warmup; at < p.total && n < 1_000_000; at += p.sampleEvery {
		evs = append(evs, soakEvent{at: at, kind: evSample, n: n})
		n++
	}
	evs = append(evs, soakEvent{at: p.total, kind: evSample, n: n})
	slices.SortStableFunc(evs, func(a, b soakEvent) int { return int(a.at - b.at) })
	return evs
}

// Request methods the soak sends.
const (
	methodGET = iota
	methodPOST
	numMethods
)

var methodNames = [numMethods]string{"GET", "POST"}

// cause is why a client request failed.
type cause int

const (
	causeTransport cause = iota // no complete answer: refused, reset, timed out, cut short
	cause502
	cause503
	cause504
	cause5xx   // another 5xx
	causeOther // any other status, or a 200 with a wrong body
	numCauses
)

var causeNames = [numCauses]string{"transport", "502", "503", "504", "other 5xx", "other"}

// classifyAnswer says whether a request failed, and why: err is the
// transport's or the body read's error, status the answer's status, n the
// body bytes read and want the length a good answer has.
func classifyAnswer(err error, status int, n, want int64) (c cause, failed bool) {
	switch {
	case err != nil:
		return causeTransport, true
	case status == 200 && n == want:
		return 0, false
	case status == 502:
		return cause502, true
	case status == 503:
		return cause503, true
	case status == 504:
		return cause504, true
	case status >= 500 && status <= 599:
		return cause5xx, true
	}
	return causeOther, true
}

// maxFailedPosts bounds how many failed POSTs are kept for matching with
// the backends' event logs; more would mean the soak is hopeless anyway.
const maxFailedPosts = 100_000

// failedPost is a POST the client saw fail.
type failedPost struct {
	id     string
	c      cause
	at     time.Duration // since the load started, when the client saw it fail
	detail string        // what the client got
}

// soakTally counts the client's requests as the load runs; every load
// worker writes to it.
type soakTally struct {
	start  time.Time                 // of the load, for failedPost.at
	sent   [numMethods]atomic.Uint64 // answered or failed, classified
	failed [numMethods][numCauses]atomic.Uint64

	mu          sync.Mutex
	firstErr    [numMethods][numCauses]string
	failedPosts []failedPost
	postsLost   uint64 // failed POSTs beyond maxFailedPosts
}

// add counts one classified request; id is a POST's X-Soak-Id and detail
// what went wrong, for the first failure of each kind.
func (t *soakTally) add(m int, c cause, failed bool, id, detail string) {
	t.sent[m].Add(1)
	if !failed {
		return
	}
	if t.failed[m][c].Add(1) == 1 || m == methodPOST {
		t.mu.Lock()
		if t.firstErr[m][c] == "" {
			t.firstErr[m][c] = detail
		}
		if m == methodPOST {
			if len(t.failedPosts) < maxFailedPosts {
				t.failedPosts = append(t.failedPosts, failedPost{id: id, c: c, at: time.Since(t.start), detail: detail})
			} else {
				t.postsLost++
			}
		}
		t.mu.Unlock()
	}
}

// tallyCounts is a copy of a tally's counters at one moment.
type tallyCounts struct {
	sent   [numMethods]uint64
	failed [numMethods][numCauses]uint64
}

// counts copies the counters.
func (t *soakTally) counts() tallyCounts {
	var c tallyCounts
	for m := range numMethods {
		c.sent[m] = t.sent[m].Load()
		for k := range numCauses {
			c.failed[m][k] = t.failed[m][k].Load()
		}
	}
	return c
}

// errors is m's failed requests, all causes.
func (c tallyCounts) errors(m int) uint64 {
	var n uint64
	for _, v := range c.failed[m] {
		n += v
	}
	return n
}

// totalSent is both methods' requests.
func (c tallyCounts) totalSent() uint64 { return c.sent[methodGET] + c.sent[methodPOST] }

// series is one sample of the Prometheus text format.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format (version
// 0.0.4): comments skipped, label values unescaped, timestamps ignored.
func parseMetrics(r io.Reader) ([]series, error) {
	var out []series
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSeries(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseSeries parses one sample line: name{label="value",…} value [ts].
func parseSeries(line string) (series, error) {
	s := series{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " ,")
			if line == "" {
				return s, errors.New("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq <= 0 {
				return s, fmt.Errorf("bad label in %q", line)
			}
			key := strings.TrimSpace(line[:eq])
			line = line[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(line); j++ {
				switch c := line[j]; {
				case c == '\\' && j+1 < len(line):
					j++
					if line[j] == 'n' {
						v.WriteByte('\n')
					} else {
						v.WriteByte(line[j])
					}
				case c == '"':
					line, closed = line[j+1:], true
				default:
					v.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return s, fmt.Errorf("unterminated value of label %s", key)
			}
			s.labels[key] = v.String()
		}
	}
	f := strings.Fields(line)
	if len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("want a value and an optional timestamp after %s, got %q", s.name, line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("%s: %w", s.name, err)
	}
	s.value = v
	return s, nil
}

// sumOf adds the values of name's series whose labels match the pairs
// (key, value, key, value…).
func sumOf(ss []series, name string, match ...string) float64 {
	var v float64
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			ok = ok && s.labels[match[i]] == match[i+1]
		}
		if ok {
			v += s.value
		}
	}
	return v
}

// soakRoute is the route the soak's load goes to.
const soakRoute = "orders"

// proxyFigures are what the soak reads from the proxy's /metrics.
type proxyFigures struct {
	goroutines, fds, rssBytes float64
	fallbacks                 map[string]float64 // by reason
	ejections                 float64
	flagReloadErrors          float64
	configReloadErrors        float64
	panics                    float64
	comparisons               map[string]float64 // by result
	shadowSkipped             map[string]float64 // by reason
	served                    map[string]float64 // the route's answers by backend
}

// figuresOf picks the soak's figures out of a /metrics reading.
func figuresOf(ss []series) proxyFigures {
	route := func(name, label string) map[string]float64 {
		m := map[string]float64{}
		for _, s := range ss {
			if s.name == name && s.labels["route"] == soakRoute {
				m[s.labels[label]] += s.value
			}
		}
		return m
	}
	return proxyFigures{
		goroutines:         sumOf(ss, "go_goroutines"),
		fds:                sumOf(ss, "process_open_fds"),
		rssBytes:           sumOf(ss, "process_resident_memory_bytes"),
		fallbacks:          route("strangler_fallbacks_total", "reason"),
		ejections:          sumOf(ss, "strangler_ejections_total", "route", soakRoute),
		flagReloadErrors:   sumOf(ss, "strangler_flag_reload_errors_total"),
		configReloadErrors: sumOf(ss, "strangler_config_reload_errors_total"),
		panics:             sumOf(ss, "strangler_panics_total"),
		comparisons:        route("strangler_comparisons_total", "result"),
		shadowSkipped:      route("strangler_shadow_skipped_total", "reason"),
		served:             route("strangler_requests_total", "backend"),
	}
}

// median3 returns the median of gauge readings (the middle of the sorted
// values; the mean of the middle two for an even count).
func median3(xs []float64) float64 { return spreadOf(xs).med }

// soakSample is one reading during the soak.
type soakSample struct {
	at       time.Duration // since the load started
	client   tallyCounts
	proxy    proxyFigures
	otherCPU float64 // CPUs' worth used by other processes since the previous sample; < 0: unknown
}

// faultCounts is what the soak did to the proxy, and how it went.
type faultCounts struct {
	kills, restarts  int
	killedAt         []time.Duration // since the load started
	maxDown          time.Duration   // from SIGKILL to the service answering again
	unavailable      int             // 503 windows opened
	ramps            int
	rampsLate        int           // not applied within rampPromise
	rampsMissed      int           // not applied within applyWait
	maxRampApply     time.Duration // the slowest ramp, flag file written → percent visible in /api/routes
	reloads          int
	reloadsMissed    int           // not applied within applyWait
	maxReloadApply   time.Duration // SIGHUP → visible in /api/routes
	problems         []string      // the soak could not do something it meant to
	serviceEvents    eventLog      // the service's event log, read at the end
	monolithEvents   eventLog      // the monolith's
	shadowResetShare float64
	down, unavailFor time.Duration
	rampSteps        []float64
	rampPromise      time.Duration
}

// postVerdict matches the POSTs the client saw fail with what the backends
// recorded: a failure is explained when the service really failed after
// the POST reached it (it answered 503, or it was killed before answering).
type postVerdict struct {
	failed      int
	unavailable int // the service answered 503 and the client got it
	killed      int // the service received it and died before answering; the client got 502
	// unread: the proxy wrote it to the service's connection as the service
	// was killed, the kernel answered with a reset, and the service never
	// read it; the client got 502 "connection failed" just after a kill.
	// The proxy cannot tell this from a crash while processing.
	unread      int
	unexplained []unexplainedPost
	notMatched  uint64 // failed POSTs beyond maxFailedPosts, not matched
}

// unexplainedPost is a failed POST the backends' logs do not explain.
type unexplainedPost struct {
	id   string
	what string // what the client got, and what each backend did with it
}

// Recognising a POST lost in a killed service's socket: the proxy's 502
// text for a reset (a connect failure, "unreachable", is replayed to the
// monolith and must never reach the client), within killWindow of a kill.
const (
	resetAnswer = "service connection failed"
	killWindow  = 500 * time.Millisecond
)

// judgePosts matches failed POSTs with the backends' event logs and the
// times the service was killed.
func judgePosts(posts []failedPost, lost uint64, service, monolith eventLog, kills []time.Duration) postVerdict {
	v := postVerdict{failed: len(posts) + int(lost), notMatched: lost}
	justKilled := func(at time.Duration) bool {
		return slices.ContainsFunc(kills, func(k time.Duration) bool { return at >= k-50*time.Millisecond && at <= k+killWindow })
	}
	for _, p := range posts {
		sf, mf := service.posts[p.id], monolith.posts[p.id]
		switch {
		case p.c == cause503 && sf == fateUnavailable:
			v.unavailable++
		case p.c == cause502 && sf == fateReceived:
			v.killed++
		case p.c == cause502 && sf == fateUnseen && mf == fateUnseen && strings.Contains(p.detail, resetAnswer) && justKilled(p.at):
			v.unread++
		default:
			v.unexplained = append(v.unexplained, unexplainedPost{p.id, fmt.Sprintf("client got %s; service: %s; monolith: %s", causeNames[p.c], sf, mf)})
		}
	}
	return v
}

// String says what a backend did with a POST.
func (f postFate) String() string {
	switch f {
	case fateReceived:
		return "received, never answered"
	case fateOK:
		return "answered 200"
	case fateUnavailable:
		return "answered 503"
	}
	return "never received"
}

// Tolerances for "flat after warm-up": growth from the first sample to the
// last beyond max(absolute, share of the first) is a leak. Connection
// pools make goroutines and descriptors wobble with the peak concurrency of
// the last 90 s (idle timeout); the heap with the garbage collector's pace.
const (
	goroutineSlack      = 50
	goroutineSlackShare = 0.20
	fdSlack             = 50
	fdSlackShare        = 0.20
	rssSlackMiB         = 16
	rssSlackShare       = 0.25
)

// slack is the tolerated growth of a figure that started at start.
func slack(start, abs, share float64) float64 { return math.Max(abs, share*start) }

// soakReport is everything the soak's table is rendered from; rendering and
// judging are pure functions of it.
type soakReport struct {
	header   []string
	aborted  string      // why the soak stopped early; "" if it ran to the end
	total    tallyCounts // the client's counts over the whole load
	late     uint64      // requests the load could not send on schedule
	start    soakSample  // after the warm-up
	end      soakSample
	samples  int
	otherCPU spread // CPUs' worth used by other processes, over the sampling intervals
	posts    postVerdict
	faults   faultCounts
	firstErr [numMethods][numCauses]string
}

// missed lists the goals the soak missed, each saying which and by how
// much; empty when all were met.
func (r *soakReport) missed() []string {
	var out []string
	if r.aborted != "" {
		out = append(out, "the soak did not run to the end: "+r.aborted)
	}
	if n := r.total.errors(methodGET); n > 0 {
		out = append(out, fmt.Sprintf("GET errors: %d (%s), want 0", n, causeList(r.total.failed[methodGET])))
	}
	if n := len(r.posts.unexplained) + int(r.posts.notMatched); n > 0 {
		out = append(out, fmt.Sprintf("POST errors not explained by a service failure after the POST reached it: %d of %d", n, r.posts.failed))
	}
	if r.late > 0 {
		out = append(out, fmt.Sprintf("the load could not keep its schedule: %d requests not sent in time (the figures understate the load)", r.late))
	}
	s, e := r.start.proxy, r.end.proxy
	if g := e.goroutines - s.goroutines; g > slack(s.goroutines, goroutineSlack, goroutineSlackShare) {
		out = append(out, fmt.Sprintf("goroutines grew from %.0f to %.0f after warm-up (tolerance +%.0f)", s.goroutines, e.goroutines, slack(s.goroutines, goroutineSlack, goroutineSlackShare)))
	}
	if g := (e.rssBytes - s.rssBytes) / (1 << 20); g > slack(s.rssBytes/(1<<20), rssSlackMiB, rssSlackShare) {
		out = append(out, fmt.Sprintf("RSS grew from %.1f to %.1f MiB after warm-up (tolerance +%.1f MiB)", s.rssBytes/(1<<20), e.rssBytes/(1<<20), slack(s.rssBytes/(1<<20), rssSlackMiB, rssSlackShare)))
	}
	if g := e.fds - s.fds; g > slack(s.fds, fdSlack, fdSlackShare) {
		out = append(out, fmt.Sprintf("open file descriptors grew from %.0f to %.0f after warm-up (tolerance +%.0f)", s.fds, e.fds, slack(s.fds, fdSlack, fdSlackShare)))
	}
	if e.flagReloadErrors > 0 {
		out = append(out, fmt.Sprintf("flag reload errors: %.0f, want 0 (every flag file written was valid)", e.flagReloadErrors))
	}
	if e.configReloadErrors > 0 {
		out = append(out, fmt.Sprintf("config reload errors: %.0f, want 0 (every config written was valid)", e.configReloadErrors))
	}
	if e.panics > 0 {
		out = append(out, fmt.Sprintf("panics: %.0f, want 0", e.panics))
	}
	f := r.faults
	if f.rampsLate > 0 || f.rampsMissed > 0 {
		out = append(out, fmt.Sprintf("flag ramps applied later than %v: %d of %d (%d not at all; slowest %v)", f.rampPromise, f.rampsLate+f.rampsMissed, f.ramps, f.rampsMissed, f.maxRampApply.Round(time.Millisecond)))
	}
	if f.reloadsMissed > 0 {
		out = append(out, fmt.Sprintf("config reloads not applied: %d of %d", f.reloadsMissed, f.reloads))
	}
	for _, p := range f.problems {
		out = append(out, "fault injection: "+p)
	}
	return out
}

// causeList renders the non-zero counts of causes: "502: 3, transport: 1".
func causeList(c [numCauses]uint64) string {
	var parts []string
	for k, v := range c {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", causeNames[k], v))
		}
	}
	return strings.Join(parts, ", ")
}

// markdown renders the header, the client table, the proxy table, and
// notes on how to read them and on whatever failed.
func (r *soakReport) markdown() string {
	var b strings.Builder
	if r.aborted != "" {
		b.WriteString("**Aborted: " + r.aborted + "; figures up to then.**\n\n")
	}
	for _, h := range r.header {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n| requests | sent | errors |")
	for _, n := range causeNames {
		b.WriteString(" " + n + " |")
	}
	b.WriteString(" goal |\n|---|--:|--:|" + strings.Repeat("--:|", int(numCauses)) + "---|\n")
	for m := range numMethods {
		goal := "0 errors: **met**"
		switch {
		case m == methodGET && r.total.errors(m) > 0:
			goal = "0 errors: **missed**"
		case m == methodPOST:
			explained := r.posts.unavailable + r.posts.killed + r.posts.unread
			verdict := "**met**"
			if len(r.posts.unexplained) > 0 || r.posts.notMatched > 0 {
				verdict = "**missed**"
			}
			goal = fmt.Sprintf("only after the service failed with them: %d of %d (503: %d, killed in flight: %d, killed before reading: %d): %s",
				explained, r.posts.failed, r.posts.unavailable, r.posts.killed, r.posts.unread, verdict)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |", methodNames[m], thousands(float64(r.total.sent[m])), thousands(float64(r.total.errors(m))))
		for k := range numCauses {
			b.WriteString(" " + thousands(float64(r.total.failed[m][k])) + " |")
		}
		b.WriteString(" " + goal + " |\n")
	}

	s, e := r.start.proxy, r.end.proxy
	b.WriteString("\n| proxy | after warm-up | end | goal |\n|---|--:|--:|---|\n")
	flat := func(name string, sv, ev, tol float64, prec int, unit string) {
		verdict := "**met**"
		if ev-sv > tol {
			verdict = "**missed**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | flat (≤ +%s%s): %s |\n", name,
			strconv.FormatFloat(sv, 'f', prec, 64), strconv.FormatFloat(ev, 'f', prec, 64),
			strconv.FormatFloat(tol, 'f', prec, 64), unit, verdict)
	}
	flat("goroutines", s.goroutines, e.goroutines, slack(s.goroutines, goroutineSlack, goroutineSlackShare), 0, "")
	flat("RSS MiB", s.rssBytes/(1<<20), e.rssBytes/(1<<20), slack(s.rssBytes/(1<<20), rssSlackMiB, rssSlackShare), 1, " MiB")
	flat("open file descriptors", s.fds, e.fds, slack(s.fds, fdSlack, fdSlackShare), 0, "")
	counter := func(name string, sv, ev float64, goal string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, thousands(sv), thousands(ev), goal)
	}
	counter("fallbacks to the monolith", sumMap(s.fallbacks), sumMap(e.fallbacks), labelList(e.fallbacks))
	counter("ejections of the service", s.ejections, e.ejections, "")
	counter("comparisons", sumMap(s.comparisons), sumMap(e.comparisons), labelList(e.comparisons))
	counter("shadow copies skipped", sumMap(s.shadowSkipped), sumMap(e.shadowSkipped), labelList(e.shadowSkipped))
	if t := sumMap(e.served); t > 0 {
		fmt.Fprintf(&b, "| served by the service | | %.1f %% | the split is 40–60 %%, less while ejected |\n", 100*e.served["service"]/t)
	}
	zero := func(name string, sv, ev float64) {
		verdict := "0: **met**"
		if ev > 0 {
			verdict = "0: **missed**"
		}
		counter(name, sv, ev, verdict)
	}
	zero("flag reload errors", s.flagReloadErrors, e.flagReloadErrors)
	zero("config reload errors", s.configReloadErrors, e.configReloadErrors)
	zero("panics", s.panics, e.panics)

	b.WriteString("\n")
	for _, n := range r.notes() {
		b.WriteString("- " + n + "\n")
	}
	return b.String()
}

// notes say what the soak did and how to read the tables.
func (r *soakReport) notes() []string {
	f := r.faults
	steps := make([]string, len(f.rampSteps))
	for i, v := range f.rampSteps {
		steps[i] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	notes := []string{
		fmt.Sprintf("Faults injected: the service SIGKILLed %d times and restarted on its port (%d restarts; down %v, then start-up; longest outage %v); "+
			"%d windows of %v in which the service answered 503 (%s answers); %s shadow copies reset (%.0f %% of those the service got; hijacked, SO_LINGER 0, closed); "+
			"the flag ramped %d times (%s %%; slowest applied after %v); the config rewritten and reloaded by SIGHUP %d times (an extra route toggled; slowest applied after %v).",
			f.kills, f.restarts, f.down, f.maxDown.Round(time.Millisecond),
			f.unavailable, f.unavailFor, thousands(float64(f.serviceEvents.unavailable)), thousands(float64(f.serviceEvents.resets)), 100*f.shadowResetShare,
			f.ramps, strings.Join(steps, " → "), f.maxRampApply.Round(time.Millisecond), f.reloads, f.maxReloadApply.Round(time.Millisecond)),
		"Few requests meet a failing service: after 5 failures in a row it is ejected (its share goes to the monolith), and a failure right after an ejection ejects it again at once. " +
			"Comparison errors are fewer than the shadow copies reset because a GET is sent once more, on a new connection, when a reused connection is reset before any answer byte (net/http's rule, which the proxy's own HTTP/1.1 client keeps); the service then sees the copy twice, and only a reset of that second attempt, or of a copy on a new connection, is an error. After such a reset the proxy also closes its other idle connections to the service, which it takes for restarted, so the next copies go on new connections.",
		"requests: the client's answers over the whole run, warm-up included. transport: no complete answer from the proxy; 502/503/504/other 5xx: the proxy's status; other: any other status, or a 200 with a wrong body.",
		"POST: the fallback replays GET, HEAD and OPTIONS only (and anything refused at connect), so a POST the service failed after it reached it gets the service's 503 or a 502. Each POST carries an id the backends log on receipt and on answer (O_APPEND, so a SIGKILL loses nothing). A failed POST is explained when the service answered it 503; or received it and was killed before answering (killed in flight); or was killed just as the proxy wrote it to a pooled connection, so that the kernel answered with a reset and the service never read it (killed before reading: a 502 \"connection failed\" within " + killWindow.String() + " of a kill, seen by neither backend; the proxy cannot tell it from a crash while processing, and must not replay a POST then).",
		fmt.Sprintf("proxy: read from its /metrics after the warm-up and at the end, at the same point of the fault cycle and under load; gauges are the median of three readings. Counters are totals since the proxy started. Per-minute readings (%d) went to stderr.", r.samples),
	}
	if r.otherCPU.n > 0 {
		notes = append(notes, fmt.Sprintf("Other processes on the machine used %.2f CPU on average (%.2f at most over a minute); near 0 on a quiet machine. More starves the pinned proxy and backends, and a stall of %v or more turns into timeouts that are the machine's, not Strangler's.", r.otherCPU.med, r.otherCPU.max, soakStallHint))
	}
	if r.late > 0 {
		notes = append(notes, fmt.Sprintf("The load generator could not keep its schedule: %d requests not sent in time.", r.late))
	}
	for m := range numMethods {
		for k := range numCauses {
			if e := r.firstErr[m][k]; e != "" {
				notes = append(notes, fmt.Sprintf("first %s %s error: %s", methodNames[m], causeNames[k], flatten(e)))
			}
		}
	}
	notes = append(notes, groupUnexplained(r.posts.unexplained)...)
	if r.posts.notMatched > 0 {
		notes = append(notes, fmt.Sprintf("%d failed POSTs beyond the first %d were not matched with the event logs", r.posts.notMatched, maxFailedPosts))
	}
	for _, p := range f.problems {
		notes = append(notes, "fault injection problem: "+p)
	}
	return notes
}

// groupUnexplained renders unexplained POST errors grouped by what
// happened, most frequent first, each with an example id.
func groupUnexplained(us []unexplainedPost) []string {
	type group struct {
		what, example string
		n             int
	}
	var gs []*group
	byWhat := map[string]*group{}
	for _, u := range us {
		g, ok := byWhat[u.what]
		if !ok {
			g = &group{what: u.what, example: u.id}
			byWhat[u.what] = g
			gs = append(gs, g)
		}
		g.n++
	}
	slices.SortStableFunc(gs, func(a, b *group) int { return b.n - a.n })
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = fmt.Sprintf("unexplained POST errors: %d × %s (e.g. %s)", g.n, g.what, g.example)
	}
	return out
}

// soakStallHint is the response-header timeout the soak configures: a
// process starved for that long makes the proxy answer 504.
const soakStallHint = 2 * time.Second

// minuteLine is the progress line printed at each sample: the client's
// figures since the previous sample and the proxy's now.
func minuteLine(prev, cur soakSample, f faultCounts) string {
	var d tallyCounts
	for m := range numMethods {
		d.sent[m] = cur.client.sent[m] - prev.client.sent[m]
		for k := range numCauses {
			d.failed[m][k] = cur.client.failed[m][k] - prev.client.failed[m][k]
		}
	}
	p := cur.proxy
	at := cur.at.Round(time.Second)
	other := "?"
	if cur.otherCPU >= 0 {
		other = strconv.FormatFloat(cur.otherCPU, 'f', 2, 64)
	}
	return fmt.Sprintf("[%d:%02d] +%s requests, GET errors +%d, POST errors +%d | proxy: %.0f goroutines, RSS %.1f MiB, %.0f fds, fallbacks %s (%s), ejections %.0f, comparisons %s (%s) | so far: %d kills, %d 503 windows, %d ramps, %d reloads | other processes %s CPU",
		int(at.Minutes()), int(at.Seconds())%60, thousands(float64(d.totalSent())), d.errors(methodGET), d.errors(methodPOST),
		p.goroutines, p.rssBytes/(1<<20), p.fds, thousands(sumMap(p.fallbacks)), labelList(p.fallbacks), p.ejections,
		thousands(sumMap(p.comparisons)), labelList(p.comparisons), f.kills, f.unavailable, f.ramps, f.reloads, other)
}

// sumMap adds a map's values.
func sumMap(m map[string]float64) float64 {
	var v float64
	for _, x := range m {
		v += x
	}
	return v
}

// labelList renders a map's non-zero values by key, sorted: "5xx 3, connect 12".
func labelList(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + thousands(m[k])
	}
	return strings.Join(parts, ", ")
}
