package compare_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// TestUnorderedJSON compares arrays named in unordered_json as multisets:
// the same elements in another order match; what is left over after
// pairing equal elements is reported.
func TestUnorderedJSON(t *testing.T) {
	t.Parallel()
	items := compare.RulesConfig{UnorderedJSON: []string{"/items"}}
	tests := []struct {
		name            string
		cfg             compare.RulesConfig
		primary, shadow string
		want            string // differences as JSON; "" for a match
	}{
		{
			name:    "positional without the rule",
			primary: `{"items":[1,2]}`,
			shadow:  `{"items":[2,1]}`,
			want:    `[{"kind":"body","pointer":"/items/0","primary":1,"shadow":2},{"kind":"body","pointer":"/items/1","primary":2,"shadow":1}]`,
		},
		{
			name:    "reordered",
			cfg:     items,
			primary: `{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2},{"sku":"c","qty":3}]}`,
			shadow:  `{"items":[{"sku":"c","qty":3},{"sku":"a","qty":1},{"sku":"b","qty":2}]}`,
		},
		{
			name:    "reordered, equal by value only",
			cfg:     items,
			primary: `{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2.0}]}`,
			shadow:  `{"items":[{"qty":2,"sku":"b"},{"qty":1e0,"sku":"\u0061"}]}`,
		},
		{
			name:    "one field of one element",
			cfg:     items,
			primary: `{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2},{"sku":"c","qty":3}]}`,
			shadow:  `{"items":[{"sku":"c","qty":3},{"sku":"b","qty":5},{"sku":"a","qty":1}]}`,
			want:    `[{"kind":"body","pointer":"/items/1/qty","primary":2,"shadow":5}]`,
		},
		{
			name:    "missing on the shadow",
			cfg:     items,
			primary: `{"items":["a","b","c"]}`,
			shadow:  `{"items":["c","a"]}`,
			want:    `[{"kind":"body","pointer":"/items/1","primary":"b"}]`,
		},
		{
			name:    "only on the shadow, at its own index",
			cfg:     items,
			primary: `{"items":["a","b"]}`,
			shadow:  `{"items":["b","x","a"]}`,
			want:    `[{"kind":"body","pointer":"/items/1","shadow":"x"}]`,
		},
		{
			name:    "duplicates count",
			cfg:     items,
			primary: `{"items":[1,1,2]}`,
			shadow:  `{"items":[2,1,2]}`,
			want:    `[{"kind":"body","pointer":"/items/1","primary":1,"shadow":2}]`,
		},
		{
			name:    "ignore_json inside the elements",
			cfg:     compare.RulesConfig{UnorderedJSON: []string{"/items"}, IgnoreJSON: []string{"/items/*/ts"}},
			primary: `{"items":[{"sku":"a","ts":1},{"sku":"b","ts":2}]}`,
			shadow:  `{"items":[{"sku":"b","ts":8},{"sku":"a","ts":9}]}`,
		},
		{
			name:    "a wildcard and the root",
			cfg:     compare.RulesConfig{UnorderedJSON: []string{"", "/*/lines"}},
			primary: `[{"id":1,"lines":["x","y"]},{"id":2,"lines":[]}]`,
			shadow:  `[{"id":2,"lines":[]},{"id":1,"lines":["y","x"]}]`,
		},
		{
			name:    "nested, one deep difference",
			cfg:     compare.RulesConfig{UnorderedJSON: []string{"", "/*/lines"}},
			primary: `[{"id":1,"lines":["x","y"]},{"id":2,"lines":["z"]}]`,
			shadow:  `[{"id":2,"lines":["z"]},{"id":1,"lines":["y","w"]}]`,
			want:    `[{"kind":"body","pointer":"/0/lines/0","primary":"x","shadow":"w"}]`,
		},
		{
			name:    "not an array there",
			cfg:     items,
			primary: `{"items":{"a":1}}`,
			shadow:  `{"items":{"a":2}}`,
			want:    `[{"kind":"body","pointer":"/items/a","primary":1,"shadow":2}]`,
		},
		{
			name:    "other arrays stay positional",
			cfg:     items,
			primary: `{"items":[1,2],"tags":[1,2]}`,
			shadow:  `{"items":[2,1],"tags":[2,1]}`,
			want:    `[{"kind":"body","pointer":"/tags/0","primary":1,"shadow":2},{"kind":"body","pointer":"/tags/1","primary":2,"shadow":1}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := compare.Compare(jsonResp(tt.primary), jsonResp(tt.shadow), mustRules(t, tt.cfg))
			got := ""
			if len(res.Differences) > 0 {
				got = diffsJSON(t, res.Differences)
			}
			if got != tt.want {
				t.Errorf("differences\n got %s\nwant %s", got, tt.want)
			}
			if want := map[bool]compare.Outcome{true: compare.Match, false: compare.Mismatch}[tt.want == ""]; res.Outcome != want {
				t.Errorf("outcome %v, want %v", res.Outcome, want)
			}
		})
	}
}

// TestUnorderedJSONWithNoise: noise learned where the list was compared
// in order (before unordered_json named it) keeps two otherwise equal
// elements from differing, wherever they stand.
func TestUnorderedJSONWithNoise(t *testing.T) {
	t.Parallel()
	noise := compare.NewNoise(0)
	ordered := mustRules(t, compare.RulesConfig{})
	res := noise.Compare(jsonResp(`{"items":[{"sku":"a","ts":1},{"sku":"b","ts":2}]}`),
		jsonResp(`{"items":[{"sku":"a","ts":7},{"sku":"b","ts":8}]}`),
		jsonResp(`{"items":[{"sku":"a","ts":1},{"sku":"b","ts":2}]}`),
		jsonResp(`{"items":[{"sku":"a","ts":3},{"sku":"b","ts":4}]}`), ordered)
	if res.Outcome != compare.Match {
		t.Fatalf("with the monolith's ts varying: %v %s, want a match", res.Outcome, diffsJSON(t, res.Differences))
	}
	if got := strings.Join(noise.Fields(), " "); got != "/items/*/ts" {
		t.Fatalf("learned %q, want /items/*/ts", got)
	}
	// Reordered, ts varying (a null where the monolith had a number: a
	// type noise covers too), and one real difference.
	unordered := mustRules(t, compare.RulesConfig{UnorderedJSON: []string{"/items"}})
	res = noise.Compare(jsonResp(`{"items":[{"sku":"a","ts":1},{"sku":"b","ts":2},{"sku":"c","ts":0}]}`),
		jsonResp(`{"items":[{"sku":"b","ts":5},{"sku":"d","ts":5},{"sku":"a","ts":6}]}`), nil, nil, unordered)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/items/2/sku","primary":"c","shadow":"d"}]`; got != want {
		t.Errorf("differences %s, want %s", got, want)
	}
}

// TestUnorderedJSONBoundedWork: arrays of many elements that differ only
// at their ends (each comparison by value walks a whole element) are
// compared in bounded work, the leftovers in order.
func TestUnorderedJSONBoundedWork(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{UnorderedJSON: []string{""}})
	var a, b strings.Builder
	const n = 3000
	a.WriteString("[")
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		fmt.Fprintf(&a, `[%s%d]`, strings.Repeat("0,", 50), i)
		fmt.Fprintf(&b, `[%s%d.0]`, strings.Repeat("0,", 50), n-1-i+n) // none equal
	}
	a.WriteString("]")
	b.WriteString("]")
	res := compare.Compare(jsonResp(a.String()), jsonResp(b.String()), r)
	if res.Outcome != compare.Mismatch || len(res.Differences) == 0 {
		t.Fatalf("%v with %d differences, want a mismatch", res.Outcome, len(res.Differences))
	}
	if res.Differences[0].Pointer != "/0/50" {
		t.Errorf("first difference at %q, want /0/50 (the leftovers compared in order)", res.Differences[0].Pointer)
	}
}

func TestUnorderedJSONRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  compare.RulesConfig
		want string
	}{
		{compare.RulesConfig{UnorderedJSON: []string{"/ok", "items"}}, `unordered_json[1] "items": a JSON Pointer is "" or starts with "/"`},
		{compare.RulesConfig{UnorderedJSON: []string{"/a", "/*/lines"}, IgnoreJSON: []string{"/x", "/o/lines/2/ts"}},
			`ignore_json[1] "/o/lines/2/ts": names an element of unordered_json[1] "/*/lines" by its index, a place no element keeps (use * for every element)`},
		{compare.RulesConfig{UnorderedJSON: []string{""}, IgnoreJSON: []string{"/0"}},
			`ignore_json[0] "/0": names an element of unordered_json[0] "" by its index, a place no element keeps (use * for every element)`},
		{compare.RulesConfig{UnorderedJSON: []string{"/items", "/items/0/tags"}},
			`unordered_json[1] "/items/0/tags": names an element of unordered_json[0] "/items" by its index, a place no element keeps (use * for every element)`},
	} {
		if _, err := compare.NewRules(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("NewRules(%+v) = %v, want %s", tc.cfg, err, tc.want)
		}
	}
	// An index elsewhere, or every element, is fine.
	if _, err := compare.NewRules(compare.RulesConfig{UnorderedJSON: []string{"/items"}, IgnoreJSON: []string{"/items/*/ts", "/other/0", "/items"}}); err != nil {
		t.Errorf("NewRules: %v", err)
	}
}

// FuzzUnorderedJSON checks multiset comparison's laws: a document equals
// itself and any reordering of its arrays that unordered_json names; the
// outcome does not depend on which side is primary; and whatever matches
// position by position still matches.
func FuzzUnorderedJSON(f *testing.F) {
	f.Add(uint8(0), []byte(`[1,2,[3,4]]`), []byte(`[[4,3],2,1]`))
	f.Add(uint8(1), []byte(`{"a":[{"x":1,"y":2},{"x":3}]}`), []byte(`{"a":[{"x":3},{"y":2,"x":1.0}]}`))
	f.Add(uint8(2), []byte(`[[1,1,2],[2]]`), []byte(`[[2],[2,1,1]]`))
	patterns := [][]string{{""}, {"/*"}, {"", "/*"}, {"/a", "/a/*/b"}}
	f.Fuzz(func(t *testing.T, mode uint8, a, b []byte) {
		r := mustRules(t, compare.RulesConfig{UnorderedJSON: patterns[int(mode)%len(patterns)], MaxDecoded: 1 << 16})
		ra, rb := jsonResp(string(a)), jsonResp(string(b))
		if res := compare.Compare(ra, ra, r); res.Outcome != compare.Match {
			t.Fatalf("Compare(a, a) = %v: %s", res.Outcome, diffsJSON(t, res.Differences))
		}
		ab, ba := compare.Compare(ra, rb, r), compare.Compare(rb, ra, r)
		if ab.Outcome != ba.Outcome {
			t.Fatalf("Compare(a, b) = %v (%s) but Compare(b, a) = %v (%s)", ab.Outcome, diffsJSON(t, ab.Differences), ba.Outcome, diffsJSON(t, ba.Differences))
		}
		if compare.Compare(ra, rb, mustRules(t, compare.RulesConfig{MaxDecoded: 1 << 16})).Outcome == compare.Match && ab.Outcome != compare.Match {
			t.Fatalf("equal position by position, but %v unordered: %s", ab.Outcome, diffsJSON(t, ab.Differences))
		}
		// a, its root array reversed: equal when the root is unordered.
		var elems []json.RawMessage
		if mode%4 == 0 && json.Unmarshal(a, &elems) == nil && len(elems) > 1 {
			slices.Reverse(elems)
			rev, err := json.Marshal(elems)
			if err != nil {
				t.Fatal(err)
			}
			if res := compare.Compare(ra, jsonResp(string(rev)), r); res.Outcome != compare.Match {
				t.Fatalf("%s reversed as %s: %v %s", a, rev, res.Outcome, diffsJSON(t, res.Differences))
			}
		}
	})
}

// Inside an unordered_json list, which element of one monolith answer a
// varying element of the other is, is not known: nothing is learned there,
// whether the monolith answers its list in the same order or not (a
// reordered list taught the skus that tell its elements apart, and a
// wrong sku was then a match for good). A field that varies there is
// listed in ignore_json.
func TestUnorderedJSONTeachesNothing(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{UnorderedJSON: []string{"/items"}})
	noise := compare.NewNoise(0)
	same := jsonResp(`{"items":[{"sku":"a","ts":1},{"sku":"b","ts":2}]}`)
	for _, other := range []string{
		`{"items":[{"sku":"a","ts":3},{"sku":"b","ts":4}]}`, // in the same order
		`{"items":[{"sku":"b","ts":5},{"sku":"a","ts":6}]}`, // in another
	} {
		noise.Compare(same, same, same, jsonResp(other), r)
	}
	if got := noise.Fields(); len(got) != 0 {
		t.Errorf("learned %q, want nothing", got)
	}
	ignoring := mustRules(t, compare.RulesConfig{UnorderedJSON: []string{"/items"}, IgnoreJSON: []string{"/items/*/ts"}})
	res := noise.Compare(jsonResp(`{"items":[{"sku":"a","ts":5},{"sku":"b","ts":6}]}`),
		jsonResp(`{"items":[{"sku":"c","ts":8},{"sku":"a","ts":7}]}`), same, jsonResp(`{"items":[{"sku":"b","ts":9},{"sku":"a","ts":8}]}`), ignoring)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/items/1/sku","primary":"b","shadow":"c"}]`; got != want {
		t.Errorf("a wrong sku: %s, want %s", got, want)
	}
}

// Below an unordered_json array, this request's noise (where its two
// monolith answers differ, at their literal places) does not apply: the
// places it names are the monolith's, and the elements compared are
// named by theirs.
func TestUnorderedJSONRequestNoiseIsNotByPlace(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{UnorderedJSON: []string{"/items"}})
	monolith, extra := jsonResp(`{"items":["X","Y","Z"]}`), jsonResp(`{"items":["X","Y"]}`)
	// The monolith's element 2 is in one of its answers only; the service
	// answers an element the monolith never had, at its own index 2.
	for name, res := range map[string]compare.Result{
		"service primary":  compare.NewNoise(0).Compare(jsonResp(`{"items":["X","Z","E","Y"]}`), monolith, monolith, extra, r),
		"monolith primary": compare.NewNoise(0).Compare(monolith, jsonResp(`{"items":["X","Y","E","Z"]}`), monolith, extra, r),
	} {
		if res.Outcome != compare.Mismatch {
			t.Errorf("%s: an element the monolith never answered is %v", name, res.Outcome)
		}
	}
	res := compare.NewNoise(0).Compare(
		jsonResp(`{"items":[{"id":3,"c":7},{"id":2},{"id":1}]}`),
		jsonResp(`{"items":[{"id":1,"c":5},{"id":2},{"id":3,"c":7}]}`),
		jsonResp(`{"items":[{"id":1,"c":5},{"id":2},{"id":3,"c":7}]}`),
		jsonResp(`{"items":[{"id":1,"c":5},{"id":2},{"id":3}]}`), r)
	if res.Outcome != compare.Mismatch {
		t.Errorf("element id 1 lost a field the monolith always answers, yet %v", res.Outcome)
	}
}
