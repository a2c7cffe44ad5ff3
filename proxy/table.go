package proxy

import (
	"net/http"
	"net/netip"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/strangler-proxy/strangler/flags"
)

// table is a compiled config: everything the hot path needs, precomputed
// and immutable. A reload builds a new table and swaps the pointer, so a
// request runs from start to end on the table it started with.
type table struct {
	cfg       *Config // what the table was compiled from
	mux       *chi.Mux
	byPattern map[string][]*route // routes sharing a pattern differ in methods
	fallback  *route              // "_default": requests that match no route
	routes    []*route            // in config order, for the admin API
	trusted   []netip.Prefix
	rctx      sync.Pool // chi route contexts, reused across requests
	uses      []upstreamUse
}

// upstreamUse is a pool a table's routes send to: the transport's key
// among the primary (or shadow) transports, and the upstream's host.
type upstreamUse struct {
	shadow bool
	key    Timeouts
	host   string
}

// route is one compiled config route.
type route struct {
	name     string
	pattern  string
	methods  []string // empty: all
	flag     *flags.Flag
	flagErrs prometheus.Counter
	sticky   sticky
	seed     uint64
	monolith *upstream
	service  *upstream // nil for the default route
	// refuser stands for the proxy itself where it answers without an
	// upstream (a refusal, OPTIONS *): counted and logged as backend
	// "proxy", never as the monolith.
	refuser  *upstream
	shadow   *routeShadow
	fallback routeFallback
	eject    *ejector
	ejectCfg *ejectConfig // given to eject when the table is installed
	cfg      Route
}

// compile builds a table from a validated config. It shares transports and
// what routes have learned with earlier tables, so that a reload keeps warm
// upstream connections, noise fields and diff samples.
func (s *Server) compile(cfg *Config) (*table, error) {
	src, m, ts, bufs, log := s.flags, s.metrics, &s.ts, s.bufs, s.log
	monolithURL, err := parseUpstream(cfg.Monolith)
	if err != nil {
		return nil, err
	}
	t := &table{
		cfg:       cfg,
		mux:       chi.NewMux(),
		byPattern: map[string][]*route{},
		trusted:   parseTrusted(cfg.TrustedProxies),
	}
	t.rctx.New = func() any { return chi.NewRouteContext() }
	t.fallback = &route{
		name: defaultRoute,
		monolith: newUpstream(upstreamOptions{
			route: defaultRoute, backend: backendMonolith, target: monolithURL,
			preserveHost: *cfg.PreserveHost, transport: ts.get(cfg.Timeouts), buffers: bufs,
			metrics: m.bindBackend(defaultRoute, backendMonolith), log: log, tracing: s.tracing,
		}),
		refuser: refuser(m, defaultRoute),
	}
	t.fallback.monolith.refuser = t.fallback.refuser
	t.uses = append(t.uses, upstreamUse{key: cfg.Timeouts, host: monolithURL.Host})
	// chi serves only as the matcher: Find gives the most specific pattern
	// for the method without wrapping the request in a new context, so the
	// handlers registered here are never called.
	never := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, rc := range cfg.Routes {
		serviceURL, err := parseUpstream(rc.Service)
		if err != nil {
			return nil, err
		}
		tr := ts.get(rc.Timeouts)
		rt := &route{
			name:     rc.Name,
			pattern:  rc.Path,
			methods:  rc.Methods,
			flag:     src.Flag(rc.Flag),
			flagErrs: m.flagErrors.WithLabelValues(rc.Flag),
			sticky:   newSticky(rc.Sticky),
			seed:     routeSeed(rc.Name),
			cfg:      rc,
			refuser:  refuser(m, rc.Name),
		}
		rt.monolith = newUpstream(upstreamOptions{
			route: rc.Name, backend: backendMonolith, target: monolithURL,
			preserveHost: *rc.PreserveHost, transport: tr, buffers: bufs,
			metrics: m.bindBackend(rc.Name, backendMonolith), log: log, tracing: s.tracing,
		})
		s.compileFallback(rt, rc, s.routeState(rc.Name))
		rt.service = newUpstream(upstreamOptions{
			route: rc.Name, backend: backendService, target: serviceURL,
			preserveHost: *rc.PreserveHost, transport: tr, buffers: bufs,
			metrics: m.bindBackend(rc.Name, backendService), log: log, tracing: s.tracing,
			answered: func(resp *http.Response) error { return s.serviceAnswered(rt, resp) },
			failed: func(w http.ResponseWriter, r *http.Request, kind string, err error) bool {
				return s.serviceFailed(rt, w, r, kind, err)
			},
		})
		rt.monolith.refuser, rt.service.refuser = rt.refuser, rt.refuser
		if len(rc.Methods) == 0 {
			t.mux.Handle(rc.Path, never)
		} else {
			for _, method := range rc.Methods {
				t.mux.Method(method, rc.Path, never)
			}
		}
		if rt.shadow, err = s.compileShadow(cfg, rc); err != nil {
			return nil, err
		}
		t.uses = append(t.uses,
			upstreamUse{key: rc.Timeouts, host: monolithURL.Host}, upstreamUse{key: rc.Timeouts, host: serviceURL.Host},
			upstreamUse{shadow: true, key: shadowTimeouts(rc), host: monolithURL.Host},
			upstreamUse{shadow: true, key: shadowTimeouts(rc), host: serviceURL.Host})
		t.byPattern[rc.Path] = append(t.byPattern[rc.Path], rt)
		t.routes = append(t.routes, rt)
	}
	return t, nil
}

// match finds the route for a request: chi's most specific pattern that
// accepts the method. chi falls back to a less specific pattern when the
// more specific one does not take the method; a request no route takes
// goes to the monolith.
func (t *table) match(r *http.Request) *route {
	if len(t.routes) == 0 {
		return t.fallback
	}
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	method := r.Method
	if !isStandardMethod(method) {
		method = anyMethod
	}
	rctx := t.rctx.Get().(*chi.Context)
	rctx.Reset()
	pattern := t.mux.Find(rctx, method, path)
	t.rctx.Put(rctx)
	if pattern == "" {
		return t.fallback
	}
	for _, rt := range t.byPattern[pattern] {
		if rt.accepts(r.Method) {
			return rt
		}
	}
	return t.fallback
}

// anyMethod stands in, for chi, for a request method chi does not know
// (PURGE, PROPFIND, …): chi's Find matches nothing for those, so they went
// to the monolith even on a route that accepts every method. Registered
// before any mux is built, it is one of the methods Handle registers a
// method-less route for; routes with methods list standard ones only.
const anyMethod = "STRANGLER-ANY-METHOD"

func init() { chi.RegisterMethod(anyMethod) }

// isStandardMethod reports whether m is one of the methods chi knows
// without registration (RFC 9110's, and PATCH): the methods a route's
// methods may list.
func isStandardMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return true
	}
	return false
}

func (rt *route) accepts(method string) bool {
	if len(rt.methods) == 0 {
		return true
	}
	for _, m := range rt.methods {
		if m == method {
			return true
		}
	}
	return false
}

// refuser is a route's stand-in for the proxy's own answers (route.refuser).
func refuser(m *Metrics, route string) *upstream {
	return &upstream{route: route, backend: backendProxy, metrics: m.bindProxy(route)}
}
