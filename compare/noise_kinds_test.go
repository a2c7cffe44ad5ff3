package compare_test

import (
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// A list the monolith returns in another order holding elements of
// different kinds (objects and nulls): the service's answer, the same
// elements in a third order, differs from the primary by kind at element
// places, as the monolith's two answers differed there. doc.go: "Within
// their elements a difference is that request's noise where the
// monolith's two answers differed so at that place in some element".
func TestMovedListOfMixedKindsInAThirdOrder(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	a := jsonResp(`{"items":[{"id":1},null,{"id":2}]}`)
	b := jsonResp(`{"items":[null,{"id":1},{"id":2}]}`)
	service := jsonResp(`{"items":[{"id":1},{"id":2},null]}`)
	if res := compare.NewNoise(0).Compare(a, service, a, b, r); res.Outcome != compare.Match {
		t.Errorf("the same elements in a third order: %v %s, want a match", res.Outcome, diffsJSON(t, res.Differences))
	}
}
