package compare_test

import (
	"net/http"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

func reviewJSON(body string) *compare.Response {
	return &compare.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

// Keys holding bytes the raw-byte marking touches (0xED starts Hangul
// syllables U+D000-U+D7FF), and keys beyond the BMP, written raw on one
// side and escaped on the other: the same key, ignore_json still applies,
// and the pointer of a difference shows the key as written.
func TestNonASCIIKeys(t *testing.T) {
	r, err := compare.NewRules(compare.RulesConfig{IgnoreJSON: []string{"/한/ts", "/😀/ts"}})
	if err != nil {
		t.Fatal(err)
	}
	a := reviewJSON(`{"한":{"ts":1,"v":1},"😀":{"ts":1,"v":1}}`)
	b := reviewJSON(`{"\ud55c":{"ts":2,"v":1},"\ud83d\ude00":{"ts":2,"v":1}}`)
	if res := compare.Compare(a, b, r); res.Outcome != compare.Match {
		t.Errorf("same keys, ignored fields: %+v", res)
	}
	b = reviewJSON(`{"\ud55c":{"ts":2,"v":2},"😀":{"ts":2,"v":1}}`)
	res := compare.Compare(a, b, r)
	if len(res.Differences) != 1 || res.Differences[0].Pointer != "/한/v" {
		t.Errorf("want one difference at /한/v, got %+v", res)
	}
	// A raw lone-surrogate encoding is not the escape.
	a = reviewJSON("{\"k\":\"\xed\xa0\x80\"}")
	b = reviewJSON(`{"k":"\ud800"}`)
	if res := compare.Compare(a, b, r); res.Outcome == compare.Match {
		t.Errorf("raw ED A0 80 matched the escape \\ud800")
	}
	a = reviewJSON("{\"k\":\"\xff\xed\xa0\x80\"}")
	b = reviewJSON("{\"k\":\"\xff\xff\xed\xa0\x80\"}")
	if res := compare.Compare(a, b, r); res.Outcome == compare.Match {
		t.Errorf("different raw strings matched")
	}
	a = reviewJSON("{\"\xed\xa0\x80x\":1}")
	b = reviewJSON("{\"\xed\xa0\x80x\":2}")
	res = compare.Compare(a, b, r)
	if len(res.Differences) != 1 || res.Differences[0].Pointer != "/\xed\xa0\x80x" {
		t.Errorf("pointer of a raw-marked key: %+v", res)
	}
}
