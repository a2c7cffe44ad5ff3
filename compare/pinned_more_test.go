package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// Each test here pins a behaviour that a one-token change of the
// comparison (a second hand mutation test, 2026-12-08) left unnoticed by
// the other tests. The comment above each names the change it catches.

// TestJSONSyntaxAndEscapesBothWays: what is valid JSON, and what two
// escapes decode to. A body that is not JSON is compared as bytes, so
// calling "[1;2]" JSON would hide a serialiser bug from the dashboard;
// decoding an escape wrongly makes equal strings differ (a false alarm
// on every request) or different ones match.
func TestJSONSyntaxAndEscapesBothWays(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	cases := []struct {
		name  string
		p, s  string
		match bool
	}{
		// json.go container: a member name is a string; elements are
		// apart by commas.
		{"a number as a member name is not JSON", `{1:2}`, `{1: 2}`, false},
		{"a semicolon between elements is not JSON", `[1;2]`, `[1,2]`, false},
		// json.go scanNumber: a point and an exponent need digits.
		{"1. is not a number", `[1.]`, `[1.0]`, false},
		{"1e is not a number", `[1e]`, `[1]`, false},
		// json.go hexValue: \u escapes take upper-case hex digits.
		{"upper-case hex escape", `["caf\u00E9"]`, `["café"]`, true},
		// json.go appendUnquoted: only U+DC00..U+DFFF completes a pair.
		{"U+E000 after a high surrogate is no pair", `["\ud800\ue000"]`, `["` + "\U00010400" + `"]`, false},
		// json.go marksRaw: raw bytes ED BF BF are not the escape \udfff.
		{"raw ED BF BF vs escaped \\udfff", "[\"\xed\xbf\xbf\"]", `["\udfff"]`, false},
		// json.go appendWTF8: the bounds of the two- and three-byte forms.
		{"escaped U+0800", `["\u0800"]`, "[\"\u0800\"]", true},
		{"escaped U+0080", `["\u0080"]`, "[\"\u0080\"]", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			matchBothWays(t, ctJSON(tc.p), ctJSON(tc.s), r, tc.match)
		})
	}
}

// TestDepthLimitIsTenThousandLevels: a document nested 10000 levels is
// still compared as JSON (1 equals 1.0 there); one level more is compared
// as bytes (json.go: depth > maxDepth). A deeply nested but legitimate
// answer must not turn into a byte mismatch one level early.
func TestDepthLimitIsTenThousandLevels(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	nest := func(levels int, leaf string) *Response {
		return ctJSON(strings.Repeat("[", levels) + leaf + strings.Repeat("]", levels))
	}
	for _, tc := range []struct {
		levels int
		match  bool
	}{
		{maxDepth, true},
		{maxDepth + 1, false},
	} {
		res := Compare(nest(tc.levels, "1"), nest(tc.levels, "1.0"), r)
		if got := res.Outcome == Match; got != tc.match {
			t.Errorf("%d levels: match = %v, want %v", tc.levels, got, tc.match)
		}
	}
}

// TestTrailingNewlineIsNoStream: one JSON value followed by a newline (as
// most encoders end their output) is one document, not a stream of one:
// its difference is at "/a", where the SRE looks, not "/0/a" (json.go
// parse: skipSpace(src, i) == len(src)).
func TestTrailingNewlineIsNoStream(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	res := Compare(ctJSON("{\"a\":1}\n"), ctJSON(`{"a":2}`), r)
	if len(res.Differences) != 1 || res.Differences[0].Pointer != "/a" {
		t.Errorf("got %s, want one difference at /a", ctDiffs(res))
	}
}

// TestIgnoreJSONIndexes: an ignore_json segment that is an array index
// ignores that element only (walk.go matchHere: ps.index != seg.index);
// "01" is no index (RFC 6901 allows no leading zero; rules.go arrayIndex),
// so it ignores nothing in an array. A wrong match hides a real divergence.
func TestIgnoreJSONIndexes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ignore string
		s      string
		match  bool
	}{
		{"/items/1", `{"items":[1,9,3]}`, true},
		{"/items/1", `{"items":[9,2,3]}`, false},
		{"/items/01", `{"items":[1,9,3]}`, false},
	} {
		r := ctRules(t, RulesConfig{IgnoreJSON: []string{tc.ignore}})
		res := Compare(ctJSON(`{"items":[1,2,3]}`), ctJSON(tc.s), r)
		if got := res.Outcome == Match; got != tc.match {
			t.Errorf("ignore %q, shadow %s: match = %v, want %v: %s", tc.ignore, tc.s, got, tc.match, ctDiffs(res))
		}
	}
}

// TestUnorderedTiesPairTheFirst: of shadow elements that qualify equally,
// an unordered primary element is paired with the first in document
// order, so the differences an SRE reads do not depend on the pairing's
// scan. Equal by value (walk.go pairFree: break on d == 0) and nearest
// (walk.go pairFree: stop = fewest - 1).
func TestUnorderedTiesPairTheFirst(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{UnorderedJSON: []string{""}})
	for _, tc := range []struct {
		name, p, s, want string
	}{
		{"equal by value", `[1.0]`, `[1,1e0]`,
			`[{"kind":"body","pointer":"/1","shadow":1e0}]`},
		{"as near", `[{"a":1,"b":1}]`, `[{"a":2,"b":1},{"a":1,"b":2}]`,
			`[{"kind":"body","pointer":"/0/a","primary":1,"shadow":2},{"kind":"body","pointer":"/1","shadow":{"a":1,"b":2}}]`},
	} {
		res := Compare(ctJSON(tc.p), ctJSON(tc.s), r)
		got, _ := json.Marshal(res.Differences)
		if string(got) != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestNoisePlaceBoundCountsEscapesAndIndexes: a place longer than 1 KiB
// as a JSON Pointer is never noise, counted as the pointer is written: an
// index of two digits is two bytes (walk.go longerThan: i < 10), a "/" in
// a name is "~1" (walk.go longerThan: the escapes). Counted short, a place
// over the bound would be dropped as noise.
func TestNoisePlaceBoundCountsEscapesAndIndexes(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	list := func(key string, last int) *Response {
		k, _ := json.Marshal(key)
		return ctJSON(fmt.Sprintf(`{%s:[0,0,0,0,0,0,0,0,0,0,%d]}`, k, last))
	}
	member := func(key string, v int) *Response {
		k, _ := json.Marshal(key)
		return ctJSON(fmt.Sprintf(`{%s:%d}`, k, v))
	}
	for _, tc := range []struct {
		name  string
		at    func(int) *Response
		noise bool
	}{
		// "/" + key + "/10"
		{"index 10, 1024 bytes", func(v int) *Response { return list(strings.Repeat("k", maxNoiseWhere-4), v) }, true},
		{"index 10, 1025 bytes", func(v int) *Response { return list(strings.Repeat("k", maxNoiseWhere-3), v) }, false},
		// "/~1" + key
		{"escaped slash, 1024 bytes", func(v int) *Response { return member("/"+strings.Repeat("k", maxNoiseWhere-3), v) }, true},
		{"escaped slash, 1025 bytes", func(v int) *Response { return member("/"+strings.Repeat("k", maxNoiseWhere-2), v) }, false},
	} {
		res := NewNoise(0).Compare(tc.at(1), tc.at(3), tc.at(1), tc.at(2), r)
		if got := res.Outcome == Match; got != tc.noise {
			t.Errorf("%s: noise = %v, want %v: %d differences, %d noisy", tc.name, got, tc.noise, len(res.Differences), res.Noisy)
		}
	}
}

// TestNoiseBooleanFlipIsAValue: a flag the monolith flips (true, false)
// is learned as a varying value, not a varying type, so a service that
// answers null there is still a mismatch (walk.go shapeOf: true and false
// are one type).
func TestNoiseBooleanFlipIsAValue(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	n := NewNoise(0)
	on, off := ctJSON(`{"f":true}`), ctJSON(`{"f":false}`)
	n.Compare(on, off, on, off, r)
	if res := n.Compare(on, off, nil, nil, r); res.Outcome != Match {
		t.Errorf("true vs false after learning: %s, want a match", ctDiffs(res))
	}
	if res := n.Compare(on, ctJSON(`{"f":null}`), nil, nil, r); res.Outcome != Mismatch {
		t.Errorf("true vs null after learning: %s, want a mismatch", ctDiffs(res))
	}
}

// TestNoiseLearnsPastMaxDifferences: a route that lists one difference
// (max_differences: 1) still learns every field its monolith varies
// (noise.go: c.limit = max(n.max, r.maxDifferences)); else it would take
// one request per noisy field before its dashboard stopped flapping.
func TestNoiseLearnsPastMaxDifferences(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{MaxDifferences: 1})
	n := NewNoise(0)
	a, b := ctJSON(`{"a":1,"b":1,"c":1}`), ctJSON(`{"a":2,"b":2,"c":2}`)
	n.Compare(a, a, a, b, r)
	if got := n.Fields(); len(got) != 3 {
		t.Errorf("learned %q, want /a, /b and /c", got)
	}
}

// TestNoiseNeverNarrows: a field learned as varying in type (null or a
// date) stays so after it is seen varying only in value, so the null is
// still noise (noise.go learn: max(old, f.shape)).
func TestNoiseNeverNarrows(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	n := NewNoise(0)
	n.Compare(ctJSON(`{}`), ctJSON(`{}`), ctJSON(`{"at":null}`), ctJSON(`{"at":"12:00"}`), r)
	// A new field (/y) makes this a learning step, with /at narrower.
	n.Compare(ctJSON(`{}`), ctJSON(`{}`), ctJSON(`{"at":"12:00","y":1}`), ctJSON(`{"at":"12:01","y":2}`), r)
	if res := n.Compare(ctJSON(`{"at":"12:00"}`), ctJSON(`{"at":null}`), nil, nil, r); res.Outcome != Match {
		t.Errorf("a null where the monolith once sent null: %s, want a match", ctDiffs(res))
	}
}

// TestNoiseInAMovedListGoesByFieldInAnyElement: in a list the monolith
// returned in another order, a field one element lacks is this request's
// noise in every element, not only where the monolith's own answers
// lacked it (noise.go inMovedList: depth == 0 is the element itself).
func TestNoiseInAMovedListGoesByFieldInAnyElement(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	ma := ctJSON(`[{"id":1,"n":"x"},{"id":2},{"id":3}]`)
	mb := ctJSON(`[{"id":2},{"id":3},{"id":1,"n":"x"}]`)
	shadow := ctJSON(`[{"id":1},{"id":2,"n":"x"},{"id":3}]`)
	if res := NewNoise(0).Compare(ma, shadow, ma, mb, r); res.Outcome != Match {
		t.Errorf("%s, want a match: n is present in one element or another", ctDiffs(res))
	}
}

// TestNoiseTextSpanBounds: the span two monolith text answers show, at
// its bounds (body.go textSpan.covers). Noise in a page (a CSRF token)
// must be forgiven, and a page that differs elsewhere, or much more, not.
func TestNoiseTextSpanBounds(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	token := func(tok string) *Response { return ctText("<p>token=" + tok + ";</p>") }
	for _, tc := range []struct {
		name                    string
		primary, shadow, ma, mb *Response
		match                   bool
	}{
		// Shared start and end of exactly half the shorter answer still
		// make a span (2*(prefix+suffix) >= shortest).
		{"shared half", ctText("ab1234cd"), ctText("ab0000cd"), ctText("ab1234cd"), ctText("ab5678cd"), true},
		// An empty monolith answer shares nothing: no span (prefix+suffix > 0).
		{"one monolith answer empty", ctText("abc"), ctText("xyz"), ctText(""), ctText("abc"), false},
		// The middle may grow to twice the monolith's plus 16 bytes.
		{"middle at the bound", token("AAAA"), token(strings.Repeat("x", 24)), token("AAAA"), token("BBBB"), true},
		{"middle past the bound", token("AAAA"), token(strings.Repeat("x", 25)), token("AAAA"), token("BBBB"), false},
		// A difference starting one byte before the span is outside it.
		{"starts one byte early", token("AAAA"), ctText("<p>token:CCCC;</p>"), token("AAAA"), token("BBBB"), false},
	} {
		res := NewNoise(0).Compare(tc.primary, tc.shadow, tc.ma, tc.mb, r)
		if got := res.Outcome == Match; got != tc.match {
			t.Errorf("%s: match = %v, want %v: %s", tc.name, got, tc.match, ctDiffs(res))
		}
	}
}

// TestNoiseFromJSONOnOneSideTeachesNothing: when one of the monolith's
// answers is not JSON (truncated), that is a failure, not a span of
// noise: a service answering the same truncated body is a mismatch
// (body.go: jsonA != jsonB && c.keysOnly).
func TestNoiseFromJSONOnOneSideTeachesNothing(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	whole := ctJSON(`{"a":1,"b":"xxxxxxxxxxxxxxxx"}`)
	cut := ctJSON(`{"a":1,"b":"xxxxxxxxxxxxxxxx"`)
	if res := NewNoise(0).Compare(whole, cut, whole, cut, r); res.Outcome != Mismatch {
		t.Errorf("a truncated answer: %s, want a mismatch", ctDiffs(res))
	}
}

// TestExactlyMaxDecodedIsWithinIt: a body of exactly max_decoded bytes,
// sent as is or decoding to it, is compared as JSON (key order ignored),
// not skipped as too large or called undecodable (body.go: len(da) >
// maxDecoded; encoding.go readAllLimited: len(dst) > limit).
func TestExactlyMaxDecodedIsWithinIt(t *testing.T) {
	t.Parallel()
	p, s := `{"a":1,"b":2}`, `{"b":2,"a":1}`
	r := ctRules(t, RulesConfig{MaxDecoded: int64(len(p))})
	zipped := ctJSON("")
	zipped.Body = ctGzip(t, []byte(p))
	zipped.Header.Set("Content-Encoding", "gzip")
	for name, primary := range map[string]*Response{"as is": ctJSON(p), "gzip": zipped} {
		res := Compare(primary, ctJSON(s), r)
		if res.Outcome != Match || res.TooLarge {
			t.Errorf("%s: %s, want a match, compared", name, ctDiffs(res))
		}
	}
	// Against one a byte past the limit, it is one within it against one
	// past it: compared as bytes, not both skipped.
	if res := Compare(ctJSON(p), ctJSON(s+" "), r); res.Outcome != Mismatch || res.TooLarge {
		t.Errorf("against one past it: %s, want a mismatch of bytes", ctDiffs(res))
	}
}

// TestInnerCodingPastMaxDecodedIsNotCompared: with stacked codings
// ("gzip, gzip"), when undoing the outer one already passes max_decoded,
// what was decoded is still compressed, not the start of the body: the
// bodies are not compared (TooLarge), rather than reported as differing
// in bytes that mean nothing (encoding.go: tl.final only for i == 0;
// body.go: bigA.final).
func TestInnerCodingPastMaxDecodedIsNotCompared(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{MaxDecoded: 64})
	twice := func(seed int) *Response {
		var text bytes.Buffer
		for i := range 400 {
			fmt.Fprintf(&text, "%d ", i*i*seed)
		}
		return &Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}, "Content-Encoding": {"gzip, gzip"}},
			Body: ctGzip(t, ctGzip(t, text.Bytes()))}
	}
	var plain bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&plain, "%d ", i)
	}
	whole := &Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: plain.Bytes()}
	for name, shadow := range map[string]*Response{"stacked on both sides": twice(7), "against a whole body past it": whole} {
		res := Compare(twice(3), shadow, r)
		if len(res.Differences) != 0 || !res.TooLarge {
			t.Errorf("%s: %s, want no difference and TooLarge", name, ctDiffs(res))
		}
	}
}

// TestXGzipIsGzip: "x-gzip" is gzip (RFC 9110 §8.4.1.3), not an unknown
// coding whose body cannot be decoded (encoding.go appendCodings).
func TestXGzipIsGzip(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	p := ctJSON("")
	p.Body = ctGzip(t, []byte(`{"a":1}`))
	p.Header.Set("Content-Encoding", "x-gzip")
	if res := Compare(p, ctJSON(`{"a":1}`), r); res.Outcome != Match {
		t.Errorf("%s, want a match", ctDiffs(res))
	}
}

// TestDifferenceTextIsReadable: what an SRE reads in a diff sample.
// Byte excerpts start 32 bytes before the first difference and are cut
// at whole characters (values.go excerpt), so accented text is not shown
// Go-quoted; a JSON value of exactly 4096 bytes is shown whole
// (values.go jsonValue: <=); invalid UTF-8 inside a JSON string is shown
// as U+FFFD (values.go appendCompact); an unnamed cookie is
// "(unnamed)" (headers.go headerText).
func TestDifferenceTextIsReadable(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	long := strings.Repeat("x", maxValueBytes-2)
	for _, tc := range []struct {
		name            string
		p, s            *Response
		primary, shadow string // want, as Go strings for JSON strings
		note            string // want a substring of the note
		noNote          bool   // a whole value: no note at all
	}{
		{"lead of 32 bytes", ctText(strings.Repeat("a", 100) + "X"), ctText(strings.Repeat("a", 100) + "Y"),
			strings.Repeat("a", 32) + "X", strings.Repeat("a", 32) + "Y", "excerpts start at byte 68", false},
		{"excerpt starts at a whole character", ctText(strings.Repeat("é", 50) + "zX"), ctText(strings.Repeat("é", 50) + "zY"),
			strings.Repeat("é", 15) + "zX", strings.Repeat("é", 15) + "zY", "", false},
		{"excerpt ends at a whole character", ctText("X" + strings.Repeat("é", 200)), ctText("Y" + strings.Repeat("é", 200)),
			"X" + strings.Repeat("é", 127), "Y" + strings.Repeat("é", 127), "", false},
		{"4096-byte value shown whole", ctJSON(`{"v":"` + long + `"}`), ctJSON(`{"v":"y"}`), long, "y", "", true},
		{"invalid UTF-8 as U+FFFD", ctJSON("{\"v\":\"x\xffy\"}"), ctJSON(`{"v":"z"}`), "x\ufffdy", "z", "", true},
		{"unnamed cookie", &Response{Status: 200, Header: http.Header{"Set-Cookie": {"abc"}}},
			&Response{Status: 200, Header: http.Header{"Set-Cookie": {"sid=1"}}}, "(unnamed)", "sid", "", false},
	} {
		res := Compare(tc.p, tc.s, r)
		if len(res.Differences) != 1 {
			t.Errorf("%s: %s, want one difference", tc.name, ctDiffs(res))
			continue
		}
		d := res.Differences[0]
		if !utf8.Valid(d.Primary) || !utf8.Valid(d.Shadow) {
			t.Errorf("%s: %q and %q, want valid UTF-8", tc.name, d.Primary, d.Shadow)
		}
		var p, s string
		if err := json.Unmarshal(d.Primary, &p); err != nil || p != tc.primary {
			t.Errorf("%s: primary %s (%v), want %q", tc.name, d.Primary, err, tc.primary)
		}
		if err := json.Unmarshal(d.Shadow, &s); err != nil || s != tc.shadow {
			t.Errorf("%s: shadow %s (%v), want %q", tc.name, d.Shadow, err, tc.shadow)
		}
		if !strings.Contains(d.Note, tc.note) || tc.noNote && d.Note != "" {
			t.Errorf("%s: note %q, want %q", tc.name, d.Note, tc.note)
		}
	}
}

// TestMaxCookieAgeZeroDeletes: "Max-Age=0" deletes a cookie whatever its
// value (headers.go parseCookieForm: net/http reads it as MaxAge -1), so
// a service that logs users out where the monolith kept them is a
// mismatch.
func TestMaxCookieAgeZeroDeletes(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	sc := func(v string) *Response { return &Response{Status: 200, Header: http.Header{"Set-Cookie": {v}}} }
	matchBothWays(t, sc("sid=abc; Path=/"), sc("sid=abc; Path=/; Max-Age=0"), r, false)
}

// TestMalformedQuotedDirectiveIsNoPanic: a directive value that is one
// lone quote is a value of its own, never a panic on the comparison pool
// (headers.go directives: len(value) >= 2).
func TestMalformedQuotedDirectiveIsNoPanic(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	cc := func(v string) *Response { return &Response{Status: 200, Header: http.Header{"Cache-Control": {v}}} }
	matchBothWays(t, cc(`no-cache="`), cc(`no-cache=`), r, false)
}

// TestRedactURLKeepsAFinalEncodedSemicolon: "%3B" ends a path parameter
// also at the very end of a URL (redact.go paramStart: i+2 < len(v)), so
// the redacted Location keeps the URL's shape.
func TestRedactURLKeepsAFinalEncodedSemicolon(t *testing.T) {
	t.Parallel()
	if got, want := RedactURL("/a;x=1%3B"), "/a;x=[redacted]%3B"; got != want {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
}

// TestRulesBounds: max_decoded may be 1 GiB exactly (rules.go:
// maxDecoded > maxMaxDecoded); under an unordered_json array, a member
// name is no index and is accepted, while a wildcard that matches the
// array's name still names an element by its index and is refused
// (rules.go indexesInto).
func TestRulesBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  RulesConfig
		ok   bool
	}{
		{"max_decoded 1 GiB", RulesConfig{MaxDecoded: maxMaxDecoded}, true},
		{"max_decoded past 1 GiB", RulesConfig{MaxDecoded: maxMaxDecoded + 1}, false},
		{"a member name below an unordered array", RulesConfig{UnorderedJSON: []string{"/items"}, IgnoreJSON: []string{"/items/meta"}}, true},
		{"a wildcard for the array, then an index", RulesConfig{UnorderedJSON: []string{"/items"}, IgnoreJSON: []string{"/*/0/ts"}}, false},
	} {
		if _, err := NewRules(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok = %v", tc.name, err, tc.ok)
		}
	}
}

// TestMatchIsNotTooLarge: TooLarge is set only when bodies were not
// compared; on an ordinary match it stays false, or the proxy would count
// every match as "not compared" (compare.go result).
func TestMatchIsNotTooLarge(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	if res := Compare(ctJSON(`{"a":1}`), ctJSON(`{"a":1.0}`), r); res.Outcome != Match || res.TooLarge {
		t.Errorf("%s, want a match, not TooLarge", ctDiffs(res))
	}
}

// TestZeroKindAndOutcomeHaveNames: the zero Kind and Outcome print as
// "kind(0)" and "outcome(0)", never "", so a Result nobody filled in is
// visible in a log or a metric label (compare.go String).
func TestZeroKindAndOutcomeHaveNames(t *testing.T) {
	t.Parallel()
	if got := Kind(0).String(); got != "kind(0)" {
		t.Errorf("Kind(0) = %q", got)
	}
	if got := Outcome(0).String(); got != "outcome(0)" {
		t.Errorf("Outcome(0) = %q", got)
	}
}

// TestNoiseInATextBodyPastMaxDecoded: two unencoded text bodies past
// max_decoded are compared whole, as bytes (doc.go, Bodies), so the
// monolith's own varying token there (a CSRF token in a large page) is
// noise as it is in a small page (doc.go, Noise cancellation). Today the
// learning pass returns early for bodies past the limit, and such a page
// is a mismatch on every request.
func TestNoiseInATextBodyPastMaxDecoded(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{MaxDecoded: 16})
	page := func(tok string) *Response {
		return &Response{Status: 200, Header: http.Header{"Content-Type": {"text/html"}},
			Body: []byte("<html><p>token=" + tok + ";</p>" + strings.Repeat("<br>", 8) + "</html>")}
	}
	res := NewNoise(0).Compare(page("AAAA"), page("CCCC"), page("AAAA"), page("BBBB"), r)
	if res.Outcome != Match {
		t.Errorf("%s, want a match: the token is the monolith's own noise", ctDiffs(res))
	}
}
