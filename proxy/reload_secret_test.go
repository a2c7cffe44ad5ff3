package proxy

import (
	"strings"
	"testing"
)

// TestSecretHeaderAddedByReloadIsRedactedInKeptSamples: a header made
// secret by a reload (often because a sample showed it) is redacted in the
// samples kept from before, not only in later ones.
func TestSecretHeaderAddedByReloadIsRedactedInKeptSamples(t *testing.T) {
	t.Parallel()
	cfg := shadowConfig("      percent: 100\n")
	e := newEnv(t, cfg, flagJSON("orders-percent", 0),
		answer(200, `{"a":1}`, "X-Api-Key", "monolith-key-123"), answer(200, `{"a":1}`, "X-Api-Key", "service-key-456"))
	e.get("/api/orders/1", "X-User-Id", "u")
	if got := e.comparisons(1); got["mismatch"] != 1 {
		t.Fatalf("comparisons %v, want a mismatch", got)
	}
	if _, body := e.adminGet("/api/diffs?route=orders"); !strings.Contains(body, "monolith-key-123") {
		t.Fatalf("the sample does not show the header before it is secret:\n%s", body)
	}
	e.rewriteConfig("secret_headers: [x-api-key]\n" + cfg)
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Fatal(err)
	}
	_, body := e.adminGet("/api/diffs?route=orders")
	if strings.Contains(body, "key-123") || strings.Contains(body, "key-456") || !strings.Contains(body, "[redacted]") {
		t.Errorf("after secret_headers named it, the kept sample still shows its values:\n%s", body)
	}
}
