package main

// OTEL_PROPAGATORS chooses the trace context format the proxy reads from
// clients and writes to upstreams, as the OpenTelemetry environment
// specification has it. Each test runs the real `strangler serve` with the
// console exporter (spans to the child's stdout, discarded) and
// access_log on, whose trace_id is the server span's trace.

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	propTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	propSpanID  = "00f067aa0ba902b7"
)

// tracingOn is the environment that turns tracing on, whatever the test
// process's own OTEL_* settings are.
var tracingOn = []string{"OTEL_SDK_DISABLED=", "OTEL_TRACES_EXPORTER=console"}

// propagated starts serve with env, sends one request with hdr and
// returns the headers the monolith got and the access log's trace_id.
func propagated(t *testing.T, hdr http.Header, env ...string) (upstream http.Header, serverTrace string) {
	t.Helper()
	got := make(chan http.Header, 1)
	// Only this test's request is taken: the backend's port may have been
	// another test's, whose pollers still knock (a CI run took one of
	// their requests for this one's, and the wanted request waited out
	// the proxy's timeout behind it).
	path := fmt.Sprintf("/propagated/%d", rand.Uint64())
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		select {
		case got <- r.Header.Clone():
		default:
		}
		io.WriteString(w, "monolith")
	}))
	p := startServe(t, mono, "access_log: true\nroutes: []\n", `{"flags":{}}`, env...)
	req, _ := http.NewRequest("GET", "http://"+p.listen+path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	select {
	case upstream = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the monolith got no request")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			var l struct {
				Msg     string  `json:"msg"`
				Path    string  `json:"path"`
				TraceID *string `json:"trace_id"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "access" && l.Path == path && l.TraceID != nil {
				return upstream, *l.TraceID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access line in the log:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With OTEL_PROPAGATORS=b3 (Zipkin, Istio, Envoy) an incoming single b3
// header is continued (the server span is in its trace) and the upstream
// gets a b3 header of the same trace whose parent is the proxy's client
// span, and no traceparent of another trace beside it. The proxy ignored
// the variable: a new W3C trace, and the client's b3 passed on unchanged.
func TestPropagatorsB3Continued(t *testing.T) {
	t.Parallel()
	incoming := propTraceID + "-" + propSpanID + "-1"
	up, trace := propagated(t, http.Header{"B3": {incoming}}, append(tracingOn, "OTEL_PROPAGATORS=b3")...)
	if trace != propTraceID {
		t.Errorf("server span in trace %q, want the incoming b3 trace %s", trace, propTraceID)
	}
	b3 := up.Get("B3")
	if !strings.HasPrefix(b3, propTraceID+"-") || b3 == incoming || !strings.HasSuffix(b3, "-1") {
		t.Errorf("upstream b3 %q: want trace %s, the proxy's span as parent (not %s), sampled", b3, propTraceID, propSpanID)
	}
	if tp := up.Get("Traceparent"); tp != "" {
		t.Errorf("upstream got a traceparent %q beside b3 %q", tp, b3)
	}
}

// By default (OTEL_PROPAGATORS unset or empty, or tracecontext,baggage
// named) the proxy continues W3C traceparent and passes baggage on, as
// before; a b3 header is not its business and passes unchanged.
func TestPropagatorsDefaultTraceContext(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "tracecontext, baggage"} {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			t.Parallel()
			incoming := "00-" + propTraceID + "-" + propSpanID + "-01"
			b3 := "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
			up, trace := propagated(t, http.Header{"Traceparent": {incoming}, "Baggage": {"tenant=acme"}, "B3": {b3}},
				append(tracingOn, "OTEL_PROPAGATORS="+v)...)
			if trace != propTraceID {
				t.Errorf("server span in trace %q, want %s", trace, propTraceID)
			}
			tp := up.Get("Traceparent")
			if !strings.HasPrefix(tp, "00-"+propTraceID+"-") || tp == incoming {
				t.Errorf("upstream traceparent %q: want trace %s with the proxy's span as parent", tp, propTraceID)
			}
			if got := up.Get("Baggage"); got != "tenant=acme" {
				t.Errorf("upstream baggage %q, want tenant=acme", got)
			}
			if got := up.Get("B3"); got != b3 {
				t.Errorf("upstream b3 %q, want the client's %q untouched", got, b3)
			}
		})
	}
}

// OTEL_PROPAGATORS=b3multi continues X-B3-* headers and writes them
// upstream, not the single b3 header.
func TestPropagatorsB3Multi(t *testing.T) {
	t.Parallel()
	up, trace := propagated(t, http.Header{"X-B3-Traceid": {propTraceID}, "X-B3-Spanid": {propSpanID}, "X-B3-Sampled": {"1"}},
		append(tracingOn, "OTEL_PROPAGATORS=b3multi")...)
	if trace != propTraceID {
		t.Errorf("server span in trace %q, want %s", trace, propTraceID)
	}
	if got := up.Get("X-B3-Traceid"); got != propTraceID {
		t.Errorf("upstream X-B3-TraceId %q, want %s", got, propTraceID)
	}
	if got := up.Get("X-B3-Spanid"); len(got) != 16 || got == propSpanID {
		t.Errorf("upstream X-B3-SpanId %q: want the proxy's client span, not the client's %s", got, propSpanID)
	}
	if got := up.Get("X-B3-Sampled"); got != "1" {
		t.Errorf("upstream X-B3-Sampled %q, want 1", got)
	}
	if b3, tp := up.Get("B3"), up.Get("Traceparent"); b3 != "" || tp != "" {
		t.Errorf("upstream got b3 %q / traceparent %q beside X-B3-*", b3, tp)
	}
}

// The trace context headers of the formats the proxy writes reach the
// upstream only as the proxy wrote them: a client's header the propagator
// read but does not write (the other B3 encoding, X-B3-ParentSpanId, a
// tracestate after a traceparent that could not be read) used to pass
// beside the proxy's, under the client's span or in another trace.
// Headers of other formats, and baggage, pass as sent.
func TestPropagatorsDropStaleTraceContext(t *testing.T) {
	t.Parallel()
	multi := http.Header{"X-B3-Traceid": {propTraceID}, "X-B3-Spanid": {propSpanID},
		"X-B3-Parentspanid": {"1111111111111111"}, "X-B3-Flags": {"1"}}
	for _, tc := range []struct {
		name, propagators string
		in                http.Header
		trace             string      // the server span's trace; "" any other
		want              []string    // headers that must carry the trace
		gone              []string    // headers it must not
		kept              http.Header // headers it must get as sent
	}{
		{name: "b3 single after multi", propagators: "b3", in: multi, trace: propTraceID,
			want: []string{"B3"}, gone: []string{"X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Flags", "X-B3-Sampled"}},
		{name: "b3multi after single", propagators: "b3multi",
			in:    http.Header{"B3": {propTraceID + "-" + propSpanID + "-d-1111111111111111"}, "X-B3-Parentspanid": {"1111111111111111"}},
			trace: propTraceID, want: []string{"X-B3-Traceid"}, gone: []string{"B3", "X-B3-Parentspanid"}},
		{name: "tracestate after an unreadable traceparent", propagators: "tracecontext,baggage",
			in:   http.Header{"Traceparent": {"00-" + propTraceID + "-0000000000000000-01"}, "Tracestate": {"vendor=client"}, "Baggage": {"tenant=acme"}},
			want: []string{"Traceparent"}, gone: []string{"Tracestate"}, kept: http.Header{"Baggage": {"tenant=acme"}}},
		{name: "other formats pass", propagators: "tracecontext", in: multi,
			want: []string{"Traceparent"}, kept: multi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, trace := propagated(t, tc.in, append(tracingOn, "OTEL_PROPAGATORS="+tc.propagators)...)
			if tc.trace != "" && trace != tc.trace {
				t.Errorf("server span in trace %q, want the client's %s", trace, tc.trace)
			}
			if tc.trace == "" && (trace == "" || trace == propTraceID) {
				t.Errorf("server span in trace %q, want one of its own", trace)
			}
			for _, h := range tc.want {
				if len(up[h]) != 1 || !strings.Contains(up[h][0], trace) {
					t.Errorf("upstream %s %q, want one of trace %s", h, up[h], trace)
				}
			}
			for _, h := range tc.gone {
				if v, ok := up[h]; ok {
					t.Errorf("upstream got the client's %s %q", h, v)
				}
			}
			for h, v := range tc.kept {
				if !slices.Equal(up[h], v) {
					t.Errorf("upstream %s %q, want %q as sent", h, up[h], v)
				}
			}
		})
	}
}

// OTEL_PROPAGATORS=none (alone or in a list) propagates nothing: each
// request starts its own trace, and nothing is written upstream (the
// client's own headers pass on as any header does).
func TestPropagatorsNone(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"none", "tracecontext,none"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			incoming := "00-" + propTraceID + "-" + propSpanID + "-01"
			up, trace := propagated(t, http.Header{"Traceparent": {incoming}}, append(tracingOn, "OTEL_PROPAGATORS="+v)...)
			if trace == "" || trace == propTraceID {
				t.Errorf("server span in trace %q: want a trace of its own (tracing on), not the client's", trace)
			}
			if got := up.Get("Traceparent"); got != incoming {
				t.Errorf("upstream traceparent %q, want the client's %q as sent", got, incoming)
			}
			for _, h := range []string{"B3", "X-B3-Traceid", "Uber-Trace-Id", "Baggage", "Tracestate"} {
				if got := up.Get(h); got != "" {
					t.Errorf("upstream got %s %q", h, got)
				}
			}
		})
	}
}

// With tracing off (no exporter configured) OTEL_PROPAGATORS installs
// nothing: headers pass as they came, there is no trace, and a value the
// proxy would refuse with tracing on is not read.
func TestPropagatorsTracingOff(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"b3", "b4"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			incoming := propTraceID + "-" + propSpanID + "-1"
			up, trace := propagated(t, http.Header{"B3": {incoming}},
				"OTEL_SDK_DISABLED=", "OTEL_TRACES_EXPORTER=", "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
				"OTEL_PROPAGATORS="+v)
			if trace != "" {
				t.Errorf("access log trace_id %q with tracing off", trace)
			}
			if got, tp := up.Get("B3"), up.Get("Traceparent"); got != incoming || tp != "" {
				t.Errorf("upstream b3 %q traceparent %q, want the client's b3 as sent and nothing added", got, tp)
			}
		})
	}
}

// serveFails runs serve with env and returns its exit code and stderr; it
// must exit on its own.
func serveFails(t *testing.T, env ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	// Port 0: serve may listen before it fails, and a port freeAddrs drew
	// may be taken by then by another test's process (a CI run failed
	// with "address already in use" instead of the error wanted).
	cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nmonolith: http://127.0.0.1:1\nflags: {file: flags.json}\nroutes: []\n"
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flags.json"), []byte(`{"flags":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := command(t, "serve", "--config", filepath.Join(dir, "s.yaml"))
	cmd.Env = append(cmd.Env, env...)
	var logs lockedBuffer
	cmd.Stderr = &logs
	code := exitCode(t, cmd, 20*time.Second, "serve still running with a bad setting", &logs)
	return code, logs.String()
}

// A propagator name the proxy does not know is a startup error naming the
// variable and its value, exit 1, as a bad OTEL_TRACES_EXPORTER is: the
// SDK's own way is a warning and the W3C default, which in a B3 mesh
// splits every trace in two.
func TestPropagatorsUnknownRefused(t *testing.T) {
	t.Parallel()
	wantCode, ref := serveFails(t, "OTEL_SDK_DISABLED=", "OTEL_TRACES_EXPORTER=bogus")
	if wantCode != 1 || !strings.HasPrefix(ref, `strangler: tracing: OTEL_TRACES_EXPORTER="bogus": `) {
		t.Fatalf("bad OTEL_TRACES_EXPORTER: code %d, stderr %q; the reference this test follows changed", wantCode, ref)
	}
	for _, v := range []string{"b4", "tracecontext,b4"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			code, stderr := serveFails(t, append(tracingOn, "OTEL_PROPAGATORS="+v)...)
			want := fmt.Sprintf("strangler: tracing: OTEL_PROPAGATORS=%q: unknown propagator: b4 (want tracecontext, baggage, b3, b3multi, jaeger, xray, ottrace or none)\n", v)
			if code != wantCode || stderr != want {
				t.Errorf("code %d, stderr %q; want %d, %q", code, stderr, wantCode, want)
			}
		})
	}
}

// OTEL_PROPAGATORS's names are read case-insensitively (the OpenTelemetry
// environment specification's rule for enum values), and a value of only
// commas is the default, not "no names": autoprop reads none as no
// propagation, which turned propagation off without a word (a review).
func TestPropagatorsCaseAndEmptyEntries(t *testing.T) {
	for _, c := range []struct {
		value  string
		fields []string // sorted
	}{
		{",", []string{"baggage", "traceparent", "tracestate"}},
		{" , ,", []string{"baggage", "traceparent", "tracestate"}},
		{"B3", []string{"b3"}},
		{"TraceContext, Baggage", []string{"baggage", "traceparent", "tracestate"}},
		{"NONE", nil},
	} {
		t.Run(c.value, func(t *testing.T) {
			t.Setenv("OTEL_PROPAGATORS", c.value)
			p, err := propagatorFromEnv()
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			got := p.Fields()
			slices.Sort(got)
			if !slices.Equal(got, c.fields) {
				t.Errorf("fields %q, want %q", got, c.fields)
			}
		})
	}
}
