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

// TestCompareLargeIdentityBodies: bodies past max_decoded are not parsed,
// encoded or not. Two JSON documents past it are not compared (TooLarge):
// as bytes, key order alone made a mismatch (a review). Two text bodies
// past it are compared as bytes: whole when neither was compressed, else
// up to it; and one past it against one within it still differs.
func TestCompareLargeIdentityBodies(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{MaxDecoded: 16})
	gz := func(body string) *compare.Response {
		resp := jsonResp("")
		resp.Header.Set("Content-Encoding", "gzip")
		resp.Body = gzipped(t, []byte(body))
		return resp
	}
	text := func(body string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", "text/plain"), Body: []byte(body)}
	}
	for _, tc := range []struct {
		name     string
		a, b     *compare.Response
		outcome  compare.Outcome
		tooLarge bool
	}{
		{"JSON, key order", jsonResp(`{"a":1,"b":"0123456789"}`), jsonResp(`{"b":"0123456789","a":1}`), compare.Match, true},
		{"JSON, one side compressed", jsonResp(`{"a":1,"b":"0123456789"}`), gz(`{"b":"0123456789","a":1}`), compare.Match, true},
		{"text, differing past the limit", text("0123456789abcdefXYZ"), text("0123456789abcdefxyz"), compare.Mismatch, false},
		{"text, one side compressed, differing past the limit", text("0123456789abcdefXYZ"), func() *compare.Response {
			r := text("")
			r.Header.Set("Content-Encoding", "gzip")
			r.Body = gzipped(t, []byte("0123456789abcdefxyz"))
			return r
		}(), compare.Match, true},
		{"text, differing within the limit", text("0123456789ABCDEFxyz"), text("0123456789abcdefxyz"), compare.Mismatch, false},
		{"one side within it", jsonResp(`{"a":1,"b":"0123456789"}`), jsonResp(`{"a":1}`), compare.Mismatch, false},
	} {
		res := compare.Compare(tc.a, tc.b, r)
		if res.Outcome != tc.outcome || res.TooLarge != tc.tooLarge {
			t.Errorf("%s: got %+v, want %v, too large %v", tc.name, res, tc.outcome, tc.tooLarge)
		}
	}
}
