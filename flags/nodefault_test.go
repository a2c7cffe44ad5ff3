package flags

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// sharedFile is a fleet's flag file: a route's percent flag next to an
// application's own flag whose defaultVariant is null, as flagd's schema
// allows ("use the code-defined default"), and a route flag that relies on
// its rule alone.
const sharedFile = `{
  "flags": {
    "orders": {"state": "ENABLED", "variants": {"on": 50}, "defaultVariant": "on"},
    "new-checkout-ui": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": null,
      "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", null]}},
    "reads": {"state": "ENABLED", "variants": {"all": 100}, "defaultVariant": null,
      "targeting": {"if": [{"==": [{"var": "method"}, "GET"]}, "all", null]}}
  }
}`

// TestFlagWithoutDefaultVariant: such a flag does not make the file
// invalid (serve would crash-loop, and the 3 AM rollback of another route
// would be refused); as a route's percentage it is unusable where no rule
// places the request.
func TestFlagWithoutDefaultVariant(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), sharedFile)
	s, _ := open(t, path) // fails the test if Open refuses a file flagd accepts
	ctx := context.Background()
	if v, err := s.Flag("orders").Percent(ctx, "k", Attrs{}); err != nil || v != 50 {
		t.Errorf("orders = %v, %v; want 50", v, err)
	}
	reads := s.Flag("reads")
	if v, err := reads.Percent(ctx, "k", Attrs{Method: "GET"}); err != nil || v != 100 {
		t.Errorf("reads for a GET = %v, %v; want 100, placed by the rule", v, err)
	}
	if _, err := reads.Percent(ctx, "k", Attrs{Method: "POST"}); !errors.Is(err, ErrNoDefault) {
		t.Errorf("reads for a POST: %v, want ErrNoDefault", err)
	}

	if old, _, err := Ramp(path, "orders", 0); err != nil || old != 50 {
		t.Fatalf("ramp orders 0 (a rollback) = %v, %v; want 50, done", old, err)
	}
	if _, _, err := Ramp(path, "reads", 10); !errors.Is(err, ErrNoDefault) {
		t.Errorf("ramp of a flag without a default variant: %v, want ErrNoDefault", err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckPercent("reads"); !errors.Is(err, ErrNoDefault) {
		t.Errorf("CheckPercent(reads) = %v, want ErrNoDefault (validate refuses it for a route)", err)
	}
}

// TestFlagWithABadState: flagd serves a flag whose state is neither
// ENABLED nor DISABLED as enabled; an application's such flag in a shared
// file does not stop the proxy, and a route's ("disabled", meant to stop
// the route) keeps its route on the monolith instead of sending it
// traffic.
func TestFlagWithABadState(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"flags":{
		"orders": {"state": "ENABLED", "variants": {"on": 50}, "defaultVariant": "on"},
		"app-banner": {"state": "enabled", "variants": {"on": true}, "defaultVariant": "on"},
		"reads": {"state": "disabled", "variants": {"on": 100}, "defaultVariant": "on"},
		"writes": {"state": "Disabled", "variants": {"on": 100, "off": 0}, "defaultVariant": "on",
			"targeting": {"if": [{"==": [{"var": "method"}, "GET"]}, "off", "on"]}}}}`)
	s, _ := open(t, path) // fails the test if Open refuses a file flagd accepts
	ctx := context.Background()
	if v, err := s.Flag("orders").Percent(ctx, "k", Attrs{}); err != nil || v != 50 {
		t.Errorf("orders = %v, %v; want 50", v, err)
	}
	for _, name := range []string{"reads", "writes"} {
		if v, err := s.Flag(name).Percent(ctx, "k", Attrs{Method: "POST"}); !errors.Is(err, ErrState) {
			t.Errorf("%s = %v, %v; want ErrState (flagd would send the route traffic)", name, v, err)
		}
		if err := s.Check(name); !errors.Is(err, ErrState) {
			t.Errorf("Check(%s) = %v, want ErrState", name, err)
		}
	}
}

// TestRampToZeroWithoutDefaultVariant: without a default variant there is
// nothing to write, and where no rule can place a request on the service
// (no rule, or the flag DISABLED) a ramp to 0 is a rollback already done:
// said, never refused.
func TestRampToZeroWithoutDefaultVariant(t *testing.T) {
	t.Parallel()
	const file = `{"flags":{
		"off": {"state": "DISABLED", "variants": {"on": 100}, "defaultVariant": null},
		"plain": {"state": "ENABLED", "variants": {"on": 100}, "defaultVariant": null},
		"ruled": {"state": "ENABLED", "variants": {"on": 100}, "defaultVariant": null,
			"targeting": {"if": [{"==": [{"var": "method"}, "GET"]}, "on", null]}}}}`
	path := writeFlags(t, t.TempDir(), file)
	for _, flag := range []string{"off", "plain"} {
		old, note, err := Ramp(path, flag, 0)
		if err != nil || old != 0 || !strings.Contains(note, "nothing written") {
			t.Errorf("ramp %s 0 = %v, %q, %v; want done, with a note", flag, old, note, err)
		}
	}
	if _, _, err := Ramp(path, "plain", 10); !errors.Is(err, ErrNoDefault) {
		t.Errorf("ramp plain 10: %v, want ErrNoDefault", err)
	}
	// The rule still places GETs on the service: not a rollback.
	if _, _, err := Ramp(path, "ruled", 0); !errors.Is(err, ErrNoDefault) {
		t.Errorf("ramp ruled 0: %v, want ErrNoDefault", err)
	}
	if b, _ := os.ReadFile(path); string(b) != file {
		t.Errorf("the file changed:\n%s", b)
	}
}

// TestRampOfABadState: a flag whose state is neither ENABLED nor DISABLED
// keeps its route on the monolith; a ramp up would read as done and
// change nothing: refused, as for DISABLED; a ramp to 0 is done already.
func TestRampOfABadState(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"flags":{
		"orders": {"state": "disabled", "variants": {"on": 100}, "defaultVariant": "on"},
		"ruled": {"state": "Disabled", "variants": {"on": 100}, "defaultVariant": null,
			"targeting": {"if": [{"==": [{"var": "method"}, "GET"]}, "on", null]}}}}`)
	if _, _, err := Ramp(path, "orders", 25); !errors.Is(err, ErrState) {
		t.Errorf("ramp up: %v, want ErrState", err)
	}
	for _, flag := range []string{"orders", "ruled"} {
		if _, note, err := Ramp(path, flag, 0); err != nil || !strings.Contains(note, "neither ENABLED nor DISABLED") {
			t.Errorf("ramp %s 0: %q, %v; want done, with a note", flag, note, err)
		}
	}
}

// TestFlagDefinedTwice: the last definition counts (flagd's rule), and an
// editor shows the first: validate says so with both lines, and ramp,
// which cannot tell which one the operator means, refuses and says why.
func TestFlagDefinedTwice(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"flags": {
  "orders": {"state": "ENABLED", "variants": {"on": 10}, "defaultVariant": "on"},
  "app": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"},
  "orders": {"state": "ENABLED", "variants": {"on": 20}, "defaultVariant": "on"}
}}`)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckPercent("orders"); !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "lines 2, 4") {
		t.Errorf("CheckPercent: %v, want ErrDuplicate naming lines 2 and 4", err)
	}
	if err := f.CheckPercent("app"); errors.Is(err, ErrDuplicate) {
		t.Errorf("CheckPercent(app): %v", err)
	}
	if _, _, err := Ramp(path, "orders", 0); !errors.Is(err, ErrDuplicate) {
		t.Errorf("ramp: %v, want ErrDuplicate", err)
	}
	s, _ := open(t, path) // fails the test if Open refuses a file flagd accepts
	if v, err := s.Flag("orders").Percent(context.Background(), "k", Attrs{}); err != nil || v != 20 {
		t.Errorf("orders = %v, %v; want 20, the last definition, as flagd", v, err)
	}
}

// TestFlagDefinedInTwoFlagsObjects: a "flags" key given twice, or also as
// "Flags" (which decoding takes for it), merges both objects: a flag in
// both is defined twice.
func TestFlagDefinedInTwoFlagsObjects(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"{\"flags\": {\"orders\": {\"state\": \"ENABLED\", \"variants\": {\"on\": 10}, \"defaultVariant\": \"on\"}},\n \"flags\": {\"orders\": {\"state\": \"ENABLED\", \"variants\": {\"on\": 100}, \"defaultVariant\": \"on\"}}}",
		"{\"Flags\": {\"orders\": {\"state\": \"ENABLED\", \"variants\": {\"on\": 10}, \"defaultVariant\": \"on\"}},\n \"flags\": {\"orders\": {\"state\": \"ENABLED\", \"variants\": {\"on\": 100}, \"defaultVariant\": \"on\"}}}",
	} {
		f, err := Load(writeFlags(t, t.TempDir(), doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.CheckPercent("orders"); !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "lines 1, 2") {
			t.Errorf("%s: %v, want ErrDuplicate on lines 1 and 2", doc, err)
		}
	}
}
