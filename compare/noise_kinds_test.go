package compare_test

import (
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// R4-6. A list the monolith returns in another order holding elements of
// different kinds (objects and nulls): the service's answer, the same
// elements in a third order, differs from the primary by type at element
// places. movedShapes["/items/*"] holds shapeType (the monolith's own
// answers differed so there), but drops admits an element-level
// difference only of value shape, and currentAt has nothing at /items/2
// (A and B agree there): a false mismatch. doc.go: "Within their elements
// a difference is that request's noise where the monolith's two answers
// differed so at that place in some element".
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
