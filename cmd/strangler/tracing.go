package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
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

// setupTracing builds a tracer provider from the OTEL_* environment
// (exporter, endpoint, sampler, service name and resource attributes), or
// returns nil when tracing is not configured. shutdown flushes spans.
func setupTracing(ctx context.Context) (tp *sdktrace.TracerProvider, shutdown func(context.Context) error, err error) {
	if !tracingConfigured() {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %s: %w", otelSettings(), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, func(context.Context) error { return nil }, nil
	}
	tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	return tp, tp.Shutdown, nil
}
