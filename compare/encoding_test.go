package compare_test

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// TestCompareZipBombIsBounded decodes 64 MiB of zeros compressed to ~64 KiB
// under a 1 MiB limit: the comparison must stop at the limit, report it,
// and allocate about the limit, not the bomb.
func TestCompareZipBombIsBounded(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	// A gzip stream may hold many members, decoded one after the other:
	// 64 copies of 1 MiB of compressed zeros make the bomb quickly.
	member := gzipped(t, make([]byte, 1<<20))
	bomb := encoded("gzip", bytes.Repeat(member, 64))
	other := encoded("gzip", gzipped(t, []byte(`{}`)))

	const limit = 1 << 20
	r := mustRules(t, compare.RulesConfig{MaxDecoded: limit})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := compare.Compare(bomb, other, r)
	runtime.ReadMemStats(&after)

	if len(res.Differences) != 1 || !strings.Contains(res.Differences[0].Note, "exceeds max_decoded (1048576 bytes)") {
		t.Fatalf("differences %+v, want one saying the body exceeds max_decoded", res.Differences)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*limit {
		t.Errorf("comparison allocated %d bytes, want at most %d", alloc, 4*limit)
	} else {
		t.Logf("comparison allocated %d bytes for a %d MiB bomb", alloc, len(bomb.Body)/len(member))
	}
	// The same bomb on both sides is equal without being inflated.
	if res := compare.Compare(bomb, bomb, r); res.Outcome != compare.Match {
		t.Errorf("identical bombs: %v, want match", res.Outcome)
	}
}

// TestCompareLargeIdentityBodies: a body that arrived unencoded is already
// in memory; over max_decoded it is compared as bytes rather than refused.
func TestCompareLargeIdentityBodies(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{MaxDecoded: 16})
	res := compare.Compare(jsonResp(`{"a":1,"b":"0123456789"}`), jsonResp(`{"b":"0123456789","a":1}`), r)
	if res.Outcome != compare.Mismatch || len(res.Differences) != 1 || res.Differences[0].Pointer != "" {
		t.Errorf("got %+v, want one byte difference", res)
	}
}
