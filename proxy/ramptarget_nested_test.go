package proxy

import (
	"strings"
	"testing"
)

// The rule meant for a misspelt flag key of the route (flag_name:) does
// not refuse an unknown key deeper under the route (a typo inside eject:
// or timeouts:, which cannot name a flag): a 3 AM rollback must not wait
// for it.
func TestRampTargetNestedUnknownKeyDoesNotRefuse(t *testing.T) {
	for _, nested := range []string{
		"    eject: {consecutive_failure: 3}\n",
		"    timeouts: {respone_header: 1s}\n",
	} {
		cfg := rampHead + `routes:
  - name: orders
    path: /api/orders/*
    service: http://127.0.0.1:8082
` + nested
		flag, problems, err := rampTargetOf(t, cfg, "orders")
		if err != nil {
			t.Errorf("%q: ramp refused (%v; problems %q): a typo nested under the route cannot change its flag",
				strings.TrimSpace(nested), err, problems)
		} else if flag != "orders-percent" {
			t.Errorf("flag %q", flag)
		}
	}
}
