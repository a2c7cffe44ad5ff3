package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// A stored sample stays small however the answers are shaped: a pointer
// is cut to 1 KiB (keys can be as long as an answer), and the differences
// past 64 KiB together are counted, not kept.
func TestSampleDifferencesAreBounded(t *testing.T) {
	t.Parallel()
	value := json.RawMessage(`"` + strings.Repeat("v", 4000) + `"`)
	long := "/" + strings.Repeat("é", 1500) // 3000 bytes, cut inside no character
	var many []compare.Difference
	for range 100 {
		many = append(many, compare.Difference{Kind: compare.KindBody, Pointer: long, Primary: value, Shadow: value})
	}
	got, omitted := boundDifferences(many, 7)
	size := 0
	for _, d := range got {
		size += len(d.Pointer) + len(d.Primary) + len(d.Shadow) + len(d.Note)
		if len(d.Pointer) > samplePointerBytes+len("…") || !strings.HasSuffix(d.Pointer, "…") || !strings.HasPrefix(d.Pointer, "/éé") {
			t.Fatalf("pointer of %d bytes kept as %d: %.20q…", len(long), len(d.Pointer), d.Pointer)
		}
		if !strings.Contains(d.Note, "pointer longer than 1024 bytes is shown as its start") {
			t.Errorf("note %q does not say the pointer was cut", d.Note)
		}
	}
	if size > sampleDiffBytes || len(got) == 0 || len(got)+omitted != 100+7 {
		t.Errorf("kept %d differences (%d bytes), omitted %d; want at most %d bytes and the rest counted", len(got), size, omitted, sampleDiffBytes)
	}
	if long != many[0].Pointer {
		t.Error("bounding changed the comparator's result")
	}

	// One difference is kept whatever its size; small ones pass as they are.
	huge := []compare.Difference{{Kind: compare.KindBody, Primary: json.RawMessage(`"` + strings.Repeat("x", 100<<10) + `"`)}}
	if got, omitted := boundDifferences(huge, 0); len(got) != 1 || omitted != 0 {
		t.Errorf("a single difference: kept %d, omitted %d", len(got), omitted)
	}
	small := []compare.Difference{{Kind: compare.KindHeader, Header: "X-A", Note: "n"}, {Kind: compare.KindBody, Pointer: "/a"}}
	if got, omitted := boundDifferences(small, 2); len(got) != 2 || got[0].Header != "X-A" || got[0].Note != "n" || got[1].Pointer != "/a" || got[1].Note != "" || omitted != 2 {
		t.Errorf("small differences changed: %+v, omitted %d", got, omitted)
	}
}
