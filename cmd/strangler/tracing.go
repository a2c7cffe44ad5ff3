package main

import (
	"context"
	"errors"
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

// setupTracing builds a tracer provider from the OTEL_* environment
// (exporter, endpoint, sampler, service name and resource attributes), or
// returns nil when tracing is not configured. shutdown flushes spans.
func setupTracing(ctx context.Context) (tp *sdktrace.TracerProvider, shutdown func(context.Context) error, err error) {
	if !tracingConfigured() {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, errors.Join(errors.New("tracing (OTEL_* environment)"), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, func(context.Context) error { return nil }, nil
	}
	tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	return tp, tp.Shutdown, nil
}
