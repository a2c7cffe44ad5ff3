package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/flags"
)

// Reasons a sampled request is not compared, the reason label of
// strangler_shadow_skipped_total.
const (
	skipMethod   = "method"    // the method is not in shadow.methods
	skipTooLarge = "too_large" // a body is over shadow.max_body, or both answers past max_decoded
	skipOverload = "overload"  // the comparison pool's queue was full
	skipEjected  = "ejected"   // the service is ejected
	skipShutdown = "shutdown"  // queued when the proxy stopped: never sent
	// A conditional request (If-None-Match…) one side answered 304 (or
	// 412) and the other 2xx: the client's validator came from one side,
	// and the two compute theirs differently, so the answers say nothing
	// about each other.
	skipConditional = "conditional"
	// The client's answer did not come whole from the side the split
	// chose: the call failed, the answer was cut, or the request fell
	// back to the monolith. There is nothing to compare the copy with.
	skipPrimaryFailed = "primary_failed"
)

// routeShadow is a route's compiled shadow config and its pre-bound series.
type routeShadow struct {
	percent  float64 // from the config; the flag overrides it when present
	flag     *flags.Flag
	flagErrs prometheus.Counter
	methods  []string
	maxBody  int64
	timeout  time.Duration
	rules    *compare.Rules
	// secrets are the headers whose values a sample never shows, also
	// where an answer echoes them (DefaultSecretHeaders and
	// secret_headers).
	secrets []string
	noise   *compare.Noise // nil: noise cancellation off
	// monolith and service send the copies: their own transports (a slow
	// shadow side cannot take the primary's connections) and the
	// X-Strangler-Shadow mark.
	monolith, service *upstream
	state             *routeState

	skipMethod, skipTooLarge, skipOverload, skipEjected, skipPrimaryFailed, skipConditional, skipShutdown prometheus.Counter

	results     [compare.Error + 1]prometheus.Counter // by compare.Outcome
	kinds       [compare.KindBody + 1]prometheus.Counter
	noiseFields prometheus.Gauge
}

// routeState is what a route learns while it serves, kept across reloads
// of the route table.
type routeState struct {
	noise   *compare.Noise
	samples diffRing
	eject   *ejector
}

// eligible reports whether the method may be shadowed.
func (sh *routeShadow) eligible(method string) bool {
	for _, m := range sh.methods {
		if m == method {
			return true
		}
	}
	return false
}

// sampled draws whether this request is compared. The share is the shadow
// flag when the flag file has it (targeting rules included), otherwise the
// configured percent. A broken flag turns shadowing off: comparing is
// optional, serving is not.
func (sh *routeShadow) sampled(ctx context.Context, key string, attrs flags.Attrs) bool {
	p, err := sh.flag.Percent(ctx, key, attrs)
	switch {
	case errors.Is(err, flags.ErrNotFound):
		p = sh.percent
	case err != nil:
		sh.flagErrs.Inc()
		return false
	}
	if p <= 0 {
		return false
	}
	return p >= 100 || rand.Float64()*100 < p
}

// shadowPair follows one compared request: the primary's answer, teed by
// the recorder while it streams to the client, and the shadow's, fetched
// by a pool worker. Whichever half finishes second hands the pair to the
// comparison.
type shadowPair struct {
	rt             *route
	sh             *routeShadow
	req            *http.Request   // the copy: same method, URL and headers
	client         context.Context // the client's request's, for its values (canceled once the client is answered)
	body           []byte          // the request body, read once, sent to each call
	bodyHeld       int64           // what body took from shadow_memory
	primaryService bool
	queued         time.Time

	primary    capture
	primaryDur time.Duration
	shadow     capture
	shadowDur  time.Duration
	extra      *capture // the monolith's second answer, for noise

	called bool // the shadow call ran (written by the worker before halves.Add)
	// pending: the copy waits for the primary's answer before it is
	// queued (a write the fallback could replay to the monolith); only
	// the request goroutine reads and writes it.
	pending bool
	pool    *shadowPool
	dropped atomic.Bool  // given up: counted as skipped once, by drop; nothing compared
	halves  atomic.Int32 // 2 when both answers are in
}

// drop gives the comparison up and counts it under reason, unless it was
// given up already: the request goroutine (a failed primary, a fallback)
// and a worker (a copy too late to send) may both try, and a sampled
// request is counted once.
func (p *shadowPair) drop(reason prometheus.Counter) bool {
	if p.dropped.CompareAndSwap(false, true) {
		reason.Inc()
		return true
	}
	return false
}

func (p *shadowPair) primaryBackend() string { return backendName(p.primaryService) }
func (p *shadowPair) shadowBackend() string  { return backendName(!p.primaryService) }

func backendName(service bool) string {
	if service {
		return backendService
	}
	return backendMonolith
}

// capture holds one answer for comparison, its body bounded by max_body.
// It is the http.ResponseWriter of shadow calls, and the recorder's tee
// for the primary.
type capture struct {
	status    int
	header    http.Header
	body      []byte
	pool      *bufferFreeList // body is one of this list's buffers, charged in full to the budget
	max       int64
	truncated bool
	failed    string // kind of upstream error; "" when an answer came
	// budget is the server's shadow_memory, shared by every capture in
	// flight; held is what this capture took from it.
	budget     *memBudget
	held       int64 // for body's array
	headHeld   int64 // for header, once the answer's head came
	overBudget bool
	// trailer takes what is written to Header() once the answer has
	// begun: the trailers ReverseProxy copies after the body. The
	// primary's headers are a snapshot taken at WriteHeader, so trailers
	// are left out of both sides alike.
	trailer http.Header
}

func (c *capture) Header() http.Header {
	if c.status != 0 {
		if c.trailer == nil {
			c.trailer = http.Header{}
		}
		return c.trailer
	}
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
		if c.header == nil {
			c.header = http.Header{} // sealed: Header() now returns the trailer map
		}
		c.chargeHeader()
	}
}

// chargeHeader charges the answer's header to the budget: a copy answered
// first waits with it for its primary, and a head may be 512 KiB. Without
// room, the answer is not compared (overload) and its header is let go.
func (c *capture) chargeHeader() {
	if c.budget == nil || c.headHeld > 0 {
		return
	}
	n := int64(headerBytes(c.header))
	if !c.budget.take(n) {
		c.truncated, c.overBudget = true, true
		c.header = http.Header{}
		c.drop()
		return
	}
	c.headHeld = n
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	c.append(b)
	if c.truncated {
		// A copy's answer past max_body is not compared: reading the
		// rest (a 1 GiB export) would cost the other side a whole
		// download for nothing, and run into the copy's timeout.
		return 0, errCaptureFull
	}
	return len(b), nil
}

// errCaptureFull stops a shadow copy's answer once it cannot be compared.
var errCaptureFull = errors.New("shadow answer past max_body: not compared")

// append keeps at most max bytes; the rest is noted, not stored, so a
// large answer costs the comparison nothing but a skip.
func (c *capture) append(b []byte) {
	if c.truncated {
		return
	}
	if c.max-int64(len(c.body)) < int64(len(b)) || c.body == nil && c.announcedPast() {
		// Past max_body (announced or come): the answer is not compared,
		// and what was kept of it is let go.
		c.truncated = true
		c.drop()
		return
	}
	if len(b) == 0 {
		return
	}
	if c.body == nil {
		c.takeBuffer()
	}
	if need := len(c.body) + len(b); need > cap(c.body) && !c.grow(need) {
		c.truncated, c.overBudget = true, true
		c.drop()
		return
	}
	c.body = append(c.body, b...)
}

// drop lets go of the body of an answer that will not be compared: its
// array and what it held of shadow_memory go back now, not when its
// transfer ends, so that a slow download past max_body does not hold the
// budget (and turn every other comparison into overload) for its whole
// length. What the comparison reads of it is its flags.
func (c *capture) drop() {
	if c.budget != nil && c.held > 0 {
		c.budget.give(c.held)
		c.held = 0
	}
	if c.pool != nil {
		c.pool.put(c.body)
		c.pool = nil
	}
	c.body = nil
}

// grow moves the body to an array of at least need bytes (the answer's
// Content-Length when it says more, else double the old one, at most max)
// and charges the budget for its whole capacity in place of the old
// array's. Charging only the bytes appended let append's own doubling hold
// up to twice what shadow_memory counted. When the budget has no room for
// that, exactly need is tried. A pooled buffer outgrown goes back to its
// list.
func (c *capture) grow(need int) bool {
	size := max(2*cap(c.body), need)
	if n, ok := c.announced(); ok && n >= int64(need) {
		size = int(n)
	}
	size = min(size, int(c.max)) // max >= need: append truncated to it
	if c.budget != nil {
		if !c.budget.take(int64(size)) {
			if size == need || !c.budget.take(int64(need)) {
				return false
			}
			size = need
		}
		c.budget.give(c.held)
		c.held = int64(size)
	}
	grown := make([]byte, len(c.body), size)
	copy(grown, c.body)
	if c.pool != nil {
		c.pool.put(c.body)
		c.pool = nil
	}
	c.body = grown
	return true
}

// captureBufs lend the buffers answers of up to 64 KiB are held in for
// comparison, smallest size first. Two or three answers a request would
// otherwise be allocated, grown and collected each time: at 64 KiB and a
// fixed rate that was about a quarter of the proxy's CPU; at 1 KiB, the
// answers were a fifth of the bytes the proxy allocated, and so of how
// often the collector ran.
var captureBufs = [...]bufferFreeList{
	{size: 4 << 10},
	{size: 16 << 10},
	{size: 64 << 10},
}

// takeBuffer starts the body in the smallest pooled buffer the answer's
// Content-Length says it fits; the whole buffer is charged to the budget,
// so that shadow_memory still bounds the memory held.
func (c *capture) takeBuffer() {
	n, ok := c.announced()
	if !ok || n > c.max {
		return
	}
	for i := range captureBufs {
		l := &captureBufs[i]
		if n > int64(l.size) {
			continue
		}
		if c.budget != nil {
			if !c.budget.take(int64(l.size)) {
				return // charged per write instead, and refused there
			}
			c.held += int64(l.size)
		}
		c.body, c.pool = l.get()[:0], l
		return
	}
}

// announcedPast reports whether the answer's Content-Length is past
// max_body.
func (c *capture) announcedPast() bool {
	n, ok := c.announced()
	return ok && n > c.max
}

// announced is the answer's Content-Length, when it has one.
func (c *capture) announced() (int64, bool) {
	if cl := c.header["Content-Length"]; len(cl) == 1 {
		return parseLength(cl[0])
	}
	return 0, false
}

// release gives the capture's bytes back to the budget.
func (c *capture) release() {
	if c == nil {
		return
	}
	c.drop()
	if c.budget != nil && c.headHeld > 0 {
		c.budget.give(c.headHeld)
		c.headHeld = 0
	}
}

// memBudget bounds the bytes all comparisons in flight hold (shadow_memory):
// the queue bounds their number, but with large bodies a full queue could
// still hold gigabytes.
type memBudget struct {
	used  atomic.Int64
	limit int64
}

func (m *memBudget) take(n int64) bool {
	if m.used.Add(n) > m.limit {
		m.used.Add(-n)
		return false
	}
	return true
}

func (m *memBudget) give(n int64) { m.used.Add(-n) }

// release returns the pair's memory once nothing will read it again.
func (p *shadowPair) release() {
	if p.bodyHeld > 0 {
		p.primary.budget.give(p.bodyHeld)
		p.bodyHeld = 0
	}
	p.primary.release()
	p.shadow.release()
	p.extra.release()
}

func (c *capture) response() *compare.Response {
	return &compare.Response{Status: c.status, Header: c.header, Body: c.body}
}

// startShadow decides whether this request is compared and, if so, reads
// its body once (up to max_body) so that both sides get it, and queues the
// shadow call. It returns nil when the request is not compared.
func (s *Server) startShadow(rt *route, r *http.Request, key string, attrs flags.Attrs, primaryService bool, now time.Time) *shadowPair {
	sh := rt.shadow
	if r.Header["Upgrade"] != nil && isWebSocket(r.Header) {
		// A tunnel, not a request/response pair to compare. Other
		// upgrades (h2c, which Java's HttpClient asks for on every new
		// plain-HTTP connection) are dropped and the request is proxied
		// and compared as it is.
		return nil
	}
	if !sh.sampled(r.Context(), key, attrs) {
		return nil
	}
	if !sh.eligible(r.Method) {
		sh.skipMethod.Inc()
		return nil
	}
	if !primaryService && rt.eject.resting(now) {
		// The service is out, or on probation: copies would only add
		// load. Before the body is read: nothing would use it.
		sh.skipEjected.Inc()
		return nil
	}
	var body []byte
	var held int64 // of shadow_memory, for body
	var bb *bufferedBody
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > sh.maxBody {
			sh.skipTooLarge.Inc()
			return nil
		}
		// Charged as it is read (the array it is read into), so that
		// shadow_memory bounds request bodies too: read first, a body
		// shadow_memory then refused stayed in memory, uncounted, for the
		// whole primary call. What was read stays charged until the
		// comparison is done, or, when it cannot be compared, until the
		// request's handler returns (ServeHTTP gives bb.held back): the
		// request keeps the body until then.
		var refused, ok bool
		bb, refused = bufferBody(r, sh.maxBody, &s.shadowMem)
		switch body, ok = bb.bytesIfWithin(sh.maxBody); {
		case ok:
			held, bb.held = bb.held, 0
		case refused:
			sh.skipOverload.Inc()
			return nil
		case bb.broken():
			// The client's body stalled or broke: the primary call
			// fails too, and the body was not too large.
			sh.skipPrimaryFailed.Inc()
			return nil
		default:
			sh.skipTooLarge.Inc()
			return nil
		}
	}
	p := &shadowPair{rt: rt, sh: sh, primaryService: primaryService, queued: time.Now(), client: r.Context()}
	p.primary.max, p.shadow.max = sh.maxBody, sh.maxBody
	p.primary.budget, p.shadow.budget = &s.shadowMem, &s.shadowMem
	// The copy outlives the client's request (the shadow may answer after
	// the client has gone) but keeps its values, such as the trace. It
	// shares the client's header and URL, which nothing modifies once the
	// request is routed: the direct path only reads them, and
	// ReverseProxy changes a clone of its own.
	p.req = r.WithContext(context.WithoutCancel(r.Context()))
	p.body = body
	p.req.Body = http.NoBody // each call reads its own reader over p.body
	// The body is held until the comparison is done: shadow_memory bounds
	// it with the answers, by the capacity of its array.
	p.bodyHeld = held
	p.pool = s.pool
	if primaryService && rt.fallback.enabled() && !safeMethod(r.Method) {
		// Were the service to fail, the fallback could replay this write
		// to the monolith: a copy sent there first would make it two. The
		// copy goes once the service has answered.
		p.pending = true
		return p
	}
	if refused := s.pool.submit(p); refused != nil {
		refused.Inc()
		if bb != nil {
			// The body stays in memory until the request's handler
			// returns: its charge goes back to the request (ServeHTTP
			// gives it back then), not to the budget now.
			bb.held, p.bodyHeld = p.bodyHeld, 0
		}
		p.release()
		return nil
	}
	return p
}

// safeMethod reports whether a method is safe (RFC 9110 §9.2.1): sending
// one twice does no harm.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// sendPending queues a copy that waited for the primary's answer, once
// that answer has begun and came from the side the split chose.
func (p *shadowPair) sendPending() {
	if p.dropped.Load() || p.primary.failed != "" {
		return // finish gives it up
	}
	p.pending = false
	// Aged from now: the copy waited for the primary's answer, not in the
	// queue.
	p.queued = time.Now()
	if refused := p.pool.submit(p); refused != nil {
		p.drop(refused)
		p.halves.Add(1) // the copy's half: nothing will come
	}
}

// abandonPending gives up a copy that was never queued: the primary
// failed, or fell back to the monolith.
func (p *shadowPair) abandonPending() {
	if !p.pending {
		return
	}
	p.pending = false
	p.drop(p.sh.skipPrimaryFailed)
	p.halves.Add(1)
}

func bodyOf(b []byte) io.ReadCloser {
	if len(b) == 0 {
		return http.NoBody
	}
	return io.NopCloser(bytes.NewReader(b))
}

// primaryDone is called when the client's response is complete.
func (s *Server) primaryDone(p *shadowPair, d time.Duration) {
	p.primaryDur = d
	if p.halves.Add(1) != 2 {
		return // the worker compares when the copy's answer is in
	}
	if p.dropped.Load() {
		p.release() // counted when dropped: nothing to hand to a worker
		return
	}
	if refused := s.pool.submit(p); refused != nil {
		p.drop(refused)
		p.release()
	}
}

// shadowPool runs shadow calls and comparisons off the request path:
// a fixed number of workers and a bounded queue. A request that finds the
// queue full is not compared (and counted); it is never made to wait.
type shadowPool struct {
	s    *Server
	jobs chan *shadowPair
	done chan struct{}
	wg   sync.WaitGroup
	// stopping: stop has begun; what is submitted from then on is not
	// sent (reason shutdown).
	stopping atomic.Bool
	// busy counts the workers in a job, and notSent the copies settled
	// unsent, for stop's account of what it abandoned.
	busy    atomic.Int32
	notSent atomic.Int32
	// decoding bounds the comparisons that decode compressed answers at
	// once. Their scratch buffers are not captures: a comparison may
	// hold up to four of max_decoded (two sides, two buffers for stacked
	// codings), outside shadow_memory. At most shadow_memory's worth of
	// them decode at once, so the whole stays within twice shadow_memory
	// whatever the workers and the answers (a gzip bomb on every answer).
	decoding chan struct{}
}

// decodeCost is what one comparison may hold while decoding.
const decodeCost = 4 * compare.DefaultMaxDecoded

func newShadowPool(s *Server, workers, queue int, memory int64) *shadowPool {
	sp := &shadowPool{s: s, jobs: make(chan *shadowPair, queue), done: make(chan struct{}),
		decoding: make(chan struct{}, max(1, memory/decodeCost))}
	sp.wg.Add(workers)
	for range workers {
		go sp.work()
	}
	return sp
}

// submit queues p, or returns the reason it was not: the queue is full
// (overload), or the pool is stopping (shutdown).
func (sp *shadowPool) submit(p *shadowPair) (refused prometheus.Counter) {
	if sp.stopping.Load() {
		return p.sh.skipShutdown
	}
	select {
	case sp.jobs <- p:
		if sp.stopping.Load() {
			// stop may have settled the queue before this job came (it
			// read stopping before stop set it): settle what is queued,
			// this job or another, each once. Otherwise stop's pass,
			// which follows its setting of stopping, finds the job.
			sp.settleQueued()
		}
		return nil
	default:
		return p.sh.skipOverload
	}
}

// stop ends the workers after their current job, waiting for them until
// ctx ends, then settles the queued jobs without calling anyone: a copy
// not sent is counted as skipped (reason shutdown; overload would page
// for a full queue) and its memory released, a copy already sent is
// compared. So every sampled request is still counted once, and the log
// says how many were not compared. Copies are not sent during the exit:
// their comparisons would end in a registry nobody scrapes again, and
// the exit would wait for them.
//
// The jobs channel is never closed: request goroutines may still submit
// (a handler that outlived shutdown_timeout); see submit.
func (sp *shadowPool) stop(ctx context.Context) {
	sp.stopping.Store(true)
	close(sp.done)
	idle := make(chan struct{})
	go func() {
		sp.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	abandoned := sp.busy.Load()
	sp.settleQueued()
	if notSent := sp.notSent.Load(); notSent > 0 || abandoned > 0 {
		// Abandoned copies are counted nowhere: the process exits.
		sp.s.log.Warn("shutdown: sampled requests not compared", "queued_not_sent", notSent,
			"in_flight_abandoned", abandoned)
	}
}

// settleQueued settles the queued jobs (see settle).
func (sp *shadowPool) settleQueued() {
	for {
		select {
		case p := <-sp.jobs:
			sp.settle(p)
		default:
			return
		}
	}
}

// settle ends a job taken from the queue once the pool is stopping: a copy
// not yet sent is dropped (reason shutdown, counted in notSent), one
// already sent is compared.
func (sp *shadowPool) settle(p *shadowPair) {
	if !p.called && p.drop(p.sh.skipShutdown) {
		sp.notSent.Add(1)
	}
	sp.run(p) // dropped: no call, only its half of the pair
}

func (sp *shadowPool) work() {
	defer sp.wg.Done()
	for {
		select {
		case <-sp.done:
			return
		case p := <-sp.jobs:
			if sp.stopping.Load() {
				// select picks at random among ready cases: a job taken
				// as the pool stops is settled, not sent.
				sp.settle(p)
				continue
			}
			sp.busy.Add(1)
			sp.run(p)
			sp.busy.Add(-1)
		}
	}
}

func (sp *shadowPool) run(p *shadowPair) {
	defer func() {
		// Nothing on the shadow side may take the process down.
		if v := recover(); v != nil {
			sp.s.log.Error("shadow comparison panicked", "route", p.rt.name, "panic", v)
			if !p.called {
				// The call panicked: its half of the pair is still owed,
				// or the pair would never be counted and would keep its
				// memory. A failed call is compared as an error.
				p.called = true
				p.shadow.failed = errReset
				if p.halves.Add(1) == 2 {
					sp.compareSafely(p)
				}
			}
		}
	}()
	if p.called {
		sp.s.compare(p)
		return
	}
	switch {
	case p.dropped.Load():
		// The primary failed or fell back to the monolith while the copy
		// waited: a copy now would be a second write for nothing.
	case time.Since(p.queued) > p.sh.timeout:
		// Too late to be a copy of the same moment: the comparison would
		// say more about the queue than about the service.
		p.drop(p.sh.skipOverload)
	default:
		sp.s.callShadow(p)
	}
	p.called = true
	if p.halves.Add(1) == 2 {
		sp.s.compare(p)
	}
}

// compareSafely is compare with a panic logged, not raised: it runs from
// run's recovery, where a second panic would end the worker.
func (sp *shadowPool) compareSafely(p *shadowPair) {
	defer func() {
		if v := recover(); v != nil {
			sp.s.log.Error("shadow comparison panicked", "route", p.rt.name, "panic", v)
		}
	}()
	sp.s.compare(p)
}

// callShadow sends the copy to the side the client did not get, and for
// noise cancellation a second copy to the monolith.
func (s *Server) callShadow(p *shadowPair) {
	sh := p.sh
	up := sh.monolith
	if !p.primaryService {
		up = sh.service
	}
	start := time.Now()
	call(up, p.req, p.body, &p.shadow, sh.timeout)
	p.shadowDur = time.Since(start)
	// The client's own context, for the exemplar: asking the copy's
	// (context.WithoutCancel's) for a value allocates every time.
	observe(up.metrics.primary, p.client, p.shadowDur) // bound to role="shadow"
	// The second copy to the monolith only for a safe method: a write
	// would reach the monolith once more than it does without noise.
	if sh.noise != nil && p.shadow.failed == "" && !p.dropped.Load() && safeMethod(p.req.Method) {
		p.extra = &capture{max: sh.maxBody, budget: &s.shadowMem}
		call(sh.monolith, p.req, p.body, p.extra, sh.timeout)
	}
}

// call runs one shadow request into c, forwarded exactly as the primary
// is (same header rules), within timeout.
func call(up *upstream, req *http.Request, body []byte, c *capture, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	defer func() {
		// The answer broke mid-body: forward and ReverseProxy abort with
		// http.ErrAbortHandler.
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			c.failed = errReset
			if !time.Now().Before(deadline) {
				c.failed = errTimeout
			}
		}
	}()
	if len(body) == 0 && up.direct != nil && directEligible(req) {
		// The connection's deadline bounds the call: no context, timer
		// and AfterFunc for every copy.
		up.forward(c, req, deadline)
		return
	}
	ctx, cancel := context.WithDeadline(req.Context(), deadline)
	defer cancel()
	r := req.WithContext(ctx)
	r.Body = bodyOf(body)
	up.serve(c, r)
	if c.failed == "" && ctx.Err() != nil {
		c.failed = errTimeout
	}
}

// heavyCompare and heavyNoisyCompare are the sizes of the answers, heads
// and bodies together, from which a comparison may run past Go's 10 ms
// time slice, without and with noise cancellation. The slowest inputs
// measured are deeply nested JSON (168 KB in 8 ms without noise), and
// with noise, where every dropped difference's JSON Pointer is built and
// matched against the noise learned, nested documents whose every value
// is noise: their cost grows as depth times leaves, so with the size
// squared (30 KB nested 500 deep: 78 ms; 4 KiB stays under 2 ms). Such a
// comparison, and any that decodes (a compressed answer may decode to
// max_decoded), first wakes Go's monitor thread so that it stays
// preemptible (wakeMonitor); one of small answers, most of them, does not
// pay for it.
const (
	heavyCompare      = 160 << 10
	heavyNoisyCompare = 4 << 10
)

// headerBytes is the size of a header's names and values.
func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return n
}

// beforeHeavyCompare is wakeMonitor; a test counts its calls.
var beforeHeavyCompare = wakeMonitor

// compare compares the two answers and records the result.
func (s *Server) compare(p *shadowPair) {
	sh := p.sh
	defer p.release()
	if p.dropped.Load() {
		return
	}
	// An answer cut at max_body (or where shadow_memory was full) is not
	// compared, whatever came after: the copy stops reading there (see
	// capture.Write), which its call reports as a failure.
	if p.primary.overBudget || p.shadow.overBudget {
		sh.skipOverload.Inc() // shadow_memory was full
		return
	}
	if p.shadow.truncated {
		sh.skipTooLarge.Inc()
		return
	}
	if p.shadow.failed != "" {
		// Told whatever the primary's size: a service down, or hanging,
		// on a route of large answers showed only as too_large.
		sh.results[compare.Error].Inc()
		return
	}
	if p.primary.truncated {
		sh.skipTooLarge.Inc()
		return
	}
	if conditionalSplit(p.req.Header, p.primary.status, p.shadow.status) {
		sh.skipConditional.Inc()
		return
	}
	primary, shadow := p.primary.response(), p.shadow.response()
	var extra *compare.Response
	if p.extra != nil {
		extra = p.extra.response()
	}
	size, encoded := 0, false
	for _, r := range [...]*compare.Response{primary, shadow, extra} {
		if r != nil {
			size += len(r.Body) + headerBytes(r.Header)
			encoded = encoded || r.Encoded()
		}
	}
	if encoded {
		s.pool.decoding <- struct{}{}
		defer func() { <-s.pool.decoding }()
	}
	heavy := heavyCompare
	if sh.noise != nil {
		heavy = heavyNoisyCompare
	}
	if encoded || size >= heavy {
		beforeHeavyCompare()
	}
	var res compare.Result
	if sh.noise != nil {
		// An extra answer that failed, or was cut (too large, or no room
		// in shadow_memory), teaches nothing; the pair is still compared,
		// with the noise learned so far.
		var a, b *compare.Response
		if e := p.extra; e != nil && e.failed == "" && !e.truncated {
			a, b = shadow, extra
			if !p.primaryService {
				a = primary
			}
		}
		res = sh.noise.Compare(primary, shadow, a, b, sh.rules)
		sh.noiseFields.Set(float64(sh.noise.Len()))
	} else {
		res = compare.Compare(primary, shadow, sh.rules)
	}
	if res.TooLarge {
		sh.skipTooLarge.Inc() // both bodies decode past max_decoded
		return
	}
	if res.Outcome == compare.Mismatch {
		var seen [compare.KindBody + 1]bool
		for _, d := range res.Differences {
			if !seen[d.Kind] {
				seen[d.Kind] = true
				sh.kinds[d.Kind].Inc()
			}
		}
		sh.state.samples.add(newSample(p, res))
	}
	// Counted last, so that whoever sees the count sees the sample too.
	sh.results[res.Outcome].Inc()
}

// conditionalSplit reports a conditional request that one side answered
// "not modified" (304, or 412 for If-Match) and the other with a 2xx: a
// browser's or a CDN's revalidation carries the validator of the side
// that served it first, and the other side's ETag and Last-Modified
// differ, so it answers 200 nearly every time, with the same content.
// Counted as a mismatch, every revalidation would be one.
func conditionalSplit(h http.Header, a, b int) bool {
	if h["If-None-Match"] == nil && h["If-Modified-Since"] == nil && h["If-Match"] == nil &&
		h["If-Unmodified-Since"] == nil && h["If-Range"] == nil {
		return false
	}
	notModified := func(code int) bool { return code == http.StatusNotModified || code == http.StatusPreconditionFailed }
	success := func(code int) bool { return code >= 200 && code < 300 }
	return notModified(a) && success(b) || notModified(b) && success(a)
}

// shadowMark is the value of X-Strangler-Shadow on every copy, shared:
// header values are never modified in place.
var shadowMark = []string{"1"}

// compileShadow builds a route's shadow side. Every route with a service
// gets one, so that its shadow flag can turn comparison on live even where
// the config left shadow.percent at 0.
func (s *Server) compileShadow(cfg *Config, rc Route) (*routeShadow, error) {
	sc := rc.Shadow
	rules, err := compare.NewRules(compare.RulesConfig{
		IgnoreHeaders: sc.IgnoreHeaders,
		IgnoreJSON:    sc.IgnoreJSON,
		UnorderedJSON: sc.UnorderedJSON,
		SecretHeaders: cfg.SecretHeaders,
		Mark:          shadowHeader + ": " + shadowMark[0],
	})
	if err != nil {
		return nil, fmt.Errorf("routes %s: shadow: %w", rc.Name, err)
	}
	st := s.routeState(rc.Name)
	secret := map[string]bool{}
	for _, name := range append(slices.Clone(DefaultSecretHeaders), cfg.SecretHeaders...) {
		secret[http.CanonicalHeaderKey(name)] = true
	}
	st.samples.setSecret(secret)
	m := s.metrics
	sh := &routeShadow{
		secrets:  append(slices.Clone(DefaultSecretHeaders), cfg.SecretHeaders...),
		percent:  sc.Percent,
		flag:     s.flags.Flag(sc.Flag),
		flagErrs: m.flagErrors.WithLabelValues(sc.Flag),
		methods:  sc.Methods,
		maxBody:  int64(sc.MaxBody),
		timeout:  time.Duration(sc.Timeout),
		rules:    rules,
		state:    st,

		skipMethod:        m.shadowSkipped.WithLabelValues(rc.Name, skipMethod),
		skipTooLarge:      m.shadowSkipped.WithLabelValues(rc.Name, skipTooLarge),
		skipOverload:      m.shadowSkipped.WithLabelValues(rc.Name, skipOverload),
		skipEjected:       m.shadowSkipped.WithLabelValues(rc.Name, skipEjected),
		skipPrimaryFailed: m.shadowSkipped.WithLabelValues(rc.Name, skipPrimaryFailed),
		skipConditional:   m.shadowSkipped.WithLabelValues(rc.Name, skipConditional),
		skipShutdown:      m.shadowSkipped.WithLabelValues(rc.Name, skipShutdown),
		noiseFields:       m.noiseFields.WithLabelValues(rc.Name),
	}
	if sc.Noise {
		sh.noise = st.noise
	}
	for _, o := range []compare.Outcome{compare.Match, compare.Mismatch, compare.Error} {
		sh.results[o] = m.comparisons.WithLabelValues(rc.Name, o.String())
	}
	for _, k := range []compare.Kind{compare.KindStatus, compare.KindHeader, compare.KindBody} {
		sh.kinds[k] = m.mismatches.WithLabelValues(rc.Name, k.String())
	}
	monolithURL, _ := parseUpstream(cfg.Monolith)
	serviceURL, _ := parseUpstream(rc.Service)
	tr := s.shadowTS.get(shadowTimeouts(rc))
	for _, side := range []struct {
		up      **upstream
		backend string
		target  *url.URL
	}{{&sh.monolith, backendMonolith, monolithURL}, {&sh.service, backendService, serviceURL}} {
		bm := &backendMetrics{primary: m.duration.WithLabelValues(rc.Name, side.backend, roleShadow)}
		*side.up = newUpstream(upstreamOptions{
			route: rc.Name, backend: side.backend, target: side.target,
			preserveHost: *rc.PreserveHost, transport: tr, buffers: s.bufs,
			metrics: bm, log: s.log, shadow: true, tracing: s.tracing,
		})
	}
	return sh, nil
}

// shadowTimeouts are a route's copies' timeouts: its own, with the
// shadow's timeout for the answer's head.
func shadowTimeouts(rc Route) Timeouts {
	t := rc.Timeouts
	t.ResponseHeader = rc.Shadow.Timeout
	return t
}

// routeState returns what the named route has learned so far.
func (s *Server) routeState(name string) *routeState {
	s.statesMu.Lock()
	defer s.statesMu.Unlock()
	st, ok := s.states[name]
	if !ok {
		st = &routeState{noise: compare.NewNoise(0), eject: &ejector{
			route:     name,
			ejected:   s.metrics.ejected.WithLabelValues(name),
			ejections: s.metrics.ejections.WithLabelValues(name),
			log:       s.log,
			percent:   -1,
		}}
		st.eject.ejected.Set(0)
		s.states[name] = st
	}
	return st
}
