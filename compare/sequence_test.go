package compare_test

import (
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// TestJSONSequences: a stream of JSON values, one a line (NDJSON, JSON
// Lines, a Kubernetes watch) or each after a record separator (RFC 7464),
// is compared value by value, as the elements of an array.
func TestJSONSequences(t *testing.T) {
	t.Parallel()
	resp := func(media, body string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", media), Body: []byte(body)}
	}
	const stream = "{\"id\":1,\"ts\":\"10:00\"}\n{\"id\":2,\"ts\":\"10:01\"}\n"
	tests := []struct {
		name            string
		rules           compare.RulesConfig
		primary, shadow *compare.Response
		want            string // the differences, as diffsJSON gives them
	}{
		{"key order and spacing", compare.RulesConfig{}, resp("application/x-ndjson", stream),
			resp("application/x-ndjson", "{\"ts\":\"10:00\",\"id\":1.0}\r\n\n{ \"ts\":\"10:01\", \"id\":2 }"), "[]"},
		{"a field of the second line", compare.RulesConfig{}, resp("application/x-ndjson", stream),
			resp("application/x-ndjson", "{\"id\":1,\"ts\":\"10:00\"}\n{\"id\":3,\"ts\":\"10:01\"}\n"),
			`[{"kind":"body","pointer":"/1/id","primary":2,"shadow":3}]`},
		{"a line more", compare.RulesConfig{}, resp("application/json", stream),
			resp("application/json", stream+"{\"id\":3}\n"), `[{"kind":"body","pointer":"/2","shadow":{"id":3}}]`},
		{"one value against a stream", compare.RulesConfig{}, resp("application/json", `{"id":1,"ts":"10:00"}`),
			resp("application/json", stream), `[{"kind":"body","pointer":"/1","shadow":{"id":2,"ts":"10:01"}}]`},
		{"record separators", compare.RulesConfig{}, resp("application/json-seq", "\x1e{\"id\":1}\n\x1e{\"id\":2}\n"),
			resp("application/json-seq", "\x1e{\"id\":1}\n\x1e{\"id\":5}\n"), `[{"kind":"body","pointer":"/1/id","primary":2,"shadow":5}]`},
		{"ignore_json per line", compare.RulesConfig{IgnoreJSON: []string{"/*/ts"}}, resp("application/jsonl", stream),
			resp("application/jsonl", "{\"id\":1,\"ts\":\"11:00\"}\n{\"id\":2,\"ts\":\"11:01\"}\n"), "[]"},
		{"sniffed under text/plain", compare.RulesConfig{}, resp("text/plain", stream),
			resp("text/plain", "{\"ts\":\"10:00\",\"id\":1}\n{\"ts\":\"10:01\",\"id\":2}\n"), "[]"},
		{"scalars", compare.RulesConfig{}, resp("application/x-ndjson", "1\n\"a\"\ntrue\n"),
			resp("application/x-ndjson", "1.0\n\"a\"\nfalse\n"), `[{"kind":"body","pointer":"/2","primary":true,"shadow":false}]`},
		// A stream of no values (nothing found, or a watch that ended at
		// once) is an empty array, however its encoder ends it.
		{"no values", compare.RulesConfig{}, resp("application/x-ndjson", ""), resp("application/x-ndjson", "\n"), "[]"},
		{"no values against one", compare.RulesConfig{}, resp("application/x-ndjson", " \r\n"),
			resp("application/x-ndjson", stream), `[{"kind":"body","pointer":"/0","shadow":{"id":1,"ts":"10:00"}},{"kind":"body","pointer":"/1","shadow":{"id":2,"ts":"10:01"}}]`},
		{"no records", compare.RulesConfig{}, resp("application/json-seq", "\x1e\n"), resp("application/json-seq", ""), "[]"},
	}
	for _, tt := range tests {
		res := compare.Compare(tt.primary, tt.shadow, mustRules(t, tt.rules))
		if got := diffsJSON(t, res.Differences); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}

	// Not sequences: values that run together, or one followed by text,
	// differ as bytes (one difference for the whole body).
	for _, body := range []string{`{"id":1}{"id":2}`, `{"id":1} trailing`} {
		res := compare.Compare(resp("application/json", body), resp("application/json", "{\"id\":1}\n{\"id\":2}"), mustRules(t, compare.RulesConfig{}))
		if len(res.Differences) != 1 || res.Differences[0].Pointer != "" {
			t.Errorf("%q: %s, want one difference of the whole body", body, diffsJSON(t, res.Differences))
		}
	}
	// A page that starts like JSON is not sniffed as a stream.
	page := "{\"id\":1}\n<p>hi</p>"
	if res := compare.Compare(resp("text/html", page), resp("text/html", page+" "), mustRules(t, compare.RulesConfig{})); res.Outcome != compare.Mismatch {
		t.Errorf("text/html page: %v, want a mismatch of bytes", res.Outcome)
	}

	// Noise is learned per line: the monolith's two streams differ in
	// every line's ts, which then hides the service's ts but not its id.
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	later := "{\"id\":1,\"ts\":\"10:05\"}\n{\"id\":2,\"ts\":\"10:06\"}\n"
	res := noise.Compare(resp("application/x-ndjson", stream), resp("application/x-ndjson", "{\"id\":1,\"ts\":\"12:00\"}\n{\"id\":9,\"ts\":\"12:01\"}\n"),
		resp("application/x-ndjson", stream), resp("application/x-ndjson", later), r)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/1/id","primary":2,"shadow":9}]`; got != want {
		t.Errorf("with noise: %s, want %s", got, want)
	}
	if f := noise.Fields(); len(f) != 1 || f[0] != "/*/ts" {
		t.Errorf("noise fields %q, want [/*/ts]", f)
	}
}

// TestJSONStreamsByMediaType: under a stream's media type a body is a
// stream even of one line, so rules written for lines apply to it; the
// record separator belongs to application/json-seq alone, and a body under
// a JSON type with a stray one is no JSON at all; a stream's charset is
// UTF-8 by definition, as JSON's.
func TestJSONStreamsByMediaType(t *testing.T) {
	t.Parallel()
	resp := func(media, body string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", media), Body: []byte(body)}
	}
	ignoreTS := mustRules(t, compare.RulesConfig{IgnoreJSON: []string{"/*/ts"}})
	for _, media := range []string{"application/x-ndjson", "application/jsonl", "application/json-seq"} {
		if res := compare.Compare(resp(media, "{\"ts\":1,\"id\":7}\n"), resp(media, "{\"ts\":2,\"id\":7}\n"), ignoreTS); res.Outcome != compare.Match {
			t.Errorf("%s, one line, ignore_json /*/ts: %s, want a match", media, diffsJSON(t, res.Differences))
		}
		if res := compare.Compare(resp(media, "{\"user\":{\"ts\":1}}\n"), resp(media, "{\"user\":{\"ts\":2}}\n"), ignoreTS); res.Outcome != compare.Mismatch {
			t.Errorf("%s, one line: /0/user/ts hidden by /*/ts", media)
		}
		if res := compare.Compare(resp(media, "[1,2]\n"), resp(media, "[2,1]\n"), mustRules(t, compare.RulesConfig{UnorderedJSON: []string{""}})); res.Outcome != compare.Mismatch {
			t.Errorf("%s, one line: unordered_json \"\" took the line for the stream", media)
		}
		if res := compare.Compare(resp(media+"; charset=utf-8", "1\n"), resp(media, "1\n"), mustRules(t, compare.RulesConfig{})); res.Outcome != compare.Match {
			t.Errorf("%s with and without charset=utf-8: %s, want a match", media, diffsJSON(t, res.Differences))
		}
	}
	for _, body := range []string{"\x1e{\"a\":1}", "{\"a\":1}\x1e", "\x1e\x1e{\"a\":1}\n"} {
		if res := compare.Compare(resp("application/json", `{"a":1}`), resp("application/json", body), mustRules(t, compare.RulesConfig{})); res.Outcome != compare.Mismatch {
			t.Errorf("application/json %q: match with {\"a\":1}, want a mismatch (no JSON parser reads it)", body)
		}
	}
}

// TestStreamAgainstTheDeepestValue: a value nested to the depth limit is
// one value, but as a stream's line it is one level too deep: the pair is
// compared as bytes, not with the value taken for an empty stream.
func TestStreamAgainstTheDeepestValue(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	resp := func(body string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json"), Body: []byte(body)}
	}
	for _, pair := range [][2]string{{"1\n2\n", deep}, {deep, "1\n2\n"}} {
		res := compare.Compare(resp(pair[0]), resp(pair[1]), mustRules(t, compare.RulesConfig{}))
		if len(res.Differences) != 1 || res.Differences[0].Pointer != "" {
			t.Errorf("%d differences (first at %q), want one of the whole bodies", len(res.Differences), res.Differences[0].Pointer)
		}
	}
}

// TestRecordSeparatorsOnlyInJSONSeq: no NDJSON or JSON Lines reader takes
// a record separator; only application/json-seq's values stand after one.
func TestRecordSeparatorsOnlyInJSONSeq(t *testing.T) {
	t.Parallel()
	resp := func(media, body string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", media), Body: []byte(body)}
	}
	const rs, clean = "\x1e{\"a\":1}\n\x1e{\"a\":2}\n", "{\"a\":1}\n{\"a\":2}\n"
	for _, media := range []string{"application/x-ndjson", "application/jsonl"} {
		if res := compare.Compare(resp(media, clean), resp(media, rs), mustRules(t, compare.RulesConfig{})); res.Outcome != compare.Mismatch {
			t.Errorf("%s with record separators: match, want a mismatch", media)
		}
	}
	if res := compare.Compare(resp("application/json-seq", rs), resp("application/json-seq", "\x1e{\"a\":1}\x1e{\"a\":2}"), mustRules(t, compare.RulesConfig{})); res.Outcome != compare.Match {
		t.Errorf("application/json-seq: %s, want a match", diffsJSON(t, res.Differences))
	}
}
