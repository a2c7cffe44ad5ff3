package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracingConfigured reports whether the environment asks for traces, the
// standard OpenTelemetry way. autoexport alone would default to OTLP on
// localhost when nothing is set; an operator who configured nothing wants
// no tracing, and tracing that is off costs the proxy nothing.
func tracingConfigured() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" {
		return e != "none"
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// otelSettings names the OTEL_* variables that choose the exporter, with
// their values, for an error that says which one to fix.
func otelSettings() string {
	var set []string
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if v, ok := os.LookupEnv(k); ok {
			set = append(set, fmt.Sprintf("%s=%q", k, v))
		}
	}
	if len(set) == 0 {
		return "the OTEL_* environment"
	}
	return strings.Join(set, " ")
}

// propagators are the values OTEL_PROPAGATORS accepts (autoprop's).
const propagators = "tracecontext, baggage, b3, b3multi, jaeger, xray, ottrace or none"

// propagatorFromEnv builds the trace context propagator OTEL_PROPAGATORS
// names, a comma-separated list: by default (unset or empty) W3C
// tracecontext and baggage; "none", alone or in the list, propagates
// nothing. A name it does not know is an error, not a warning and the
// default: a proxy that quietly spoke W3C to a B3 mesh would split every
// trace in two.
func propagatorFromEnv() (propagation.TextMapPropagator, error) {
	v := os.Getenv("OTEL_PROPAGATORS")
	var names []string
	for _, n := range strings.Split(v, ",") {
		// The specification reads enum values case-insensitively.
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		// Unset, empty or only commas: the specification's default
		// (autoprop would read no names as no propagation at all).
		names = []string{"tracecontext", "baggage"}
	}
	prop, err := autoprop.TextMapPropagator(names...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTEL_PROPAGATORS=%q: %w (want %s)", v, err, propagators)
	}
	return prop, nil
}

// setupTracing builds a tracer provider from the OTEL_* environment
// (exporter, endpoint, sampler, service name and resource attributes) and
// the propagator OTEL_PROPAGATORS names, or returns nils when tracing is
// not configured (OTEL_PROPAGATORS is then not read: nothing propagates).
// shutdown flushes spans.
func setupTracing(ctx context.Context) (tp *sdktrace.TracerProvider, prop propagation.TextMapPropagator, shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	if !tracingConfigured() {
		return nil, nil, off, nil
	}
	// Before the exporter, which would then need shutting down.
	prop, err = propagatorFromEnv()
	if err != nil {
		return nil, nil, nil, err
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tracing: %s: %w", otelSettings(), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, nil, off, nil
	}
	tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	return tp, prop, tp.Shutdown, nil
}
