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
