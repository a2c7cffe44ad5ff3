package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestShadowNoiseKeepsMissingElements: a monolith whose list grew by one
// element between its two answers (a feed, a new order) must not teach
// that elements may go missing: a service that answers an empty list where
// the monolith answers two orders is a mismatch every time. (Before noise
// had shapes, "/items/*" was learned and the next two were matches.)
func TestShadowNoiseKeepsMissingElements(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	monolith := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) == 2 { // the monolith's second answer: one order more
			fmt.Fprint(w, `{"items":[{"id":1},{"id":2},{"id":3}]}`)
			return
		}
		fmt.Fprint(w, `{"items":[{"id":1},{"id":2}]}`)
	})
	service := answer(200, `{"items":[]}`)
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n"), flagJSON("orders-percent", 0), monolith, service)
	for i := range 3 {
		if resp, body := e.get("/api/orders/7", "X-User-Id", fmt.Sprint("u", i)); resp.StatusCode != 200 {
			t.Fatalf("client got %d %q", resp.StatusCode, body)
		}
	}
	got := e.comparisons(3)
	_, routes := e.adminGet("/api/routes")
	if got["mismatch"] != 3 {
		t.Errorf("service answers [] where the monolith answers 2 items: comparisons %v, want 3 mismatches; routes %s", got, routes)
	}
}

// A monolith's extra answer that is cut (over max_body here) teaches no
// noise, but the pair is still compared: it was skipped as too_large,
// though primary and shadow were whole.
func TestShadowComparedWhenExtraAnswerIsCut(t *testing.T) {
	t.Parallel()
	monolith := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// The extra copy (marked as every copy is; it may arrive before
		// the client's own request): longer than max_body.
		if r.Header.Get("X-Strangler-Shadow") != "" {
			fmt.Fprintf(w, `{"items":[%q]}`, strings.Repeat("x", 200))
			return
		}
		fmt.Fprint(w, `{"items":[1,2]}`)
	})
	service := answer(200, `{"items":[1,2]}`)
	e := newEnv(t, shadowConfig("      percent: 100\n      noise: true\n      max_body: 64\n"), flagJSON("orders-percent", 0), monolith, service)
	if resp, body := e.get("/api/orders/7", "X-User-Id", "u"); resp.StatusCode != 200 {
		t.Fatalf("client got %d %q", resp.StatusCode, body)
	}
	if got := e.comparisons(1); got["match"] != 1 {
		t.Errorf("comparisons %v, want 1 match", got)
	}
	if v := e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`); v > 0 {
		t.Errorf("skipped as too_large: %v", v)
	}
}
