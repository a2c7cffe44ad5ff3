package compare_test

import (
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// TestMarkEchoedBackIsNoDifference: a service that echoes its request's
// headers puts the proxy's mark, which only the copy carried, in the
// shadow's answer; that alone is not a mismatch, and nothing else about
// such a member is hidden.
func TestMarkEchoedBackIsNoDifference(t *testing.T) {
	t.Parallel()
	marked := mustRules(t, compare.RulesConfig{Mark: "X-Strangler-Shadow: 1"})
	unmarked := mustRules(t, compare.RulesConfig{})
	const primary = `{"headers":{"Accept":["*/*"]},"url":"/get"}`
	tests := []struct {
		name, shadow string
		want         string // pointer of the one difference, or "" for a match
	}{
		{"Go's http.Header", `{"headers":{"Accept":["*/*"],"X-Strangler-Shadow":["1"]},"url":"/get"}`, ""},
		{"a lower-case string (Node's req.headers)", `{"url":"/get","headers":{"x-strangler-shadow":"1","Accept":["*/*"]}}`, ""},
		{"escaped name and value", `{"headers":{"Accept":["*/*"],"X-Strangler-\u0053hadow":["\u0031"]},"url":"/get"}`, ""},
		{"another value", `{"headers":{"Accept":["*/*"],"X-Strangler-Shadow":["2"]},"url":"/get"}`, "/headers/X-Strangler-Shadow"},
		{"the value among others", `{"headers":{"Accept":["*/*"],"X-Strangler-Shadow":["1","1"]},"url":"/get"}`, "/headers/X-Strangler-Shadow"},
		{"a number", `{"headers":{"Accept":["*/*"],"X-Strangler-Shadow":1},"url":"/get"}`, "/headers/X-Strangler-Shadow"},
		{"a list of a list", `{"headers":{"Accept":["*/*"],"X-Strangler-Shadow":[["1"]]},"url":"/get"}`, "/headers/X-Strangler-Shadow"},
		{"another name", `{"headers":{"Accept":["*/*"],"X-Strangler-Shadows":["1"]},"url":"/get"}`, "/headers/X-Strangler-Shadows"},
		{"the echo does not hide a real difference", `{"headers":{"Accept":["text/html"],"X-Strangler-Shadow":["1"]},"url":"/get"}`, "/headers/Accept/0"},
	}
	for _, tt := range tests {
		res := compare.Compare(jsonResp(primary), jsonResp(tt.shadow), marked)
		got := ""
		for _, d := range res.Differences {
			got += d.Pointer
		}
		if got != tt.want {
			t.Errorf("%s: differences %s, want %q", tt.name, diffsJSON(t, res.Differences), tt.want)
		}
		if plain := compare.Compare(jsonResp(primary), jsonResp(tt.shadow), unmarked); plain.Outcome != compare.Mismatch {
			t.Errorf("%s: without a mark: %v, want a mismatch", tt.name, plain.Outcome)
		}
	}

	// The primary never carried the mark: its echo there is the
	// primary's own, a difference.
	res := compare.Compare(jsonResp(`{"X-Strangler-Shadow":"1"}`), jsonResp(`{}`), marked)
	if res.Outcome != compare.Mismatch {
		t.Errorf("mark in the primary's answer only: %v, want a mismatch", res.Outcome)
	}
	// Noise: the monolith's two answers both carry it (the service
	// served the client) or one does (the monolith did); either way the
	// service's answer matches.
	noise := compare.NewNoise(0)
	echo := `{"headers":{"Accept":["*/*"],"X-Strangler-Shadow":["1"]},"url":"/get"}`
	if res := noise.Compare(jsonResp(primary), jsonResp(echo), jsonResp(echo), jsonResp(echo), marked); res.Outcome != compare.Match {
		t.Errorf("service primary, noise on: %v %s, want a match", res.Outcome, diffsJSON(t, res.Differences))
	}
	if res := noise.Compare(jsonResp(primary), jsonResp(echo), jsonResp(primary), jsonResp(echo), marked); res.Outcome != compare.Match {
		t.Errorf("monolith primary, noise on: %v %s, want a match", res.Outcome, diffsJSON(t, res.Differences))
	}
	if noise.Len() != 0 {
		t.Errorf("the mark was learned as noise: %q", noise.Fields())
	}
}

func TestMarkRejects(t *testing.T) {
	t.Parallel()
	for _, mark := range []string{"X-Shadow", "X Shadow: 1", "X-Shadow: a\nb", ": 1"} {
		_, err := compare.NewRules(compare.RulesConfig{Mark: mark})
		if err == nil || !strings.Contains(err.Error(), "mark") {
			t.Errorf("Mark %q: %v, want an error naming the mark", mark, err)
		}
	}
}
