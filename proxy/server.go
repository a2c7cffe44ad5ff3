package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/strangler-proxy/strangler/flags"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Server is a running Strangler: the proxy handler, the admin handler, the
// flag source and the metrics, wired together.
type Server struct {
	cfg      *Config
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *Metrics
	flags    *flags.Source
	ts       transports // primary calls
	shadowTS transports // shadow calls: their own pools, so a slow shadow side cannot starve the primary
	pool     *shadowPool
	statesMu sync.Mutex
	states   map[string]*routeState // by route name, kept across reloads
	reloadMu sync.Mutex             // one reload at a time
	// reloadStateMu orders the reload gauge's updates: a refused reload
	// sets it to 0 as the watcher may be setting it back to 1.
	reloadStateMu sync.Mutex
	// reloadFailed: the last reload was refused (the gauge reads 0) and
	// the config file going back to the running config clears it.
	reloadFailed bool
	// refusedRaw is the content the last reload refused, by SIGHUP or
	// the watcher alike, so that the watcher does not try again (and
	// count it twice) what SIGHUP refused; nil after a success.
	refusedRaw []byte
	percentMu  sync.Mutex                // one publisher of strangler_route_percent at a time
	published  map[string]publishedShare // by route, as last logged; under percentMu
	tracing    *tracing                  // nil: off
	shadowMem  memBudget
	bufs       *bufferPool
	table      atomic.Pointer[table]
	// flagsStale says why the last good flags are in force (a change
	// refused, the file unreadable, the flagd daemon out of reach); nil
	// when they are current.
	flagsStale atomic.Pointer[string]
	// tokenLogged: when an unreadable admin token file was last logged
	// (Unix nanoseconds).
	tokenLogged atomic.Int64
	ready       atomic.Bool
	recs        sync.Pool // *recorder

	abortMu       sync.Mutex
	aborted       bool               // Abort was called
	abortShutdown context.CancelFunc // ends the shutdown in progress; nil before one
}

// Options are the parts of a Server that are not in the config file.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// TracerProvider, when set, traces every request: a server span, and a
	// client span for each upstream call (primary and shadow). nil: no
	// tracing, at no cost; traceparent still passes through unchanged.
	TracerProvider trace.TracerProvider
	// Propagator reads and writes trace context; nil: W3C traceparent,
	// tracestate and baggage.
	Propagator propagation.TextMapPropagator
}

// New validates nothing (call cfg.Validate and Check first), opens the flag
// source, compiles the route table and returns a Server ready to serve.
func New(ctx context.Context, cfg *Config, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry(), bufs: newBufferPool(), states: map[string]*routeState{},
		tracing: newTracing(opts.TracerProvider, opts.Propagator)}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = NewMetrics(s.reg)
	s.recs.New = func() any { return new(recorder) }
	fo := cfg.flagOptions()
	fo.Logger = log
	// flagsStale first, so that whoever sees the metrics move sees it too.
	fo.OnChange = func() {
		s.flagsStale.Store(nil)
		s.metrics.flagReloadOK.Set(1)
		s.refreshPercents()
	}
	fo.OnReloadError = func(err error) {
		why := err.Error()
		s.flagsStale.Store(&why)
		s.metrics.flagReloadErrors.Inc()
		s.metrics.flagReloadOK.Set(0)
	}
	src, err := flags.Open(ctx, fo)
	if err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	s.flags = src
	t, err := s.compile(cfg)
	if err != nil {
		src.Close(ctx)
		return nil, err
	}
	s.pool = newShadowPool(s, cfg.ShadowWorkers, cfg.ShadowQueue, int64(cfg.ShadowMemory))
	s.shadowMem.limit = int64(cfg.ShadowMemory)
	s.install(t)
	return s, nil
}

// install swaps t in and applies what a route keeps across tables: its
// ejection settings; a route the old table had and t has not loses its
// series and what it learned, so that a dashboard or an alert does not go
// on showing it (its percent, or an ejection that never clears).
func (s *Server) install(t *table) {
	// Before the swap: the first request of a route back in the config
	// must be able to bind its series.
	s.metrics.keepRoutes(t.routes)
	old := s.table.Swap(t)
	s.ts.retain(t.uses, false)
	s.shadowTS.retain(t.uses, true)
	for _, rt := range t.routes {
		rt.eject.cfg.Store(rt.ejectCfg)
	}
	s.percentMu.Lock()
	defer s.percentMu.Unlock()
	if old != nil {
		for _, rt := range old.routes {
			if !slices.ContainsFunc(t.routes, func(n *route) bool { return n.name == rt.name }) {
				s.metrics.forgetRoute(rt.name)
				delete(s.published, rt.name) // under percentMu; back, it logs its share afresh
				s.statesMu.Lock()
				delete(s.states, rt.name)
				s.statesMu.Unlock()
			}
		}
		// A flag's error series goes with the last route that reads it.
		inUse := map[string]bool{}
		for _, rt := range t.routes {
			inUse[rt.cfg.Flag], inUse[rt.cfg.Shadow.Flag] = true, true
		}
		for _, rt := range old.routes {
			for _, f := range []string{rt.cfg.Flag, rt.cfg.Shadow.Flag} {
				if f != "" && !inUse[f] {
					s.metrics.flagErrors.DeleteLabelValues(f)
				}
			}
		}
	}
	s.publishPercents()
}

// Registry is the server's Prometheus registry, served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// refreshPercents publishes every route's flag value with an empty context.
// It runs on every flag change, off the request path.
func (s *Server) refreshPercents() {
	s.percentMu.Lock()
	defer s.percentMu.Unlock()
	s.publishPercents()
}

// publishPercents is refreshPercents with percentMu held: a flag change
// and a reload publish one after the other, so that a removed route's
// gauge is not set again from the table it left.
func (s *Server) publishPercents() {
	t := s.table.Load()
	if t == nil {
		return
	}
	if s.published == nil {
		s.published = map[string]publishedShare{}
	}
	for _, rt := range t.routes {
		v, err := rt.flag.Current()
		s.logShare(rt, v, err)
		if err != nil {
			v = 0 // what the route does: all traffic on the monolith
		}
		s.metrics.percent.WithLabelValues(rt.name).Set(v)
		if rt.eject != nil {
			// A flag that cannot be used (all on the monolith until it is
			// fixed) is not a rollback, and with a targeting rule there
			// is no one share; the route is dark only when no request of
			// its own can reach the service (a rule may send some there
			// whatever its default).
			share, uniform := v, rt.flag.Uniform()
			if err != nil || !uniform {
				share = -1
			}
			rt.eject.percentIs(share, uniform && v == 0)
		}
	}
}

// publishedShare is a route's share as last logged.
type publishedShare struct {
	value float64
	err   string
}

// unusable reports whether a flag's error for an empty context stands for
// the flag: the flag's own problem (a default that is not a number,
// missing, disabled...). With a targeting rule, an empty context may also
// fail where requests get a value: a rule that needs what a request has
// (a variant named after its method) names no variant without it, which
// the provider reports as an error of its own, and a flag without a
// default variant has none for the requests no rule places (those go to
// the monolith, counted as flag errors), but the others follow the rule.
func unusable(f *flags.Flag, err error) bool {
	if err == nil || f.Uniform() {
		return err != nil
	}
	for _, e := range [...]error{flags.ErrNotFound, flags.ErrDisabled, flags.ErrState, flags.ErrType, flags.ErrRange, flags.ErrRule} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// flagNote says what a targeted flag's error for an empty context (one
// that is not unusable) means for its route.
func flagNote(err error) string {
	if errors.Is(err, flags.ErrNoDefault) {
		return "route's flag has no default variant: its targeting rule decides each request, and those it does not place go to the monolith"
	}
	return "route's flag has no value without a request's context; its targeting rule decides each request"
}

// logShare logs a route's share when it changes, and why its flag is
// unusable when it is: the log then says what a ramp did, and what a
// broken flag does (all traffic on the monolith), without reading
// /api/routes. percentMu is held.
func (s *Server) logShare(rt *route, v float64, err error) {
	now := publishedShare{value: v}
	if err != nil {
		now = publishedShare{err: err.Error()}
	}
	before, seen := s.published[rt.name]
	s.published[rt.name] = now
	switch {
	case seen && before == now:
	case unusable(rt.flag, err):
		s.log.Warn("route's flag is unusable: its traffic stays on the monolith", "route", rt.name, "flag", rt.flag.Name(), "error", err)
	case err != nil:
		s.log.Info(flagNote(err), "route", rt.name, "flag", rt.flag.Name(), "error", err)
	case !seen:
		s.log.Info("route share", "route", rt.name, "flag", rt.flag.Name(), "percent", v)
	default:
		s.log.Info("route share changed", "route", rt.name, "flag", rt.flag.Name(), "from", before.value, "to", v)
	}
}

// ServeHTTP proxies one request: match a route, split, forward, record.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// A client must not be able to mark a real request as a shadow copy,
	// which a service may answer without side effects.
	delete(r.Header, shadowHeader)
	// Go's server has already taken the client's 100-continue
	// expectation: it answers 100 when the body is first read, which is
	// when an upstream call starts sending it. Forwarded, the expectation
	// would make the transport wait a second for the upstream's own 100
	// (which Go's servers and many others never send while the body is
	// already on its way), for every call and every shadow copy; nginx and
	// Envoy drop it too.
	delete(r.Header, "Expect")
	t := s.table.Load()
	s.tracing.clientAddress(r.Context(), r, t)
	if !s.admit(w, r, t, start) {
		return
	}
	if r.Header["Upgrade"] != nil {
		if g, ok := r.Context().Value(guardKey{}).(*guardConn); ok && g.tunnels != nil && isWebSocket(r.Header) {
			// A tunnel from here until the handler returns: Serve's
			// shutdown waits for it (see tunnelSet).
			g.tunnels.add(g)
			defer g.tunnels.remove(g)
		}
	}
	rt := t.match(r)
	rec := s.recs.Get().(*recorder)
	rec.ResponseWriter, rec.status, rec.tee, rec.pair, rec.servedBy, rec.req, rec.duplex, rec.informed, rec.flushHead = w, 0, nil, nil, rt.monolith, r, nil, false, false
	rec.accessLog = t.cfg.AccessLog // the request's own table's, whatever a reload does meanwhile
	// Deferred so that a response aborted mid-body (ReverseProxy panics
	// with http.ErrAbortHandler) is still counted.
	defer s.finish(r, rec, start)
	// Runs before finish, so that finish counts a panic's 500; through rec,
	// so that it knows whether the response has begun.
	defer s.recoverPanic(rec, r, rt)
	if !s.limitBody(rec, r, rt) {
		return
	}
	body, _ := r.Body.(*bodyLimiter) // before the shadow or fallback wrap it
	if body != nil {
		defer s.boundUnreadBody(body)
	}
	if r.Method == http.MethodConnect {
		// A reverse proxy has no tunnel to offer. Forwarded, an upstream's
		// 2xx would tell a front proxy that one is open, and it would relay
		// the client's next bytes unchecked, while this connection goes on
		// being read as requests. nginx and Envoy refuse it too.
		rec.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		s.refuse(rec, r, rt, http.StatusMethodNotAllowed, "CONNECT is not proxied")
		return
	}
	if r.RequestURI == "*" {
		// OPTIONS * asks about the server, not a resource: answered here,
		// as net/http's general options handler does. Another method
		// with that target names nothing.
		if r.Method != http.MethodOptions {
			s.refuse(rec, r, rt, http.StatusBadRequest, "request target * is for OPTIONS only")
			return
		}
		rec.servedBy = rt.refuser
		rec.Header().Set("Content-Length", "0")
		rec.WriteHeader(http.StatusOK)
		return
	}
	up, pair, pct, held := s.choose(t, rt, r, start)
	if held > 0 {
		defer s.shadowMem.give(held)
	}
	if up == rt.service {
		// After the deferred give: a body that panics as the fallback
		// reads it further must not keep the shadow's charge.
		prepareFallbackBody(rt, r)
	}
	s.tracing.annotate(r.Context(), r, rt, up.backend, pct)
	if r.ContentLength != 0 && r.Body != http.NoBody {
		// HTTP/1 servers otherwise drain the request body before the first
		// response byte, so an upstream that answers while the body still
		// streams (an echo, an early 413) would deadlock with the client.
		http.NewResponseController(w).EnableFullDuplex()
		rec.duplex = body
	}
	rec.pair, rec.servedBy = pair, up
	if pair != nil {
		rec.tee = &pair.primary
	}
	up.serve(rec, r)
}

// choose splits the request and starts its shadow comparison; it returns
// the side to serve it, the comparison, the route's percentage and the
// shadow_memory the request's body holds until the request ends (the
// caller gives it back then).
//
// Apart from ServeHTTP, as prepareFallbackBody is, so that their locals
// (the split key, flag attributes, fallback checks) are off the stack
// while the request is forwarded: in ServeHTTP's frame they put each
// connection's goroutine on a larger stack, 4 KiB more a connection held
// open.
//
//go:noinline
func (s *Server) choose(t *table, rt *route, r *http.Request, start time.Time) (up *upstream, pair *shadowPair, pct float64, held int64) {
	up = rt.monolith
	if rt.service == nil {
		return up, nil, 0, 0
	}
	key, p, toSvc := s.split(t, rt, r)
	if toSvc && !rt.eject.admitAt(start) {
		toSvc = false // sticky assignment untouched: the user returns when the service does
	}
	pct = p
	// The shadow reads the body first: its limit is usually the larger,
	// and the fallback can replay what it read.
	pair = s.startShadow(rt, r, key, flags.Attrs{Route: rt.name, Method: r.Method, Path: r.URL.Path}, toSvc, start)
	if bb, ok := r.Body.(*bufferedBody); ok {
		held = bb.held
	}
	if toSvc {
		up = rt.service
	}
	return up, pair, pct, held
}

// prepareFallbackBody readies the body of a request sent to the service
// for the route's fallback.
//
//go:noinline
func prepareFallbackBody(rt *route, r *http.Request) {
	if !rt.fallback.enabled() || r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	if rt.fallback.replaysSent(r.Method) || idempotencyKey(r.Header) {
		// Replayable, or retried by the transport on a fresh connection
		// when a pooled one turns out closed (a body it can send again).
		bufferBody(r, rt.fallback.maxBody, nil)
	} else {
		// Read ahead, the body would reach the service only in max_body
		// lumps, and a client that streams and waits for the answer as
		// it goes would stall.
		trackBody(r)
	}
}

// finish records one request's outcome and returns its recorder.
func (s *Server) finish(r *http.Request, rec *recorder, start time.Time) {
	up, pair, accessLog := rec.servedBy, rec.pair, rec.accessLog
	status := rec.status
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing: net/http answers 200
	}
	rec.ResponseWriter, rec.tee, rec.pair, rec.servedBy, rec.req = nil, nil, nil, nil, nil
	s.recs.Put(rec)
	d := time.Since(start)
	s.record(r, up, status, d, accessLog)
	if pair != nil {
		if pair.primary.status == 0 {
			pair.primary.status = status
		}
		if pair.primary.failed != "" {
			pair.drop(pair.sh.skipPrimaryFailed)
		}
		pair.abandonPending()
		s.primaryDone(pair, d)
	}
}

// record counts one answered request under the side that answered it
// (a route's refuser for what the proxy answers itself), names that side
// on the server span, and logs it when access_log (the request's table's)
// is on.
func (s *Server) record(r *http.Request, up *upstream, status int, d time.Duration, accessLog bool) {
	up.metrics.codes.inc(status)
	observe(up.metrics.primary, r.Context(), d)
	s.tracing.answeredBy(r.Context(), up.backend)
	if accessLog {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "access",
			slog.String("route", up.route), slog.String("backend", up.backend),
			slog.String("method", r.Method), slog.String("path", loggedPath(r.URL)),
			slog.Int("status", status), slog.Float64("duration_seconds", d.Seconds()),
			slog.String("trace_id", traceID(r.Context())))
	}
}

// shadowHeader marks the copies Strangler sends to the other side.
const shadowHeader = "X-Strangler-Shadow"

// split decides whether the request goes to the route's service, and
// returns the sticky key it used. Any flag problem keeps the request on the
// monolith, the side that is known to work.
func (s *Server) split(t *table, rt *route, r *http.Request) (key string, percent float64, toSvc bool) {
	var b uint32
	if rt.sticky.kind == stickyRandom {
		b = randomBucket()
		key = clientIP(r, t.trusted)
	} else {
		key = rt.sticky.key(r, t.trusted)
		b = bucket(rt.seed, key)
	}
	pct, err := rt.flag.Percent(r.Context(), key, flags.Attrs{Route: rt.name, Method: r.Method, Path: r.URL.Path})
	if err != nil {
		rt.flagErrs.Inc()
		return key, 0, false
	}
	return key, pct, toService(b, pct)
}

// recorder notes the status code the client got. It is pooled: one per
// request would be the hot path's largest avoidable allocation.
//
// For a compared request it also tees the answer into the pair's capture
// (status, headers, body up to max_body) as it streams to the client.
type recorder struct {
	http.ResponseWriter
	status   int
	tee      *capture
	pair     *shadowPair
	servedBy *upstream     // the chosen upstream, or the monolith after a fallback
	req      *http.Request // the client's request, for a fallback to replay
	// duplex is the client's body when the handler reads it while it
	// answers (EnableFullDuplex); nil otherwise.
	duplex *bodyLimiter
	// informed: an interim answer (103 Early Hints) reached the client,
	// so the answer has begun and a fallback may no longer replay.
	informed bool
	// flushHead: a final answer's head with a body of known length goes
	// out on its own (ReverseProxy's path), so that a body that is slow to
	// come (a download from slow storage, an export) does not hold back
	// the news that the upstream answered; a stream's head ReverseProxy
	// flushes itself.
	flushHead bool
	accessLog bool // the request's table's access_log
}

// informed reports whether an interim answer already reached w's client.
func informed(w http.ResponseWriter) bool {
	rec, ok := w.(*recorder)
	return ok && rec.informed
}

func (w *recorder) WriteHeader(code int) {
	if code < 200 && code != http.StatusSwitchingProtocols && w.req != nil && !w.req.ProtoAtLeast(1, 1) {
		// RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client, which would
		// read it as the final answer.
		return
	}
	if code == http.StatusContinue {
		// Not asked for (ServeHTTP drops Expect); the client's own 100
		// comes from Go's server when its body is first read, and a second
		// would be one too many.
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informed = true
		// The interim answer's own hop-by-hop fields (RFC 9110 §7.6.1),
		// on both paths: the header map holds it alone here, and both
		// clear it after.
		removeHopByHop(w.Header())
	}
	// 1xx answers (103 Early Hints) precede the final one; 101 is final.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		if w.tee != nil {
			w.tee.status = code
			if w.tee.header == nil { // forward may have handed over the upstream's
				w.tee.header = w.Header().Clone()
			}
			w.tee.chargeHeader()
		}
		if w.pair != nil && w.pair.pending {
			w.pair.sendPending()
		}
		if w.duplex != nil && !w.duplex.eof.Load() && code != http.StatusSwitchingProtocols {
			// An answer before the whole body was read (the upstream
			// could not be reached, or answered early): net/http would
			// read the rest after the handler, and the end of it would
			// start a background read that races the next request on the
			// connection, which it answers with a panic and a dropped
			// connection (golang/go#68560). Closing the connection after
			// the answer is what it does for an unread body in any case
			// past 256 KiB.
			w.Header().Set("Connection", "close")
		}
		if h := w.Header(); h["Content-Type"] == nil {
			// Go's server would sniff the body and add a Content-Type the
			// upstream never sent (text/html for an upload served with
			// nosniff and no type on purpose): a nil value keeps it out,
			// as nginx and Envoy leave it.
			h["Content-Type"] = nil
		}
	}
	w.ResponseWriter.WriteHeader(code)
	if w.flushHead && code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified {
		if cl := w.Header()["Content-Length"]; len(cl) == 1 && cl[0] != "0" {
			w.Flush()
		}
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.tee != nil {
		w.tee.append(b)
	}
	n, err := w.ResponseWriter.Write(b)
	// Stream: never hold back what the upstream sent, even a response with
	// a Content-Length (ReverseProxy would, with FlushInterval 0). Each
	// write is one chunk ReverseProxy read from the upstream.
	w.Flush()
	return n, err
}

// Flush is direct rather than through Unwrap because ReverseProxy flushes
// after every write when streaming.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach Hijack (WebSocket upgrades)
// and deadlines on the real writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Serve runs the proxy on ln and the admin API on admin until ctx is
// cancelled, then shuts down gracefully: it stops accepting, reports not
// ready, lets in-flight requests finish for up to shutdown_timeout, and
// returns.
func (s *Server) Serve(ctx context.Context, ln, admin net.Listener) error {
	proxySrv := &http.Server{
		Handler:  s.tracing.handler(s),
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// OPTIONS * reaches ServeHTTP, through the guard's admit like
		// every other head; net/http's own answer skipped it, which let
		// a bad one through and cancelled the request before it.
		DisableGeneralOptionsHandler: true,
	}
	s.applyLimits(proxySrv)
	var tunnels tunnelSet
	guarded := s.guardListener(ln, &tunnels)
	ln = guarded
	// The admin API takes no bodies and its answers are small, so whole
	// requests and answers are bounded: a client that announces a body and
	// sends none (on /healthz, which needs no token) would otherwise hold
	// its connection for ever, and enough of them the process's file
	// descriptors, which the proxy listener shares.
	adminSrv := &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      time.Minute,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 2)
	go func() { errc <- proxySrv.Serve(ln) }()
	go func() { errc <- adminSrv.Serve(admin) }()
	s.ready.Store(true)
	s.log.Info("serving", "listen", ln.Addr().String(), "admin", admin.Addr().String(), "routes", len(s.table.Load().routes))

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc: // a listener failed: shut the other down too
	}
	s.ready.Store(false)
	timeout := time.Duration(s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.abortMu.Lock()
	s.abortShutdown = cancel
	if s.aborted {
		cancel()
	}
	s.abortMu.Unlock()
	s.log.Info("shutting down", "timeout", timeout.String())
	guarded.silent.shut()
	if serr := proxySrv.Shutdown(sctx); serr != nil {
		s.log.Warn("in-flight requests did not finish in time; closing them", "error", serr)
		proxySrv.Close()
	}
	// Hijacked connections (WebSocket tunnels) are not Shutdown's: they
	// get what is left of shutdown_timeout too.
	if n := tunnels.drain(sctx); n > 0 {
		s.log.Warn("WebSocket tunnels still open at shutdown_timeout; closing them", "tunnels", n)
	}
	adminSrv.Shutdown(sctx)
	s.ts.closeIdle()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// boundUnreadBody runs as the handler returns. A body nobody read to its
// end (an answer given without it: an upstream that could not be reached,
// OPTIONS *) is then drained by net/http, up to 256 KiB, to keep the
// connection, with no read deadline of its own: a client that stops
// sending (or waits for a 100 Continue that never comes) held the
// connection and its goroutines for ever. The drain gets stall_timeout.
func (s *Server) boundUnreadBody(body *bodyLimiter) {
	stall := time.Duration(s.cfg.Limits.StallTimeout)
	if body.eof.Load() || body.g == nil || stall <= 0 {
		return
	}
	if body.refused.Load() {
		// Refused mid-call (past max_body, stalled, malformed): none of
		// it is wanted, and a drain would hold a cut answer open for
		// stall_timeout. As refuse does.
		body.g.linger.Store(true)
		body.g.SetReadDeadline(time.Now())
		return
	}
	body.g.SetReadDeadline(time.Now().Add(stall))
}

// Abort makes a shutdown in progress, or the next one, stop waiting:
// requests in flight and tunnels are closed at once (a second SIGTERM).
func (s *Server) Abort() {
	s.abortMu.Lock()
	defer s.abortMu.Unlock()
	s.aborted = true
	if s.abortShutdown != nil {
		s.abortShutdown()
	}
}

// ExitGrace bounds what a process does after Serve's drain: Close's wait
// for comparisons in flight, and the export of the last spans. A
// deployment's grace period covers its preStop, shutdown_timeout and
// this.
const ExitGrace = 3 * time.Second

// Close stops the comparison pool and releases the flag source. Call it
// after Serve returned. Copies in flight finish, unless ctx ends first
// (they can take shadow.timeout, twice with noise), in which case Close
// returns without them; queued copies are not sent, only counted (see
// shadowPool.stop).
func (s *Server) Close(ctx context.Context) error {
	s.pool.stop(ctx)
	s.ts.closeIdle()
	s.shadowTS.closeIdle()
	return s.flags.Close(ctx)
}
