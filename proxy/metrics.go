package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Backend and role label values. They are a contract with dashboards and
// alert rules: never rename them.
const (
	backendMonolith = "monolith"
	backendService  = "service"
	// backendProxy: answered by the proxy itself (a request refused: 400,
	// 405, 408, 413, 431, also a body refused mid-call; OPTIONS *).
	backendProxy = "proxy"
	rolePrimary  = "primary"
	roleShadow   = "shadow"
	defaultRoute = "_default"
)

// Kinds of upstream error, the kind label of strangler_upstream_errors_total.
const (
	errConnect  = "connect"  // nothing reached the upstream: refused, unreachable, DNS, TLS handshake
	errTimeout  = "timeout"  // no response headers within timeouts.response_header, a body stalled for timeouts.read, or a request's for timeouts.send
	errReset    = "reset"    // the connection broke after the request may have reached the upstream
	errCanceled = "canceled" // the client went away first
)

// durationBuckets suit a proxy: from 100 µs (a cached answer on loopback)
// to 10 s, and then 30 s and 60 s, so that requests that waited for the
// response header timeout (30 s by default) are told apart from the rest
// instead of all landing in +Inf.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Metrics are the proxy's Prometheus series, registered on one registry
// per server so that tests and embedded servers stay isolated.
type Metrics struct {
	// retiredMu guards retired: the routes forgetRoute deleted, whose
	// series codeCounters must not bind again (a request in flight at the
	// reload that removed its route would bring one back for good).
	retiredMu sync.Mutex
	retired   map[string]bool

	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	percent          *prometheus.GaugeVec
	flagErrors       *prometheus.CounterVec
	flagReloadErrors prometheus.Counter
	flagReloadOK     prometheus.Gauge
	upstreamErrors   *prometheus.CounterVec
	comparisons      *prometheus.CounterVec
	mismatches       *prometheus.CounterVec
	shadowSkipped    *prometheus.CounterVec
	noiseFields      *prometheus.GaugeVec
	panics           prometheus.Counter
	fallbacks        *prometheus.CounterVec
	ejected          *prometheus.GaugeVec
	ejections        *prometheus.CounterVec
	reloadErrors     prometheus.Counter
	reloadOK         prometheus.Gauge
	reloadTime       prometheus.Gauge
}

// NewMetrics creates the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_requests_total",
			Help: "Requests answered to clients, by route, the backend that served them (monolith, service, or proxy for what the proxy answers itself), and status code.",
		}, []string{"route", "backend", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "strangler_request_duration_seconds",
			Help:                            "Time from receiving a request to the end of its response, by route, backend and role (primary: served the client).",
			Buckets:                         durationBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: 3600e9,
		}, []string{"route", "backend", "role"}),
		percent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strangler_route_percent",
			Help: "The route's flag value (percent of traffic to the service) with an empty evaluation context.",
		}, []string{"route"}),
		flagErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_flag_errors_total",
			Help: "Flag evaluations that failed (missing flag, not a number, outside 0..100, a targeting rule that cannot be run): for a route's flag, its requests went to the monolith; for a shadow flag, they were not compared.",
		}, []string{"flag"}),
		flagReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_flag_reload_errors_total",
			Help: "Flag file changes that were refused (unreadable, invalid, deleted); the last good flags stayed in force.",
		}),
		flagReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strangler_flag_last_reload_successful",
			Help: "1 when the flags in force are the flag source's latest (its last change applied), 0 while the last change was refused or the flagd daemon is out of reach and older flags stay in force.",
		}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_upstream_errors_total",
			Help: "Upstream calls that failed, by route, backend and kind (connect, timeout, reset, canceled).",
		}, []string{"route", "backend", "kind"}),
	}
	m.comparisons = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_comparisons_total",
		Help: "Shadow comparisons by route and result (match, mismatch, error: the shadow call failed).",
	}, []string{"route", "result"})
	m.mismatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_mismatches_total",
		Help: "Mismatched comparisons by route and kind of difference (status, header, body); one comparison counts once per kind.",
	}, []string{"route", "kind"})
	m.shadowSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_shadow_skipped_total",
		Help: "Sampled requests not compared, by route and reason (method, too_large, overload, ejected, primary_failed, conditional, shutdown).",
	}, []string{"route", "reason"})
	m.noiseFields = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strangler_noise_fields",
		Help: "Fields found noisy (differing between two monolith answers) and ignored, by route.",
	}, []string{"route"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_panics_total",
		Help: "Panics while serving a request; each answered 500 and the process went on.",
	})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_fallbacks_total",
		Help: "Requests replayed to the monolith after the service failed, by route and reason (connect, reset, timeout, 5xx).",
	}, []string{"route", "reason"})
	m.ejected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strangler_service_ejected",
		Help: "1 while the route's service is ejected (its share goes to the monolith), else 0.",
	}, []string{"route"})
	m.ejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_ejections_total",
		Help: "Times the route's service was ejected after consecutive failures.",
	}, []string{"route"})
	m.reloadErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_config_reload_errors_total",
		Help: "Config reloads refused (invalid config); the running config stayed.",
	})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_config_last_reload_successful",
		Help: "1 when the last config reload succeeded, or the file holds the running config again after a refused one; 0 otherwise.",
	})
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_config_last_reload_success_timestamp_seconds",
		Help: "When the config was last loaded successfully (start or reload).",
	})
	m.reloadOK.Set(1)
	m.flagReloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	reg.MustRegister(m.reloadErrors, m.reloadOK, m.reloadTime, m.fallbacks, m.ejected, m.ejections, m.panics, m.requests, m.duration, m.percent, m.flagErrors, m.flagReloadErrors, m.flagReloadOK, m.upstreamErrors,
		m.comparisons, m.mismatches, m.shadowSkipped, m.noiseFields)
	return m
}

// backendMetrics are one route×backend's series, bound once at compile time
// so that the hot path does no label hashing or allocation.
type backendMetrics struct {
	primary prometheus.Observer
	codes   codeCounters
	errors  map[string]prometheus.Counter
}

func (m *Metrics) bindBackend(route, backend string) *backendMetrics {
	bm := &backendMetrics{
		primary: m.duration.WithLabelValues(route, backend, rolePrimary),
		errors:  map[string]prometheus.Counter{},
	}
	bm.codes.m, bm.codes.route, bm.codes.backend = m, route, backend
	for _, k := range []string{errConnect, errTimeout, errReset, errCanceled} {
		bm.errors[k] = m.upstreamErrors.WithLabelValues(route, backend, k)
	}
	return bm
}

// bindProxy binds the series of the answers the proxy gives itself on a
// route: no upstream was called, so there are no upstream errors.
func (m *Metrics) bindProxy(route string) *backendMetrics {
	bm := &backendMetrics{primary: m.duration.WithLabelValues(route, backendProxy, rolePrimary)}
	bm.codes.m, bm.codes.route, bm.codes.backend = m, route, backendProxy
	return bm
}

// codeCounters binds strangler_requests_total children per status code
// lazily: codes are few in practice but not known in advance.
type codeCounters struct {
	m              *Metrics
	route, backend string
	byCode         [600]atomic.Pointer[prometheus.Counter]
}

func (c *codeCounters) inc(code int) {
	if code < 100 || code >= len(c.byCode) {
		code = 0 // never seen from net/http; keep the label bounded anyway
	}
	p := c.byCode[code].Load()
	if p == nil {
		if p = c.bind(code); p == nil {
			return // the route is gone from the config
		}
	}
	(*p).Inc()
}

// bind makes the series of a code the first time it is seen, unless the
// route was forgotten meanwhile; under retiredMu, so that forgetRoute
// cannot run between the check and the binding.
func (c *codeCounters) bind(code int) *prometheus.Counter {
	c.m.retiredMu.Lock()
	defer c.m.retiredMu.Unlock()
	if c.m.retired[c.route] {
		return nil
	}
	counter := c.m.requests.WithLabelValues(c.route, c.backend, strconv.Itoa(code))
	c.byCode[code].Store(&counter)
	// The codes of an outage exist from the first request on, at 0, so
	// that rate() and increase() see its first burst: a series born at N
	// loses the N. (The proxy's own answers are never an outage's 5xx.)
	if c.backend != backendProxy {
		for _, e := range outageCodes {
			if c.byCode[e].Load() == nil {
				ec := c.m.requests.WithLabelValues(c.route, c.backend, strconv.Itoa(e))
				c.byCode[e].Store(&ec)
			}
		}
	}
	return &counter
}

var outageCodes = [...]int{500, 502, 503, 504}

// keepRoutes takes the installed table's routes off the retired list: a
// route back in the config has its series again. At install, not at
// compile: a compiled table that is never installed must not bring one
// back.
func (m *Metrics) keepRoutes(routes []*route) {
	m.retiredMu.Lock()
	defer m.retiredMu.Unlock()
	for _, rt := range routes {
		delete(m.retired, rt.name)
	}
}

// forgetRoute deletes every series of a route the config no longer has.
func (m *Metrics) forgetRoute(name string) {
	m.retiredMu.Lock()
	defer m.retiredMu.Unlock()
	if m.retired == nil {
		m.retired = map[string]bool{}
	}
	m.retired[name] = true
	l := prometheus.Labels{"route": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.requests, m.duration, m.percent, m.upstreamErrors, m.comparisons, m.mismatches,
		m.shadowSkipped, m.noiseFields, m.fallbacks, m.ejected, m.ejections,
	} {
		v.DeletePartialMatch(l)
	}
}
