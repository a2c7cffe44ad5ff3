package compare_test

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// Bodies that both decode past max_decoded are not compared: the result
// says so (TooLarge) instead of a body difference, so that identical
// answers compressed differently do not count as a mismatch. Unless they
// differ within the limit, where they were decoded: that is a mismatch.
// One side past the limit and the other not is a real difference (their
// sizes differ), and so is any other difference found.
func TestBodiesPastMaxDecoded(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, compare.RulesConfig{MaxDecoded: 4096})
	doc := []byte(`{"items":[` + strings.Repeat(`{"id":1,"name":"x"},`, 400) + `{"id":2}]}`)
	small := []byte(`{"items":[]}`)
	level := func(b []byte, l int) []byte {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, l)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	big1, big9 := encoded("gzip", level(doc, 1)), encoded("gzip", level(doc, 9))
	if bytes.Equal(big1.Body, big9.Body) {
		t.Fatal("setup: the two compressions are the same bytes")
	}
	other := encoded("gzip", level(small, 9))
	// Past the limit too, but different within it (an error document),
	// and not JSON (JSON past the limit is skipped whatever its text).
	changed := bytes.Clone(doc)
	copy(changed, `{"error":"boom","x":[`)
	html := func(r *compare.Response) *compare.Response {
		r.Header.Set("Content-Type", "text/csv") // not sniffed as JSON
		r.Body = append([]byte(nil), r.Body...)
		return r
	}
	bigHTML := html(encoded("gzip", level(doc, 1)))
	bigDiffers := html(encoded("gzip", level(changed, 9)))
	withStatus := encoded("gzip", level(doc, 9))
	withStatus.Status = 500
	for _, tc := range []struct {
		name         string
		a, b         *compare.Response
		want         compare.Outcome
		wantTooLarge bool
	}{
		{"both past the limit, compressed differently", big1, big9, compare.Match, true},
		{"both past the limit, different within it", bigHTML, bigDiffers, compare.Mismatch, false},
		{"one past the limit", big1, other, compare.Mismatch, false},
		{"both past the limit, statuses differ", big1, withStatus, compare.Mismatch, false},
	} {
		for _, swap := range []bool{false, true} {
			a, b := tc.a, tc.b
			if swap {
				a, b = b, a
			}
			res := compare.Compare(a, b, rules)
			if res.Outcome != tc.want || res.TooLarge != tc.wantTooLarge {
				t.Errorf("%s (swapped %v): outcome %v, TooLarge %v; want %v, %v (%+v)", tc.name, swap, res.Outcome, res.TooLarge, tc.want, tc.wantTooLarge, res.Differences)
			}
		}
	}
}

// A byte order mark on both sides is skipped and the JSON after it
// compared as JSON; on one side only it is a difference.
func TestByteOrderMark(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, compare.RulesConfig{})
	const bom = "\xef\xbb\xbf"
	for _, tc := range []struct {
		name string
		a, b string
		want compare.Outcome
	}{
		{"both, keys reordered", bom + `{"a":1,"b":2}`, bom + `{"b":2.0, "a":1}`, compare.Match},
		{"both, a value differs", bom + `{"a":1}`, bom + `{"a":2}`, compare.Mismatch},
		{"one side only", bom + `{"a":1}`, `{"a":1}`, compare.Mismatch},
	} {
		for _, swap := range []bool{false, true} {
			a, b := tc.a, tc.b
			if swap {
				a, b = b, a
			}
			if res := compare.Compare(jsonResp(a), jsonResp(b), rules); res.Outcome != tc.want {
				t.Errorf("%s (swapped %v): %v, want %v: %+v", tc.name, swap, res.Outcome, tc.want, res.Differences)
			}
		}
	}
}

// Two JSON documents past max_decoded are not compared as bytes within
// it: their text differs where their value does not (key order, spacing,
// an ignore_json field), and half a document is not JSON. They are
// skipped, like equal ones.
func TestLargeJSONPastMaxDecodedIsSkipped(t *testing.T) {
	t.Parallel()
	gz := func(s string) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(s))
		zw.Close()
		return buf.Bytes()
	}
	items := strings.Repeat(`{"id":1,"name":"x"},`, 400) + `{"id":2}`
	for name, tc := range map[string]struct {
		a, b   string
		ignore []string
	}{
		"ignored field differs": {`{"generatedAt":"12:00:01","items":[` + items + `]}`, `{"generatedAt":"12:00:02","items":[` + items + `]}`, []string{"/generatedAt"}},
		"key order and spacing": {`{"a":1,"items":[` + items + `]}`, `{"items": [` + items + `], "a": 1}`, nil},
	} {
		rules := mustRules(t, compare.RulesConfig{MaxDecoded: 4096, IgnoreJSON: tc.ignore})
		res := compare.Compare(encoded("gzip", gz(tc.a)), encoded("gzip", gz(tc.b)), rules)
		if res.Outcome != compare.Match || !res.TooLarge {
			t.Errorf("%s: outcome %v, TooLarge %v, want skipped as too large: %+v", name, res.Outcome, res.TooLarge, res.Differences)
		}
	}
}
