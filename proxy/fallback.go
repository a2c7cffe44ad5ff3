package proxy

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The safety net: when the service was chosen and fails, the request is
// replayed to the monolith if that cannot do harm (fallback), and a service
// that keeps failing is taken out of its route for a while (ejection).

// routeFallback is a route's compiled fallback config.
type routeFallback struct {
	on      map[string]prometheus.Counter // reason → strangler_fallbacks_total child; absent: not replayed
	methods []string
	maxBody int64
	// afterSent: a reason other than connect is replayed, one that may
	// come after the request reached the service (computed once, not by
	// ranging over on for every request).
	afterSent bool
}

// enabled reports whether any failure is replayed.
func (f *routeFallback) enabled() bool { return len(f.on) > 0 }

// replaysSent reports whether a request of this method may be replayed
// after bytes of it reached the service (a reset, a timeout, a 5xx): only
// then is its body worth reading ahead of the call.
func (f *routeFallback) replaysSent(method string) bool {
	return f.afterSent && slices.Contains(f.methods, method)
}

// replays reports whether a failure of this reason is replayed for this
// request (the client's, not ReverseProxy's copy): a connect failure
// always (nothing reached the service) if the body can be sent again; the
// others only for the listed methods and a body buffered whole.
func (f *routeFallback) replays(reason string, r *http.Request) bool {
	if _, ok := f.on[reason]; !ok {
		return false
	}
	if reason != fallbackConnect && !slices.Contains(f.methods, r.Method) {
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	bb, ok := r.Body.(*bufferedBody)
	return ok && (bb.whole || reason == fallbackConnect && bb.untouched())
}

// replays5xx is replays for a 5xx answer, judged on ReverseProxy's copy of
// the request: its GetBody is set exactly when the body was buffered whole.
func (f *routeFallback) replays5xx(out *http.Request) bool {
	if _, ok := f.on[fallback5xx]; !ok || !slices.Contains(f.methods, out.Method) {
		return false
	}
	return out.Body == nil || out.Body == http.NoBody || out.GetBody != nil
}

// errReplay5xx makes ReverseProxy hand a 5xx answer of the service, which
// ModifyResponse chose to replay, to the ErrorHandler.
var errReplay5xx = errors.New("service answered 5xx")

// fallbackReason maps an upstream error kind to a fallback reason.
func fallbackReason(kind string) string {
	switch kind {
	case errConnect:
		return fallbackConnect
	case errTimeout:
		return fallbackTimeout
	case errReset:
		return fallbackReset
	}
	return ""
}

// serviceAnswered runs when the service sent response headers for a
// primary call: a 5xx is a failure (4xx are the service's answers), and,
// when configured and safe, is replayed to the monolith.
func (s *Server) serviceAnswered(rt *route, resp *http.Response) error {
	if resp.StatusCode < 500 {
		rt.eject.success()
		return nil
	}
	rt.eject.failure(time.Now(), s, "status "+strconv.Itoa(resp.StatusCode)) // not its reason phrase: the upstream's text
	// 501 Not Implemented is an answer about the method, not a failure.
	if resp.StatusCode != http.StatusNotImplemented && rt.fallback.replays5xx(resp.Request) {
		return errReplay5xx
	}
	return nil
}

// serviceFailed runs in the service upstream's ErrorHandler, before any
// byte of the answer was written. It counts the failure and replays the
// request to the monolith when it may; it reports whether it answered.
func (s *Server) serviceFailed(rt *route, w http.ResponseWriter, out *http.Request, kind string, err error) bool {
	rec, ok := w.(*recorder)
	if !ok {
		return false
	}
	r := rec.req // the client's request; out is ReverseProxy's rewritten copy
	reason := fallback5xx
	if !errors.Is(err, errReplay5xx) {
		if kind == errCanceled {
			return false
		}
		rt.eject.failure(time.Now(), s, kind)
		reason = fallbackReason(kind)
		if !rt.fallback.replays(reason, r) {
			return false
		}
	}
	if rec.informed {
		// The service's 1xx (103 Early Hints) reached the client: its
		// answer has begun, and the monolith's would be a second one.
		return false
	}
	rt.fallback.on[reason].Inc()
	if bb, ok := r.Body.(*bufferedBody); ok {
		r.Body = bb.again()
	}
	rec.servedBy = rt.monolith
	s.tracing.fellBack(r.Context(), reason)
	if rec.pair != nil {
		// The client gets the monolith's answer; comparing it with the
		// monolith's copy would say nothing about the service, and a copy
		// not sent yet is not sent.
		rec.pair.drop(rec.pair.sh.skipPrimaryFailed)
		rec.tee = nil
	}
	rt.monolith.serve(w, r)
	return true
}

// bufferedBody is a request body read up to a limit, so that it can be sent
// twice (to the shadow, or to the monolith after a failure) while the
// primary still receives it whole, streamed, when it was over the limit.
type bufferedBody struct {
	data  []byte    // read from the client
	whole bool      // data is the entire body
	rest  io.Reader // the client's body past data (or the error reading it stopped at)
	r     io.Reader // data, then rest
	read  int64     // bytes handed to the upstream
	// held: shadow_memory charged for data as it was read for a shadow
	// (bufferBody); the pair takes it over, or it is given back when the
	// request ends.
	held int64
}

// trackBody wraps r's body, unread, so that a connect failure, which
// sent none of it, can pass it to the monolith (untouched); a body
// already wrapped is left as it is.
func trackBody(r *http.Request) {
	if _, ok := r.Body.(*bufferedBody); !ok {
		r.Body = &bufferedBody{rest: r.Body, r: r.Body}
	}
}

// bufferBody reads up to limit bytes of r's body and replaces r.Body with
// a bufferedBody. A body already buffered is reused, and read further when
// limit is the larger (the fallback's after the shadow's) and nothing of
// it has been sent yet. With budget (shadow_memory), what it reads into is
// charged there as it grows (held); where the budget has no room, it
// stops reading and says so (refused), and what it read goes first.
func bufferBody(r *http.Request, limit int64, budget *memBudget) (bb *bufferedBody, refused bool) {
	bb, ok := r.Body.(*bufferedBody)
	if !ok {
		bb = &bufferedBody{rest: r.Body}
		r.Body = bb
	} else if bb.whole || bb.read > 0 || int64(len(bb.data)) > limit {
		return bb, false
	}
	if _, failed := bb.rest.(errReader); failed {
		return bb, false
	}
	refused, err := bb.fill(limit+1, r.ContentLength, budget)
	switch {
	case err != nil:
		bb.rest = errReader{err}
	case refused:
	case int64(len(bb.data)) <= limit:
		bb.whole = true
		bb.rest = http.NoBody
	}
	bb.r = io.MultiReader(bytes.NewReader(bb.data), bb.rest)
	if bb.whole {
		// Marks the body as replayable on ReverseProxy's copy of the
		// request, and lets the transport retry with it.
		r.GetBody = func() (io.ReadCloser, error) { return bb.again(), nil }
	}
	return bb, refused
}

// fill reads the client's body into data until it holds end bytes or the
// body ends. The array grows from 512 bytes by doubling, never past end
// nor past the body's announced length and one byte (to see its end), so
// that a client that announces much and sends little holds little, and
// each growth is charged to budget, when set, before it is made; refused
// tells that the budget had no room for the next. (With bytes.Buffer,
// ReadFrom grows past what it was told whenever less than 512 bytes are
// free.)
func (b *bufferedBody) fill(end, length int64, budget *memBudget) (refused bool, err error) {
	most := end
	if length >= 0 {
		most = min(length+1, end)
	}
	for int64(len(b.data)) < end {
		if len(b.data) == cap(b.data) {
			c := min(max(2*int64(cap(b.data)), 512), most)
			if c <= int64(cap(b.data)) {
				c = end // the body sends more than it announced: the framing's error to find
			}
			if budget != nil {
				if !budget.take(c - int64(cap(b.data))) {
					return true, nil
				}
				b.held += c - int64(cap(b.data))
			}
			grown := make([]byte, len(b.data), c)
			copy(grown, b.data)
			b.data = grown
		}
		n, rerr := b.rest.Read(b.data[len(b.data):cap(b.data)])
		b.data = b.data[:len(b.data)+n]
		if rerr == io.EOF {
			return false, nil
		}
		if rerr != nil {
			return false, rerr
		}
	}
	return false, nil
}

func (b *bufferedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// Close does nothing: the transport closes the body it was given when a
// call fails, and the body may still be replayed. net/http closes the
// client's body itself when the handler returns.
func (b *bufferedBody) Close() error { return nil }

// broken reports whether reading the client's body failed (a stall, a
// malformed chunk) before the limit.
func (b *bufferedBody) broken() bool {
	_, failed := b.rest.(errReader)
	return failed
}

// untouched reports whether no byte reached an upstream yet.
func (b *bufferedBody) untouched() bool { return b.read == 0 }

// again returns the body to send once more: from the start when it was
// buffered whole, or, unread, as it is.
func (b *bufferedBody) again() io.ReadCloser {
	if b.whole {
		return &bufferedBody{data: b.data, whole: true, r: bytes.NewReader(b.data)}
	}
	return b
}

// bytesIfWithin returns the whole body when it is at most limit bytes.
func (b *bufferedBody) bytesIfWithin(limit int64) ([]byte, bool) {
	if !b.whole || int64(len(b.data)) > limit {
		return nil, false
	}
	return b.data, true
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// ejector is one route's outlier detection. Its state lives in the
// routeState, so it survives config reloads. The hot path only loads two
// atomics; the lock is taken on failures and state changes.
type ejector struct {
	cfg atomic.Pointer[ejectConfig] // swapped by a reload; the state stays

	consecutive atomic.Int32
	until       atomic.Int64 // monoNanos; 0: serving
	mu          sync.Mutex
	streak      int  // ejections since the last success, for doubling
	probation   bool // back from an ejection: the next failure ejects again
	// recovering is streak != 0 || probation, readable without mu, so that
	// a success, the common case, takes no lock when there is nothing to
	// reset. It is only written under mu.
	recovering atomic.Bool
	// onProbation is probation, readable without mu (written under it);
	// probeAt is when the one request let through to the service on
	// probation started (monoNanos; 0: none).
	onProbation atomic.Bool
	probeAt     atomic.Int64

	ejected   prometheus.Gauge
	ejections prometheus.Counter
	route     string
	log       *slog.Logger

	// percent is the route's share as last published (percentMu); -1
	// before the first, when a targeting rule decides it, or while the
	// flag cannot be used. atZero mirrors percent == 0 for the request
	// path: at 0 % outcomes are ignored (calls still in flight at a
	// rollback must not eject a service nothing is sent to).
	percent float64
	atZero  atomic.Bool
	// dark: no request of the route's own can reach the service (its
	// share is 0, or its flag cannot be used), so probation cannot end
	// and must not keep shadow copies from it.
	dark atomic.Bool
}

type ejectConfig struct {
	threshold int32 // 0: never eject
	base, max time.Duration
}

// compileFallback builds a route's fallback and updates its ejector.
func (s *Server) compileFallback(rt *route, rc Route, st *routeState) {
	rt.fallback = routeFallback{on: map[string]prometheus.Counter{}, methods: rc.Fallback.Methods, maxBody: int64(rc.Fallback.MaxBody)}
	for _, reason := range rc.Fallback.On {
		rt.fallback.on[reason] = s.metrics.fallbacks.WithLabelValues(rc.Name, reason)
		rt.fallback.afterSent = rt.fallback.afterSent || reason != fallbackConnect
	}
	rt.eject = st.eject
	rt.ejectCfg = &ejectConfig{
		threshold: int32(*rc.Eject.ConsecutiveFailures),
		base:      time.Duration(rc.Eject.BaseTime),
		max:       time.Duration(rc.Eject.MaxTime),
	}
	// A running route's ejector takes the new settings when the table is
	// installed (a reload that fails changes nothing); a new one needs
	// them before any request can reach it.
	rt.eject.cfg.CompareAndSwap(nil, rt.ejectCfg)
}

// ejectedAt reports whether the service is ejected at now. The first call
// after an ejection has passed puts the service on probation.
func (e *ejector) ejectedAt(now time.Time) bool {
	u := e.until.Load()
	if u == 0 {
		return false
	}
	if monoNanos(now) < u {
		return true
	}
	e.mu.Lock()
	if e.until.Load() == u {
		e.until.Store(0)
		e.setProbation(true)
		e.recovering.Store(true)
		e.ejected.Set(0)
		if e.log != nil {
			e.log.Info("service ejection over: on probation, one request at a time tries it; a success returns its share, a failure ejects it again", "route", e.route)
		}
	}
	e.mu.Unlock()
	return false
}

// setProbation puts the service on probation or takes it off, with no
// probe in flight; e.mu is held.
func (e *ejector) setProbation(on bool) {
	e.probation = on
	e.onProbation.Store(on)
	e.probeAt.Store(0)
}

// monoNanos is t on the monotonic clock, as nanoseconds since clockStart
// (plus one, so that it is never the 0 that means none): a wall clock
// stepped back must not extend an ejection by the step.
func monoNanos(t time.Time) int64 { return int64(t.Sub(clockStart)) + 1 }

// probeTimeout is how long a probe on probation may run before another
// request may try the service: one whose outcome never came (its client
// went away) must not keep the service out for good.
const probeTimeout = 5 * time.Second

// admitAt reports whether a request the split sends to the service may go
// there at now. Not while it is ejected; on probation, after an ejection,
// only one request at a time: the rest of its share stays on the monolith
// until that probe answers. Otherwise every request of the share tried it
// at once, and with a service that hangs, each waited for the response
// header timeout (30 s by default) before the first failure ejected it
// again.
func (e *ejector) admitAt(now time.Time) bool {
	if e.ejectedAt(now) {
		return false
	}
	if !e.onProbation.Load() {
		return true
	}
	start := e.probeAt.Load()
	// A clock stepped back (now before start) counts as timed out, not as
	// a probe that has all the time of the step.
	if age := monoNanos(now) - start; start != 0 && age >= 0 && age < int64(probeTimeout) {
		return false
	}
	return e.probeAt.CompareAndSwap(start, monoNanos(now))
}

// resting reports whether the service gets no shadow copies: while
// ejected, and on probation (a copy proves nothing: its failures do not
// count).
func (e *ejector) resting(now time.Time) bool {
	return e.ejectedAt(now) || e.onProbation.Load() && !e.dark.Load()
}

// ejectedUntil is the end of the current ejection, or zero.
func (e *ejector) ejectedUntil(now time.Time) time.Time {
	if u := e.until.Load(); u != 0 && monoNanos(now) < u {
		// The wall clock now plus the time left, not clockStart's
		// wall reading plus the monotonic time since (off by every
		// step of the wall clock since the start).
		return now.Add(time.Duration(u - monoNanos(now))).UTC()
	}
	return time.Time{}
}

// percentIs tells the ejector the route's share, on every flag change or
// reload. At 0 % it forgets the service's failures, and a ramp up from 0 %
// starts afresh: after a rollback, calls that were in flight (a hung
// service's, timing out) ejected it again for minutes, and the ramp back
// up, once it was fixed, silently sent it nothing.
func (e *ejector) percentIs(v float64, dark bool) {
	e.atZero.Store(v == 0)
	e.dark.Store(dark)
	if v == 0 || e.percent == 0 && v > 0 {
		e.mu.Lock()
		if e.until.Load() != 0 || e.recovering.Load() {
			e.until.Store(0)
			e.streak = 0
			e.setProbation(false)
			e.recovering.Store(false)
			e.ejected.Set(0)
			if e.log != nil {
				e.log.Info("service ejection forgotten: the route is at 0 %, or ramped up from it", "route", e.route)
			}
		}
		e.consecutive.Store(0)
		e.mu.Unlock()
	}
	e.percent = v
}

func (e *ejector) success() {
	if e.consecutive.Load() != 0 {
		e.consecutive.Store(0)
	}
	if !e.recovering.Load() {
		return
	}
	e.mu.Lock()
	// During an ejection (until it is noticed over, as in failure) an
	// answer is from a call sent before it, and says nothing of the
	// service since: the probe after it decides. Else a slow call that
	// succeeded put a service failing fast back to base_time each time.
	if e.until.Load() == 0 {
		e.streak = 0
		e.setProbation(false)
		e.recovering.Store(false)
	}
	e.mu.Unlock()
}

// ejectionTime is base doubled for each ejection in a row before this
// one (streak), up to max. It compares before shifting: a shifted duration
// can wrap to a small positive one (2^34+1 ns shifted by 30 is 2^30 ns).
func ejectionTime(base, max time.Duration, streak int) time.Duration {
	if sh := min(streak, 62); base <= max>>sh {
		return base << sh
	}
	return max
}

// failure counts a failed call; last says how it failed (a status line,
// or an error kind: connect, timeout, reset), for the log.
func (e *ejector) failure(now time.Time, s *Server, last string) {
	cfg := e.cfg.Load()
	if cfg.threshold <= 0 || e.atZero.Load() {
		return
	}
	n := e.consecutive.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.atZero.Load() { // a rollback to 0 % ran meanwhile
		return
	}
	if e.until.Load() != 0 || (!e.probation && n < cfg.threshold) {
		return
	}
	d := ejectionTime(cfg.base, cfg.max, e.streak)
	e.streak++
	e.setProbation(false)
	e.recovering.Store(true)
	e.consecutive.Store(0)
	e.until.Store(monoNanos(now.Add(d)))
	e.ejected.Set(1)
	e.ejections.Inc()
	// The gauge goes back to 0 when the ejection ends, not with the next
	// request the split sends the service: a route ramped to 0 % after the
	// incident would otherwise alert for ever.
	time.AfterFunc(d, func() { e.ejectedAt(time.Now()) })
	s.log.Warn("service ejected: its share goes to the monolith", "route", e.route, "for", d.String(), "consecutive_failures", n, "last_failure", last)
}
