package proxy

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strangler-proxy/strangler/compare"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes Strangler adds. The server span carries the route, the
// side chosen and the percentage at the time; each client span (primary
// and shadow calls) the route, the side it calls and its role.
const (
	attrRoute   = attribute.Key("strangler.route")
	attrBackend = attribute.Key("strangler.backend")
	attrPercent = attribute.Key("strangler.percent")
	attrRole    = attribute.Key("strangler.role")
	// attrFallback: set on the server span when the monolith answered
	// after the service failed: connect, reset, timeout or 5xx.
	attrFallback = attribute.Key("strangler.fallback")
	// attrClientAddress is OpenTelemetry's client.address.
	attrClientAddress = attribute.Key("client.address")
)

// tracing is the server's OpenTelemetry setup; nil when tracing is off,
// in which case nothing is wrapped and requests pay nothing for it
// (otelhttp costs about 2.5 µs and 33 allocations per request even with a
// no-op provider, so "off" must mean "not installed").
type tracing struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
	// owned are the request headers the proxy writes its own trace
	// context to, dropped from each upstream call before it does: see
	// ownedFields.
	owned []string
}

func newTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) *tracing {
	if tp == nil {
		return nil
	}
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &tracing{tp: tp, prop: prop, owned: ownedFields(prop)}
}

// b3Fields are every header of B3's two encodings. The b3 propagator
// reads either encoding but writes one, and never X-B3-ParentSpanId:
// the client's fields of the other would pass upstream beside the
// proxy's, naming the client's span as the parent and skipping the
// proxy's (a service reading X-B3-* first, behind a proxy writing b3).
var b3Fields = []string{"B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags"}

// ownedFields are the headers of the trace context formats prop writes,
// whose incoming values are dropped from an upstream call before the
// proxy's own are written: what it writes replaces them, and what it
// does not write (a tracestate after a traceparent it could not read, the
// other B3 encoding) must not pass beside it, as it would into another
// trace or under the wrong parent.
// Headers of formats prop does not speak pass as sent. Baggage is kept:
// it is the application's data, not trace context, and one the proxy
// could not parse passes as sent (one it read is written again).
func ownedFields(prop propagation.TextMapPropagator) []string {
	var owned []string
	for _, f := range prop.Fields() {
		switch f = http.CanonicalHeaderKey(f); {
		case f == "Baggage":
		case f == "B3" || strings.HasPrefix(f, "X-B3-"):
			owned = append(owned, b3Fields...)
		default:
			owned = append(owned, f)
		}
	}
	slices.Sort(owned)
	return slices.Compact(owned)
}

// dropIncoming removes from an upstream call's headers the trace context
// the proxy is about to write there itself (ownedFields).
func (tr *tracing) dropIncoming(h http.Header) {
	if tr == nil {
		return
	}
	for _, f := range tr.owned {
		delete(h, f)
	}
}

// handler wraps the proxy in a server span that continues an incoming
// W3C trace.
func (tr *tracing) handler(h http.Handler) http.Handler {
	if tr == nil {
		return h
	}
	// url.path with its path parameters' values redacted (;jsessionid=),
	// as in mismatch samples.
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() && strings.IndexByte(r.URL.Path, ';') >= 0 {
			span.SetAttributes(attrURLPath.String(compare.RedactURL(r.URL.Path)))
		}
		h.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(inner, "strangler",
		otelhttp.WithTracerProvider(tr.tp),
		otelhttp.WithPropagators(tr.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return spanMethod(r.Method) }),
	)
}

// transport wraps an upstream's transport in client spans, children of the
// server span, and injects traceparent/tracestate into the upstream call.
func (tr *tracing) transport(base http.RoundTripper, route, backend, role string) http.RoundTripper {
	if tr == nil {
		return base
	}
	return otelhttp.NewTransport(redactingTransport{base},
		otelhttp.WithTracerProvider(tr.tp),
		otelhttp.WithPropagators(tr.prop),
		otelhttp.WithSpanOptions(trace.WithAttributes(attrRoute.String(route), attrBackend.String(backend), attrRole.String(role))),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return role + " " + backend + " " + spanMethod(r.Method) }),
	)
}

// redactingTransport sits inside otelhttp's client span and keeps secrets
// out of it: url.full with query values redacted, as in mismatch samples
// (otelhttp records the whole query), and errors, of the call and of the
// answer's body, with quoted text elided (Go's parsers and the direct
// path's reader quote the line they refused, which may be a Set-Cookie).
type redactingTransport struct{ http.RoundTripper }

func (t redactingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.RawQuery != "" || strings.IndexByte(r.URL.Path, ';') >= 0 {
		u := *r.URL
		u.RawQuery = ""
		trace.SpanFromContext(r.Context()).SetAttributes(attrURLFull.String(redactQuery(u.String(), r.URL.RawQuery)))
	}
	resp, err := t.RoundTripper.RoundTrip(r)
	if err != nil {
		return resp, elide(err)
	}
	if _, tunnel := resp.Body.(io.Writer); !tunnel {
		// (A 101's body is the tunnel, an io.ReadWriteCloser that
		// ReverseProxy writes to: left as it is.)
		resp.Body = elidingBody{resp.Body}
	}
	return resp, nil
}

// attrURLFull and attrURLPath are OpenTelemetry's url.full and url.path,
// which otelhttp sets first.
const (
	attrURLFull = attribute.Key("url.full")
	attrURLPath = attribute.Key("url.path")
)

// elidingBody reports the errors of an answer's body as elided.
type elidingBody struct{ io.ReadCloser }

func (b elidingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = elide(err)
	}
	return n, err
}

// spanMethod is a method as span names carry it: a client may send any
// token as a method, and span names become metric labels in span-metrics
// pipelines, so methods outside the standard set are "_OTHER", as
// otelhttp's own attributes have them.
func spanMethod(m string) string {
	if isStandardMethod(m) {
		return m
	}
	return "_OTHER"
}

// annotate names the server span after the route's pattern (otelhttp,
// outside the router, cannot) and records the split decision.
func (tr *tracing) annotate(ctx context.Context, r *http.Request, rt *route, backend string, percent float64) {
	if tr == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	pattern := rt.pattern
	if pattern == "" {
		pattern = defaultRoute
	}
	name := spanMethod(r.Method) + " " + pattern
	span.SetName(name)
	span.SetAttributes(attrRoute.String(rt.name), attrBackend.String(backend), attrPercent.Float64(percent))
}

// clientAddress sets the server span's client.address to the client as
// the split sees it, first thing, so that requests refused before
// routing have it too: otelhttp takes the first X-Forwarded-For entry,
// which any client can write.
func (tr *tracing) clientAddress(ctx context.Context, r *http.Request, t *table) {
	if tr == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attrClientAddress.String(clientIP(r, t.trusted)))
	}
}

// fellBack records on the server span why the monolith answered after
// the service failed (answeredBy names the monolith).
func (tr *tracing) fellBack(ctx context.Context, reason string) {
	if tr == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attrFallback.String(reason))
	}
}

// answeredBy names on the server span the side that answered (backend:
// the one the split chose, the monolith after a fallback, or "proxy"),
// as metrics and the access log have it.
func (tr *tracing) answeredBy(ctx context.Context, backend string) {
	if tr == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attrBackend.String(backend))
	}
}

// markCut marks the server span of an answer cut mid-body (the upstream
// failed after its head was passed on): the client got a truncated
// answer, whose status alone looks fine. A client that went away cut it
// itself: not the proxy's error.
func markCut(ctx context.Context) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() && ctx.Err() == nil {
		span.SetStatus(codes.Error, "answer cut mid-body")
	}
}

// observe records a duration, with the trace id as exemplar when the
// request's trace is sampled, so a slow bucket on a dashboard leads to a
// trace.
func observe(o prometheus.Observer, ctx context.Context, d time.Duration) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(d.Seconds())
}

// traceID is the request's trace id for logs, "" when untraced.
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}
