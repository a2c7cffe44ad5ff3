package compare

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"testing"
)

func ctRules(t *testing.T, cfg RulesConfig) *Rules {
	t.Helper()
	r, err := NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ctJSON(body string) *Response {
	return &Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

// ctText is a 200 answer of body as text/plain.
func ctText(body string) *Response {
	return &Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(body)}
}

func ctGzip(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func ctDiffs(res Result) string {
	b, _ := json.Marshal(res)
	return string(b)
}

// TestCompareContractCases holds the comparison's edge cases (types,
// presence, numbers, duplicate keys, strings, body shapes, encodings),
// each both ways round.
func TestCompareContractCases(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	plain := []byte(`{"a":1,"b":[1,2]}`)
	cases := []struct {
		name  string
		p, s  *Response
		match bool
	}{
		{"1 vs \"1\"", ctJSON(`{"a":1}`), ctJSON(`{"a":"1"}`), false},
		{"null vs missing", ctJSON(`{"a":null}`), ctJSON(`{}`), false},
		{"missing vs null", ctJSON(`{}`), ctJSON(`{"a":null}`), false},
		{"shadow-only member", ctJSON(`{"a":1}`), ctJSON(`{"a":1,"b":2}`), false},
		{"array order", ctJSON(`[1,2]`), ctJSON(`[2,1]`), false},
		{"1.0 vs 1 vs 1e0", ctJSON(`[1.0,1,1e0,10e-1,0.1e1]`), ctJSON(`[1,1e0,1.0,1,1]`), true},
		{"-0 vs 0", ctJSON(`[-0,0.0,-0e5]`), ctJSON(`[0,0,0]`), true},
		{"large ints", ctJSON(`12345678901234567890`), ctJSON(`12345678901234567891`), false},
		{"1.5 vs 15e-1", ctJSON(`[1.5,100.5,0.001]`), ctJSON(`[15e-1,1.005e2,1e-3]`), true},
		{"1.5 vs 1.05", ctJSON(`[10.5]`), ctJSON(`[1.05e1]`), true},
		{"10.5 vs 1.05", ctJSON(`[10.5]`), ctJSON(`[1.05]`), false},
		{"10 vs 100", ctJSON(`[10]`), ctJSON(`[100]`), false},
		{"dup keys swapped", ctJSON(`{"a":1,"a":2}`), ctJSON(`{"a":2,"a":1}`), false},
		{"dup key extra", ctJSON(`{"a":1,"a":2}`), ctJSON(`{"a":1}`), false},
		{"dup key extra unaligned", ctJSON(`{"b":0,"a":1,"a":2}`), ctJSON(`{"a":1,"b":0}`), false},
		{"invalid utf8 differs", ctJSON("{\"a\":\"\xff\"}"), ctJSON("{\"a\":\"\xfe\"}"), false},
		{"escape equal", ctJSON(`{"a":"caf\u00e9","\u0062":"\/"}`), ctJSON(`{"a":"café","b":"/"}`), true},
		{"truncated JSON", ctJSON(`{"a":[1,2,3]}`), ctJSON(`{"a":[1,2,3`), false},
		{"gzip vs plain equal", &Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, Body: ctGzip(t, plain)}, ctJSON(string(plain)), true},
		{"gzip vs plain differs", &Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, Body: ctGzip(t, plain)}, ctJSON(`{"a":2,"b":[1,2]}`), false},
		{"charset differs on text", &Response{Status: 200, Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}, Body: []byte("x")}, &Response{Status: 200, Header: http.Header{"Content-Type": {"text/html; charset=iso-8859-1"}}, Body: []byte("x")}, false},
		{"true vs false", ctJSON(`[true]`), ctJSON(`[false]`), false},
		{"nested type change", ctJSON(`{"a":{"b":1}}`), ctJSON(`{"a":[1]}`), false},
		{"key escapes a/b", ctJSON(`{"a/b":1}`), ctJSON(`{"a\/b":2}`), false},
		{"text scalars", &Response{Status: 200, Body: []byte("1")}, &Response{Status: 200, Body: []byte("1.0")}, false},
		{"trailing garbage after JSON", ctJSON(`{"a":1}`), ctJSON(`{"a":1}x`), false},
		{"two JSON docs", ctJSON(`{"a":1}`), ctJSON(`{"a":1}{"a":1}`), false},
		{"lone surrogate vs replacement", ctJSON(`["\ud800"]`), ctJSON(`["\ufffd"]`), false},
		{"big exponent", ctJSON(`[1e1000000000000000000]`), ctJSON(`[10e999999999999999999]`), true},
		{"big exponent differs", ctJSON(`[1e1000000000000000000]`), ctJSON(`[1e1000000000000000001]`), false},
	}
	for _, tc := range cases {
		res := Compare(tc.p, tc.s, r)
		if got := res.Outcome == Match; got != tc.match {
			t.Errorf("%s: match=%v, want %v: %s", tc.name, got, tc.match, ctDiffs(res))
		}
		// Symmetry.
		res2 := Compare(tc.s, tc.p, r)
		if got := res2.Outcome == Match; got != tc.match {
			t.Errorf("%s (swapped): match=%v, want %v: %s", tc.name, got, tc.match, ctDiffs(res2))
		}
	}
}

// TestNoiseKeepsPresenceAndTypeDifferences: noise learned where the
// monolith's values vary does not hide a shadow that drops the field,
// changes its type, or answers an empty list where the monolith's list
// merely varied in length. (Learned without shapes, all three were
// matches.)
func TestNoiseKeepsPresenceAndTypeDifferences(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	t.Run("list length varies once, empty list hidden", func(t *testing.T) {
		n := NewNoise(0)
		// Learn: the monolith's feed grew between its two answers.
		a := ctJSON(`{"items":[{"id":1},{"id":2}]}`)
		b := ctJSON(`{"items":[{"id":1},{"id":2},{"id":3}]}`)
		n.Compare(a, a, a, b, r)
		t.Logf("learned %q", n.Fields())
		// Later: the service returns no items at all.
		res := n.Compare(ctJSON(`{"items":[{"id":1},{"id":2}]}`), ctJSON(`{"items":[]}`), nil, nil, r)
		if res.Outcome == Match {
			t.Errorf("service returning [] instead of 2 items is a match after noise learning: %s", ctDiffs(res))
		}
	})
	t.Run("noisy value, field missing in shadow hidden", func(t *testing.T) {
		n := NewNoise(0)
		n.Compare(ctJSON(`{}`), ctJSON(`{}`), ctJSON(`{"at":"12:00:01"}`), ctJSON(`{"at":"12:00:02"}`), r)
		res := n.Compare(ctJSON(`{"at":"12:00:03"}`), ctJSON(`{}`), nil, nil, r)
		if res.Outcome == Match {
			t.Errorf("shadow missing a noisy member entirely is a match: %s", ctDiffs(res))
		}
		res = n.Compare(ctJSON(`{"at":"12:00:03"}`), ctJSON(`{"at":12}`), nil, nil, r)
		if res.Outcome == Match {
			t.Errorf("shadow changing a noisy string to a number is a match: %s", ctDiffs(res))
		}
		// What was learned still hides what the monolith showed: values.
		if res = n.Compare(ctJSON(`{"at":"12:00:03"}`), ctJSON(`{"at":"12:00:04"}`), nil, nil, r); res.Outcome != Match || res.Noisy != 1 {
			t.Errorf("a varying value after learning: %s, want a match with 1 noisy", ctDiffs(res))
		}
	})
	t.Run("type varies: values and types are noise, presence is not", func(t *testing.T) {
		n := NewNoise(0)
		n.Compare(ctJSON(`{}`), ctJSON(`{}`), ctJSON(`{"deletedAt":null}`), ctJSON(`{"deletedAt":"x"}`), r)
		for _, tc := range []struct {
			p, s  string
			match bool
		}{
			{`{"deletedAt":"a"}`, `{"deletedAt":"b"}`, true},
			{`{"deletedAt":"a"}`, `{"deletedAt":null}`, true},
			{`{"deletedAt":"a"}`, `{}`, false},
		} {
			if res := n.Compare(ctJSON(tc.p), ctJSON(tc.s), nil, nil, r); (res.Outcome == Match) != tc.match {
				t.Errorf("%s vs %s: %s, want match %v", tc.p, tc.s, ctDiffs(res), tc.match)
			}
		}
	})
	t.Run("presence varies: noise for that request only", func(t *testing.T) {
		n := NewNoise(0)
		a, b := ctJSON(`{"items":[1,2]}`), ctJSON(`{"items":[1,2,3]}`)
		if res := n.Compare(a, b, a, b, r); res.Outcome != Match || res.Noisy != 1 {
			t.Errorf("the list grew in both pairs: %s, want a match with 1 noisy", ctDiffs(res))
		}
		if n.Len() != 0 {
			t.Errorf("learned %q from a length difference", n.Fields())
		}
		if res := n.Compare(a, b, nil, nil, r); res.Outcome != Mismatch {
			t.Errorf("a longer list with no monolith pair: %s, want a mismatch", ctDiffs(res))
		}
	})
}

// TestStackedCodingExcerptIsThePrimarys: with stacked codings, a primary
// body that fails at an intermediate layer is reported from its partial
// output, which the shadow's decoding must not overwrite (it did when the
// two sides shared one intermediate buffer).
func TestStackedCodingExcerptIsThePrimarys(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{MaxDecoded: 64})
	mk := func(fill byte) []byte {
		x := make([]byte, 4096)
		seed := uint32(fill)
		for i := range x {
			seed = seed*1664525 + 1013904223
			x[i] = byte(seed >> 24) // incompressible: gzip(x) > 64 bytes
		}
		return ctGzip(t, ctGzip(t, x))
	}
	hdr := func() http.Header {
		return http.Header{"Content-Type": {"application/octet-stream"}, "Content-Encoding": {"gzip, gzip"}}
	}
	// The shadow's body decodes within the limit through the same two
	// layers (two bodies both past it are not compared at all).
	pBody, sBody := mk('a'), ctGzip(t, ctGzip(t, bytes.Repeat([]byte("A"), 48)))
	res := Compare(&Response{Status: 200, Header: hdr(), Body: pBody}, &Response{Status: 200, Header: hdr(), Body: sBody}, r)
	if len(res.Differences) != 1 {
		t.Fatalf("want one difference: %s", ctDiffs(res))
	}
	d := res.Differences[0]
	// What the primary's first layer decodes to (the gzip(x) inside).
	var want bytes.Buffer
	zr, _ := gzip.NewReader(bytes.NewReader(pBody))
	want.ReadFrom(zr)
	wantEx := excerpt(want.Bytes()[:65], 0)
	if !bytes.Equal(d.Primary, wantEx) {
		t.Errorf("primary excerpt is not the primary's decoded bytes:\n got  %s\n want %s\n shadow %s", d.Primary, wantEx, d.Shadow)
	}
}

// TestLoneSurrogateIsNotRawBytes: the escape "\ud800" and the raw
// (invalid UTF-8) bytes ED A0 80 are different JSON texts (encoding/json
// reads them as one and three U+FFFD); appendUnquoted's WTF-8 decoding
// made them equal.
func TestLoneSurrogateIsNotRawBytes(t *testing.T) {
	t.Parallel()
	r := ctRules(t, RulesConfig{})
	res := Compare(ctJSON(`["\ud800"]`), ctJSON("[\"\xed\xa0\x80\"]"), r)
	if res.Outcome == Match {
		t.Errorf("escaped lone surrogate equals raw invalid bytes: %s", ctDiffs(res))
	}
}
