package compare

import (
	"net/http"
	"strings"
	"testing"
)

// Each test here pins a behaviour that a one-token change of the
// comparison (a hand mutation test, 2026-12-07) left unnoticed by the
// other tests.

// TestJSONEdgesBothWays: JSON bodies that must (not) match, each
// both ways round.
func TestJSONEdgesBothWays(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	cases := []struct {
		name  string
		p, s  string
		match bool
	}{
		// numbersEqual: the sign counts (number.go: da.neg != db.neg).
		{"-1 vs 1", `{"a":-1}`, `{"a":1}`, false},
		{"-1.5e3 vs 1.5e3", `[-1.5e3]`, `[1500]`, false},
		{"-1.5e3 vs -1500", `[-1.5e3]`, `[-1500]`, true},
		// A 19-digit exponent does not wrap around int64 (number.go: len(expo) > 18).
		{"19-digit exponent does not wrap", `[1e9999999999999999999]`, `[1e-8446744073709551617]`, false},
		// A literal that ends the body is parsed (json.go: len(src)-i >= len(lit.text)).
		{"true at the very end", `true`, ` true `, true},
		{"null at the very end", `null`, "null\n", true},
		// UTF-16 surrogate pairs from U+D800 decode to their code point
		// (json.go: 0xd800 <= r).
		{"surrogate pair from U+D800", `["\ud800\udc00"]`, `["` + "\U00010000" + `"]`, true},
		// A raw 0xED (start of a WTF-8 surrogate) in a member name is not
		// the escaped lone surrogate (json.go: c == 0xed marks it escaped).
		{"raw surrogate bytes vs escaped lone surrogate, as key", "{\"\xed\xa0\x80\":1}", `{"\ud800":1}`, false},
		// Invalid JSON is not compared as JSON: an unescaped control
		// character in a string (json.go: c < 0x20), a leading zero
		// (json.go: the '0' case of scanNumber).
		{"raw 0x1f in a string is not JSON", "{\"a\":\"x\x1f\",\"b\":1}", "{\"b\":1,\"a\":\"x\x1f\"}", false},
		{"leading zero is not JSON", `[01]`, `[1]`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			matchBothWays(t, ctJSON(tc.p), ctJSON(tc.s), r, tc.match)
		})
	}
}

// TestTruncatedUnicodeEscapeIsNoPanic: a body ending inside a
// \u escape is malformed JSON, never a panic (json.go: i+4 >= len(src)).
func TestTruncatedUnicodeEscapeIsNoPanic(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	for _, body := range []string{`"\u123`, `["\u12`, `{"a":"\u1`} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Compare panicked on %q: %v", body, p)
				}
			}()
			// Capacity exactly the length: reading past the end panics
			// rather than finding whatever the array holds beyond it.
			exact := func(s string) *Response {
				resp := ctJSON(s)
				resp.Body = resp.Body[:len(resp.Body):len(resp.Body)]
				return resp
			}
			res := Compare(exact(body), exact(body+" "), r)
			if res.Outcome != Mismatch {
				t.Errorf("%q vs the same with a space: %s, want a mismatch (not JSON: compared as bytes)", body, ctDiffs(res))
			}
		}()
	}
}

// TestDifferenceLimitCountsStatusAndHeaders: the limit holds
// for status and header differences too, which are admitted without the
// body's full() check (compare.go: len(c.diffs) >= c.limit).
func TestDifferenceLimitCountsStatusAndHeaders(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{MaxDifferences: 1})
	p := &Response{Status: 200, Header: http.Header{"X-A": {"1"}, "X-B": {"1"}}}
	s := &Response{Status: 500, Header: http.Header{"X-A": {"2"}, "X-B": {"2"}}}
	res := Compare(p, s, r)
	if len(res.Differences) != 1 || res.Omitted != 2 || res.Outcome != Mismatch {
		t.Fatalf("listed %d, omitted %d, outcome %v; want 1, 2, mismatch: %s", len(res.Differences), res.Omitted, res.Outcome, ctDiffs(res))
	}
	if res.Differences[0].Kind != KindStatus {
		t.Errorf("listed %v, want the status first", res.Differences[0].Kind)
	}
}

// TestKindAndOutcomeRefuseEmptyText: "" is no kind (compare.go:
// name != "" in UnmarshalText); the zero Kind must not be decodable.
func TestKindAndOutcomeRefuseEmptyText(t *testing.T) {
	t.Parallel()
	var k Kind
	if err := k.UnmarshalText([]byte("")); err == nil {
		t.Errorf("Kind.UnmarshalText(\"\") = %v, nil; want an error", k)
	}
	var o Outcome
	if err := o.UnmarshalText([]byte("")); err == nil {
		t.Errorf("Outcome.UnmarshalText(\"\") = %v, nil; want an error", o)
	}
}

// TestHeaderParameterEquivalences: header rules the other tests leave open.
func TestHeaderParameterEquivalences(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	cases := []struct {
		name  string
		p, s  http.Header
		match bool
	}{
		// Charset names are case-insensitive (headers.go: strings.EqualFold(va, vb)).
		{"charset case", http.Header{"Content-Type": {"text/html; charset=ISO-8859-1"}}, http.Header{"Content-Type": {"text/html; charset=iso-8859-1"}}, true},
		{"charset differs", http.Header{"Content-Type": {"text/html; charset=ISO-8859-1"}}, http.Header{"Content-Type": {"text/html; charset=windows-1252"}}, false},
		// An empty quoted directive value is the empty value (headers.go: len(value) >= 2).
		{"empty quoted directive value", http.Header{"Cache-Control": {`no-cache="", max-age=0`}}, http.Header{"Cache-Control": {`max-age=0, no-cache=`}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			matchBothWays(t, &Response{Status: 200, Header: tc.p}, &Response{Status: 200, Header: tc.s}, r, tc.match)
		})
	}
}

// TestNoiseNeverLearnsAHeaderSentOnce: a header the monolith
// sent in one answer only is not learned as noise, so a service that never
// sends it is still a mismatch later (headers.go: addHeader's shapeAbsent).
func TestNoiseNeverLearnsAHeaderSentOnce(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	n := NewNoise(0)
	with := &Response{Status: 200, Header: http.Header{"X-Trace": {"abc"}}}
	without := &Response{Status: 200, Header: http.Header{}}
	n.Compare(with, with, with, without, r)
	if f := n.Fields(); len(f) != 0 {
		t.Errorf("learned %q from a header present in one monolith answer only", f)
	}
	res := n.Compare(with, without, nil, nil, r)
	if res.Outcome != Mismatch {
		t.Errorf("service without the header: %s, want a mismatch", ctDiffs(res))
	}
}

// TestNoiseRootScalarHidesOnlyItsType: a JSON root that is a
// scalar the monolith varies (a timestamp) is noise for another value of
// the same type only, not for null or a string (noise.go: sh == shapeValue).
func TestNoiseRootScalarHidesOnlyItsType(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	a, b := ctJSON(`1700000000`), ctJSON(`1700000001`)
	for _, tc := range []struct {
		shadow string
		match  bool
	}{
		{`1700000002`, true},
		{`null`, false},
		{`"error"`, false},
	} {
		res := NewNoise(0).Compare(a, ctJSON(tc.shadow), a, b, r)
		if got := res.Outcome == Match; got != tc.match {
			t.Errorf("shadow %s: match = %v, want %v: %s", tc.shadow, got, tc.match, ctDiffs(res))
		}
	}
}

// TestNoisePlaceLengthBound: a place of exactly maxNoiseWhere
// bytes is still learned; one byte more is not (noise.go:
// len(f.general) <= maxNoiseWhere).
func TestNoisePlaceLengthBound(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	for _, tc := range []struct {
		keyLen  int
		learned bool
	}{
		{maxNoiseWhere - 1, true}, // "/" + key: maxNoiseWhere bytes
		{maxNoiseWhere, false},
	} {
		key := strings.Repeat("k", tc.keyLen)
		a, b := ctJSON(`{"`+key+`":1}`), ctJSON(`{"`+key+`":2}`)
		n := NewNoise(0)
		n.Compare(a, a, a, b, r)
		if got := n.Len() == 1; got != tc.learned {
			t.Errorf("place of %d bytes: learned = %v, want %v (%d fields)", tc.keyLen+1, got, tc.learned, n.Len())
		}
	}
}

// matchBothWays compares p with s and s with p: whether they match must
// not depend on which side is the monolith.
func matchBothWays(t *testing.T, p, s *Response, r *Rules, want bool) {
	t.Helper()
	for _, pair := range [][2]*Response{{p, s}, {s, p}} {
		res := Compare(pair[0], pair[1], r)
		if got := res.Outcome == Match; got != want {
			t.Errorf("swapped=%v: match = %v, want %v: %s", pair[0] == s, got, want, ctDiffs(res))
		}
	}
}
