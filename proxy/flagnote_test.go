package proxy

import (
	"log/slog"
	"strings"
	"testing"
)

// TestTargetedFlagWithoutAnEmptyContextValue: a rule that picks the
// variant from the request (variants named after the method) has no value
// for the empty context status pages use; that is no broken flag, and
// /api/routes and the log must not say that the route's traffic stays on
// the monolith while every request reaches the service.
func TestTargetedFlagWithoutAnEmptyContextValue(t *testing.T) {
	t.Parallel()
	flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"v-GET":100,"v-POST":0},"defaultVariant":"v-GET",
	  "targeting":{"cat":["v-",{"var":"method"}]}}}}`
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig, flags, nil, nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := e.servedBy(20, "/api/orders/1"); got["service"] != 20 {
		t.Fatalf("served %v; want all 20 GETs on the service (v-GET = 100)", got)
	}
	if v := e.metric(`strangler_flag_errors_total{flag="orders-percent"}`); v != 0 {
		t.Fatalf("flag errors %v; want 0", v)
	}
	st := e.routeStatus()
	if st.FlagError != "" || !strings.Contains(st.FlagNote, "targeting rule decides each request") {
		t.Errorf("/api/routes flag_error %q, flag_note %q; want no error and a note", st.FlagError, st.FlagNote)
	}
	if l := logs.String(); strings.Contains(l, "traffic stays on the monolith") || !strings.Contains(l, "targeting rule decides each request") {
		t.Errorf("log:\n%s\nwant the rule's note, not that the traffic stays on the monolith", l)
	}
}

// TestTargetedFlagWithABrokenDefault: a rule that places only two users
// leaves every other request to the default variant; a default that is
// no percentage is the flag's problem, an error, not a note.
func TestTargetedFlagWithABrokenDefault(t *testing.T) {
	t.Parallel()
	for _, def := range []string{
		`"variants":{"on":"10","all":100},"defaultVariant":"on"`,
		`"variants":{"on":150,"all":100},"defaultVariant":"on"`,
	} {
		flags := `{"flags":{"orders-percent":{"state":"ENABLED",` + def +
			`,"targeting":{"if":[{"in":[{"var":"targetingKey"},["qa-alice","qa-bob"]]},"all",null]}}}}`
		e := newEnvNoCheck(t, basicConfig, flags)
		if got := e.servedBy(20, "/api/orders/1"); got["monolith"] != 20 {
			t.Fatalf("%s: served %v, want all 20 on the monolith", def, got)
		}
		if st := e.routeStatus(); st.FlagError == "" || st.FlagNote != "" {
			t.Errorf("%s: flag_error %q, flag_note %q; want an error", def, st.FlagError, st.FlagNote)
		}
	}
}

// TestTargetedFlagWithoutDefault: without a default variant, the requests
// a rule places follow it and the others go to the monolith; a note says
// so, not an error that the route is all on the monolith.
func TestTargetedFlagWithoutDefault(t *testing.T) {
	t.Parallel()
	flags := `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"GET":100,"POST":0},"defaultVariant":null,
	  "targeting":{"var":"method"}}}}`
	var logs lockedBuffer
	e := startEnv(t, basicConfig, flags, nil, nil, false, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := e.servedBy(20, "/api/orders/1"); got["service"] != 20 {
		t.Fatalf("served %v, want all 20 GETs on the service", got)
	}
	st := e.routeStatus()
	if st.FlagError != "" || !strings.Contains(st.FlagNote, "those it does not place go to the monolith") {
		t.Errorf("flag_error %q, flag_note %q; want a note", st.FlagError, st.FlagNote)
	}
	if strings.Contains(logs.String(), "traffic stays on the monolith") {
		t.Errorf("log:\n%s\nsays the route is all on the monolith", logs.String())
	}
}
