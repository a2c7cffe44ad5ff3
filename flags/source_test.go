package flags

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRefusesBadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string // "" with missing: no file at all
		missing bool
		want    string
	}{
		{name: "missing", missing: true, want: "no such file or directory"},
		{name: "bad JSON", content: `{"flags":{"a":`, want: "truncated"},
		{name: "no flags", content: `{}`, want: `no "flags" object`},
		{name: "bad defaultVariant", content: `{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"off"}}}`,
			want: `flag "a": defaultVariant "off" is not one of its variants`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "flags.json")
			if !tt.missing {
				writeFlags(t, filepath.Dir(path), tt.content)
			}
			s, err := Open(context.Background(), Options{File: path})
			if err == nil {
				_ = s.Close(context.Background())
				t.Fatal("Open accepted a bad file")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open error = %q, want it to name %s and contain %q", err, path, tt.want)
			}
		})
	}
}

// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
func TestPercentPlainFlagIsCached(t *testing.T) {
	s, _ := open(t, writeFlags(t, t.TempDir(), plain))
	f := s.Flag("orders")
	if f != s.Flag("orders") {
		t.Error("Flag returned a new handle for the same name")
	}
	if f.Name() != "orders" {
		t.Errorf("Name() = %q", f.Name())
	}
	ctx := context.Background()
	if v, err := f.Percent(ctx, "user-1", Attrs{Route: "orders", Method: "GET", Path: "/x"}); v != 10 || err != nil {
		t.Fatalf("Percent = %v, %v; want 10", v, err)
	}
	if v, err := f.Current(); v != 10 || err != nil {
		t.Fatalf("Current = %v, %v; want 10", v, err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = f.Percent(ctx, "user-1", Attrs{Route: "orders", Method: "GET", Path: "/x"})
	})
	if allocs != 0 {
		t.Errorf("Percent on a flag without targeting allocates %v times per call, want 0", allocs)
	}
	// A rule-free error is cached as well.
	missing := s.Flag("missing")
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := missing.Percent(ctx, "user-1", Attrs{}); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Percent on a missing flag allocates %v times per call, want 0", allocs)
	}
}

// targeted has one flag per kind of rule the proxy relies on.
const targeted = `{"flags":{
  "vip": {"state":"ENABLED","variants":{"all":100,"none":0},"defaultVariant":"none",
    "targeting":{"if":[{"in":[{"var":"targetingKey"},["vip-1","vip-2"]]},"all",null]}},
  "no-deletes": {"state":"ENABLED","variants":{"some":30,"none":0},"defaultVariant":"some",
    "targeting":{"if":[{"==":[{"var":"method"},"DELETE"]},"none",null]}},
  "by-route": {"state":"ENABLED","variants":{"some":30,"all":100},"defaultVariant":"some",
    "targeting":{"if":[{"and":[{"==":[{"var":"route"},"orders"]},{"starts_with":[{"var":"path"},"/api/orders/new"]}]},"all",null]}},
  "half": {"state":"ENABLED","variants":{"all":100,"none":0},"defaultVariant":"none",
    "targeting":{"fractional":[{"cat":[{"var":"$flagd.flagKey"},{"var":"targetingKey"}]},["all",50],["none",50]]}},
  "empty-rule": {"state":"ENABLED","variants":{"on":7},"defaultVariant":"on","targeting":{}}
}}`

func TestPercentTargeting(t *testing.T) {
	t.Parallel()
	s, _ := open(t, writeFlags(t, t.TempDir(), targeted))
	ctx := context.Background()
	get := Attrs{Route: "orders", Method: "GET", Path: "/api/orders/1"}
	tests := []struct {
		flag  string
		key   string
		attrs Attrs
		want  float64
	}{
		{"vip", "vip-1", get, 100},
		{"vip", "vip-2", get, 100},
		{"vip", "someone", get, 0},
		{"vip", "", get, 0},
		{"no-deletes", "k", get, 30},
		{"no-deletes", "k", Attrs{Route: "orders", Method: "DELETE", Path: "/api/orders/1"}, 0},
		{"by-route", "k", Attrs{Route: "orders", Method: "GET", Path: "/api/orders/new/7"}, 100},
		{"by-route", "k", Attrs{Route: "payments", Method: "GET", Path: "/api/orders/new/7"}, 30},
		{"by-route", "k", get, 30},
		{"empty-rule", "k", get, 7},
	}
	for _, tt := range tests {
		got, err := s.Flag(tt.flag).Percent(ctx, tt.key, tt.attrs)
		if err != nil || got != tt.want {
			t.Errorf("%s.Percent(%q, %+v) = %v, %v; want %v", tt.flag, tt.key, tt.attrs, got, err, tt.want)
		}
	}
	// An empty rule is no rule (flagd skips "{}"): it is cached.
	if s.Flag("empty-rule").state.Load().perRequest {
		t.Error(`a flag with "targeting": {} is evaluated per request`)
	}
	if !s.Flag("vip").state.Load().perRequest {
		t.Error("a flag with a targeting rule is cached")
	}
	// Current is the empty-context answer: the rule's fallback.
	if v, err := s.Flag("no-deletes").Current(); v != 30 || err != nil {
		t.Errorf("Current() = %v, %v; want 30", v, err)
	}
}

func TestPercentFractionalIsStickyAndSplits(t *testing.T) {
	t.Parallel()
	s, _ := open(t, writeFlags(t, t.TempDir(), targeted))
	f := s.Flag("half")
	ctx := context.Background()
	const n = 2000
	all := 0
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		v, err := f.Percent(ctx, key, Attrs{})
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := f.Percent(ctx, key, Attrs{}); again != v {
			t.Fatalf("key %s got %v then %v", key, v, again)
		}
		if v == 100 {
			all++
		}
	}
	if all < n*45/100 || all > n*55/100 {
		t.Errorf("%d of %d keys in the 50%% bucket", all, n)
	}
}

func TestPercentErrors(t *testing.T) {
	t.Parallel()
	s, _ := open(t, writeFlags(t, t.TempDir(), `{"flags":{
	  "high": {"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"},
	  "negative": {"state":"ENABLED","variants":{"on":-1},"defaultVariant":"on"},
	  "word": {"state":"ENABLED","variants":{"on":"ten"},"defaultVariant":"on"},
	  "off": {"state":"DISABLED","variants":{"on":10},"defaultVariant":"on"},
	  "ruled-high": {"state":"ENABLED","variants":{"ok":10,"bad":101},"defaultVariant":"ok",
	    "targeting":{"if":[{"==":[{"var":"targetingKey"},"x"]},"bad",null]}},
	  "ruled-word": {"state":"ENABLED","variants":{"ok":10,"bad":"x"},"defaultVariant":"ok",
	    "targeting":{"if":[{"==":[{"var":"targetingKey"},"x"]},"bad",null]}},
	  "ruled-word-default": {"state":"ENABLED","variants":{"ok":10,"bad":"x"},"defaultVariant":"bad",
	    "targeting":{"if":[{"==":[{"var":"targetingKey"},"x"]},"ok",null]}},
	  "no-default": {"state":"ENABLED","variants":{"on":10}},
	  "ruled-no-default": {"state":"ENABLED","variants":{"on":10},
	    "targeting":{"if":[{"==":[{"var":"targetingKey"},"y"]},"on",null]}}
	}}`))
	tests := []struct {
		flag, key string
		want      error
		cached    bool
	}{
		{"high", "x", ErrRange, true},
		{"negative", "x", ErrRange, true},
		{"word", "x", ErrType, true},
		{"off", "x", ErrDisabled, true},
		{"missing", "x", ErrNotFound, true},
		{"ruled-high", "x", ErrRange, false},
		{"ruled-word", "x", ErrType, false},
		{"ruled-word-default", "y", ErrType, false},
		// No default variant: with no rule, no request gets a variant
		// (one answer for all, cached); with one, those it places do.
		{"no-default", "x", ErrNoDefault, true},
		{"ruled-no-default", "x", ErrNoDefault, false},
	}
	for _, tt := range tests {
		f := s.Flag(tt.flag)
		v, err := f.Percent(context.Background(), tt.key, Attrs{})
		if !errors.Is(err, tt.want) || v != 0 {
			t.Errorf("%s: Percent = %v, %v; want 0, %v", tt.flag, v, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%s: error %q does not name the flag", tt.flag, err)
		}
		if cached := !f.state.Load().perRequest; cached != tt.cached {
			t.Errorf("%s: cached = %v, want %v", tt.flag, cached, tt.cached)
		}
	}
	// Evaluated with a key the rules do not match, the targeted flags are fine.
	if v, err := s.Flag("ruled-high").Percent(context.Background(), "y", Attrs{}); v != 10 || err != nil {
		t.Errorf("ruled-high for y = %v, %v; want 10", v, err)
	}
}

// TestDocExample keeps the example in doc.go honest.
func TestDocExample(t *testing.T) {
	t.Parallel()
	s, _ := open(t, writeFlags(t, t.TempDir(), `{
	  "flags": {
	    "orders-percent": {
	      "state": "ENABLED",
	      "variants": {"on": 10},
	      "defaultVariant": "on"
	    },
	    "payments-percent": {
	      "state": "ENABLED",
	      "variants": {"all": 100, "some": 25, "none": 0},
	      "defaultVariant": "some",
	      "targeting": {"if": [
	        {"in": [{"var": "targetingKey"}, ["qa-user-1", "qa-user-2"]]}, "all",
	        {"==": [{"var": "method"}, "DELETE"]}, "none",
	        null
	      ]}
	    },
	    "fractional": {
	      "state": "ENABLED",
	      "variants": {"all": 100, "none": 0},
	      "defaultVariant": "none",
	      "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
	        ["all", 10], ["none", 90]]}
	    }
	  }
	}`))
	ctx := context.Background()
	check := func(flag, key, method string, want float64) {
		t.Helper()
		if v, err := s.Flag(flag).Percent(ctx, key, Attrs{Method: method}); v != want || err != nil {
			t.Errorf("%s(%q, %s) = %v, %v; want %v", flag, key, method, v, err, want)
		}
	}
	check("orders-percent", "u", "GET", 10)
	check("payments-percent", "qa-user-2", "DELETE", 100)
	check("payments-percent", "u", "DELETE", 0)
	check("payments-percent", "u", "GET", 25)
	all := 0
	for i := range 1000 {
		if v, _ := s.Flag("fractional").Percent(ctx, fmt.Sprint(i), Attrs{}); v == 100 {
			all++
		}
	}
	if all < 60 || all > 140 {
		t.Errorf("fractional 10%%: %d of 1000", all)
	}
}

func BenchmarkPercentCached(b *testing.B) {
	s, _ := open(b, writeFlags(b, b.TempDir(), plain))
	f := s.Flag("orders")
	ctx := context.Background()
	attrs := Attrs{Route: "orders", Method: "GET", Path: "/api/orders/1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Percent(ctx, "user-42", attrs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPercentTargeting(b *testing.B) {
	s, _ := open(b, writeFlags(b, b.TempDir(), targeted))
	f := s.Flag("vip")
	ctx := context.Background()
	attrs := Attrs{Route: "orders", Method: "GET", Path: "/api/orders/1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Percent(ctx, "user-42", attrs); err != nil {
			b.Fatal(err)
		}
	}
}
