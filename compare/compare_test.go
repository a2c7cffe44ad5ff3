package compare_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/strangler-proxy/strangler/compare"
)

func mustRules(t testing.TB, cfg compare.RulesConfig) *compare.Rules {
	t.Helper()
	r, err := compare.NewRules(cfg)
	if err != nil {
		t.Fatalf("NewRules: %v", err)
	}
	return r
}

// hdr builds a header from name, value pairs; a name may repeat.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func jsonResp(body string) *compare.Response {
	return &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json"), Body: []byte(body)}
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zlibbed(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflated(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func brotlied(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encoded returns a JSON response whose body is enc(body) labelled coding.
func encoded(coding string, body []byte) *compare.Response {
	return &compare.Response{
		Status: 200,
		Header: hdr("Content-Type", "application/json", "Content-Encoding", coding),
		Body:   body,
	}
}

// diffsJSON renders differences without their notes, which have tests of
// their own, so that cases read as the JSON an operator sees.
func diffsJSON(t testing.TB, ds []compare.Difference) string {
	t.Helper()
	stripped := make([]compare.Difference, len(ds))
	for i, d := range ds {
		d.Note = ""
		stripped[i] = d
	}
	b, err := json.Marshal(stripped)
	if err != nil {
		t.Fatalf("marshal differences: %v", err)
	}
	return string(b)
}

func TestCompare(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"id":7,"items":[{"sku":"a","qty":1}],"total":9.5}`)
	tests := []struct {
		name            string
		cfg             compare.RulesConfig
		primary, shadow *compare.Response
		want            string // differences as JSON; "" for a match
	}{
		{
			name:    "identical",
			primary: jsonResp(`{"a":1}`),
			shadow:  jsonResp(`{"a":1}`),
		},
		{
			name:    "status differs",
			primary: &compare.Response{Status: 200},
			shadow:  &compare.Response{Status: 500},
			want:    `[{"kind":"status","primary":200,"shadow":500}]`,
		},
		{
			name:    "header value differs",
			primary: &compare.Response{Status: 200, Header: hdr("X-Foo", "a")},
			shadow:  &compare.Response{Status: 200, Header: hdr("X-Foo", "b")},
			want:    `[{"kind":"header","header":"X-Foo","primary":"a","shadow":"b"}]`,
		},
		{
			name:    "header on one side only",
			primary: &compare.Response{Status: 200, Header: hdr("X-Only", "1")},
			shadow:  &compare.Response{Status: 200, Header: hdr()},
			want:    `[{"kind":"header","header":"X-Only","primary":"1"}]`,
		},
		{
			name:    "configured ignored header",
			cfg:     compare.RulesConfig{IgnoreHeaders: []string{"x-node"}},
			primary: &compare.Response{Status: 200, Header: hdr("X-Node", "a")},
			shadow:  &compare.Response{Status: 200, Header: hdr("X-Node", "b")},
		},
		{
			name:    "built-in ignored headers",
			primary: &compare.Response{Status: 200, Header: hdr("Date", "Mon, 01 Jan 2024 00:00:00 GMT", "Server", "nginx", "X-Request-Id", "1", "Content-Length", "10")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Date", "Tue, 02 Jan 2024 00:00:00 GMT", "Server", "go", "X-Request-Id", "2")},
		},
		{
			name:    "built-in ignored headers of infrastructure in front of one side",
			primary: &compare.Response{Status: 200, Header: hdr("X-Amz-Request-Id", "A", "Cf-Ray", "8c1")},
			shadow:  &compare.Response{Status: 200, Header: hdr("X-Envoy-Upstream-Service-Time", "3", "X-Amz-Request-Id", "B", "X-Kong-Proxy-Latency", "1")},
		},
		{
			name:    "header named in Connection is hop-by-hop",
			primary: &compare.Response{Status: 200, Header: hdr("Connection", "close, X-Hop", "X-Hop", "a")},
			shadow:  &compare.Response{Status: 200, Header: hdr("X-Hop", "b")},
		},
		{
			name:    "header names compared canonically",
			primary: &compare.Response{Status: 200, Header: http.Header{"x-foo": {"a"}}},
			shadow:  &compare.Response{Status: 200, Header: http.Header{"X-Foo": {"a"}}},
		},
		{
			name:    "multiple values in order",
			primary: &compare.Response{Status: 200, Header: hdr("X-List", "a", "X-List", "b")},
			shadow:  &compare.Response{Status: 200, Header: hdr("X-List", "b", "X-List", "a")},
			want:    `[{"kind":"header","header":"X-List","primary":"a, b","shadow":"b, a"}]`,
		},
		{
			name:    "multiple values equal their combined line",
			primary: &compare.Response{Status: 200, Header: hdr("X-List", "a", "X-List", "b")},
			shadow:  &compare.Response{Status: 200, Header: hdr("X-List", "a, b")},
		},
		{
			name:    "Set-Cookie values differ, names equal",
			primary: &compare.Response{Status: 200, Header: hdr("Set-Cookie", "session=abc; Path=/; HttpOnly", "Set-Cookie", "csrf=1")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Set-Cookie", "csrf=2", "Set-Cookie", "session=xyz; Path=/; HttpOnly")},
		},
		{
			name:    "Set-Cookie names differ",
			primary: &compare.Response{Status: 200, Header: hdr("Set-Cookie", "session=abc; Path=/", "Set-Cookie", "csrf=1")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Set-Cookie", "sid=abc; Path=/")},
			want:    `[{"kind":"header","header":"Set-Cookie","primary":"csrf, session","shadow":"sid"}]`,
		},
		{
			name:    "Content-Type compared by meaning",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json; charset=utf-8")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "Application/JSON;charset=UTF-8")},
		},
		{
			name:    "JSON charset=utf-8 is the default",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "application/problem+json")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", `application/problem+json; charset="utf-8"`)},
		},
		{
			name:    "utf8 is a label of UTF-8 (WHATWG): JSON",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json; charset=utf8")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json")},
		},
		{
			name:    "utf8 is a label of UTF-8 (WHATWG): text",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html; charset=UTF8")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html; charset=utf-8")},
		},
		{
			name:    "text charset is not defaulted",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/plain")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/plain; charset=utf-8")},
			want:    `[{"kind":"header","header":"Content-Type","primary":"text/plain","shadow":"text/plain; charset=utf-8"}]`,
		},
		{
			name:    "Content-Type differs",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html")},
			want:    `[{"kind":"header","header":"Content-Type","primary":"application/json","shadow":"text/html"}]`,
		},
		{
			name:    "Vary without Accept-Encoding",
			primary: &compare.Response{Status: 200, Header: hdr("Vary", "Accept-Encoding, Origin")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Vary", "origin")},
		},
		{
			name:    "Vary: Accept-Encoding equals no Vary",
			primary: &compare.Response{Status: 200, Header: hdr("Vary", "Accept-Encoding")},
			shadow:  &compare.Response{Status: 200, Header: hdr()},
		},
		{
			name:    "Vary missing a field",
			primary: &compare.Response{Status: 200, Header: hdr("Vary", "Authorization")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Vary", "Accept-Encoding")},
			want:    `[{"kind":"header","header":"Vary","primary":"Authorization","shadow":"Accept-Encoding"}]`,
		},
		{
			name:    "JSON nested difference",
			primary: jsonResp(`{"a":{"b":[1,2,{"c":"x"}]}}`),
			shadow:  jsonResp(`{"a":{"b":[1,2,{"c":"y"}]}}`),
			want:    `[{"kind":"body","pointer":"/a/b/2/c","primary":"x","shadow":"y"}]`,
		},
		{
			name:    "JSON pointer escapes / and ~",
			primary: jsonResp(`{"a/b":{"m~n":1}}`),
			shadow:  jsonResp(`{"a/b":{"m~n":2}}`),
			want:    `[{"kind":"body","pointer":"/a~1b/m~0n","primary":1,"shadow":2}]`,
		},
		{
			name:    "JSON key order and number forms",
			primary: jsonResp(`{"a":1,"b":100,"c":-0,"d":0.5,"e":[1.50]}`),
			shadow:  jsonResp(`{"e":[15e-1],"d":5E-1,"c":0,"b":1e2,"a":1.0}`),
		},
		{
			name:    "JSON big integers beyond float64",
			primary: jsonResp(`{"id":12345678901234567890}`),
			shadow:  jsonResp(`{"id":12345678901234567891}`),
			want:    `[{"kind":"body","pointer":"/id","primary":12345678901234567890,"shadow":12345678901234567891}]`,
		},
		{
			name:    "JSON member absent vs null",
			primary: jsonResp(`{"a":null,"b":1}`),
			shadow:  jsonResp(`{"b":1,"c":{"x":[1]}}`),
			want:    `[{"kind":"body","pointer":"/a","primary":null},{"kind":"body","pointer":"/c","shadow":{"x":[1]}}]`,
		},
		{
			name:    "JSON array lengths differ",
			primary: jsonResp(`{"items":[1,2]}`),
			shadow:  jsonResp(`{"items":[1,2,3,4]}`),
			want:    `[{"kind":"body","pointer":"/items/2","shadow":3},{"kind":"body","pointer":"/items/3","shadow":4}]`,
		},
		{
			name:    "JSON type change",
			primary: jsonResp(`{"a":1,"b":true}`),
			shadow:  jsonResp(`{"a":"1","b":false}`),
			want:    `[{"kind":"body","pointer":"/a","primary":1,"shadow":"1"},{"kind":"body","pointer":"/b","primary":true,"shadow":false}]`,
		},
		{
			name:    "JSON escapes decoded before comparing",
			primary: jsonResp(`{"\u0061":"caf\u00e9","p":"a\/b","s":"\ud83d\ude00"}`),
			shadow:  jsonResp(`{"a":"café","p":"a/b","s":"😀"}`),
		},
		{
			name:    "JSON values reported compact",
			primary: jsonResp("{\"a\": {\n  \"x\": [1, 2]\n}}"),
			shadow:  jsonResp(`{"a":{"x":[1,3]}}`),
			want:    `[{"kind":"body","pointer":"/a/x/1","primary":2,"shadow":3}]`,
		},
		{
			name:    "JSON duplicate names paired in order",
			primary: jsonResp(`{"x":1,"y":0,"x":2}`),
			shadow:  jsonResp(`{"y":0,"x":1,"x":3}`),
			want:    `[{"kind":"body","pointer":"/x","primary":2,"shadow":3}]`,
		},
		{
			name:    "ignore_json exact pointer",
			cfg:     compare.RulesConfig{IgnoreJSON: []string{"/generatedAt"}},
			primary: jsonResp(`{"generatedAt":"2024-01-01","id":1}`),
			shadow:  jsonResp(`{"generatedAt":"2024-02-02","id":1}`),
		},
		{
			name:    "ignore_json wildcard",
			cfg:     compare.RulesConfig{IgnoreJSON: []string{"/items/*/updatedAt"}},
			primary: jsonResp(`{"items":[{"id":1,"updatedAt":1},{"id":2,"updatedAt":2}]}`),
			shadow:  jsonResp(`{"items":[{"id":1,"updatedAt":3},{"id":2}]}`),
		},
		{
			name:    "ignore_json ignores a subtree, not its neighbours",
			cfg:     compare.RulesConfig{IgnoreJSON: []string{"/meta", "/a~1b"}},
			primary: jsonResp(`{"meta":{"host":"a","t":[1]},"a/b":1,"price":10}`),
			shadow:  jsonResp(`{"meta":{"host":"b"},"a/b":2,"price":12}`),
			want:    `[{"kind":"body","pointer":"/price","primary":10,"shadow":12}]`,
		},
		{
			name:    `ignore_json "" ignores the whole body`,
			cfg:     compare.RulesConfig{IgnoreJSON: []string{""}},
			primary: &compare.Response{Status: 200, Body: []byte("<p>a</p>")},
			shadow:  &compare.Response{Status: 200, Body: []byte("<p>b</p>")},
		},
		{
			name:    "gzip vs plain",
			primary: jsonResp(string(doc)),
			shadow:  encoded("gzip", gzipped(t, doc)),
		},
		{
			name:    "deflate as zlib",
			primary: jsonResp(string(doc)),
			shadow:  encoded("deflate", zlibbed(t, doc)),
		},
		{
			name:    "deflate as raw DEFLATE",
			primary: encoded("deflate", deflated(t, doc)),
			shadow:  encoded("identity", doc),
		},
		{
			name:    "br",
			primary: encoded("br", brotlied(t, doc)),
			shadow:  encoded("gzip", gzipped(t, doc)),
		},
		{
			name:    "stacked encodings undone in reverse",
			primary: encoded("gzip, br", brotlied(t, gzipped(t, doc))),
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json", "Content-Encoding", "deflate", "Content-Encoding", "GZIP"), Body: gzipped(t, zlibbed(t, doc))},
		},
		{
			name:    "decoded JSON still compared structurally",
			primary: encoded("gzip", gzipped(t, []byte(`{"a":1,"b":2}`))),
			shadow:  encoded("br", brotlied(t, []byte(`{"b":2,"a":3}`))),
			want:    `[{"kind":"body","pointer":"/a","primary":1,"shadow":3}]`,
		},
		{
			name:    "corrupt gzip",
			primary: jsonResp(string(doc)),
			shadow:  encoded("gzip", doc),
			want:    `[{"kind":"body","primary":"{\"id\":7,\"items\":[{\"sku\":\"a\",\"qty\":1}],\"total\":9.5}","shadow":"{\"id\":7,\"items\":[{\"sku\":\"a\",\"qty\":1}],\"total\":9.5}"}]`,
		},
		{
			name:    "non-JSON bodies",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"), Body: []byte("<p>hello</p>")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"), Body: []byte("<p>hallo</p>")},
			want:    `[{"kind":"body","primary":"\u003cp\u003ehello\u003c/p\u003e","shadow":"\u003cp\u003ehallo\u003c/p\u003e"}]`,
		},
		{
			name:    "one side JSON, other not",
			primary: jsonResp(`{"a":1}`),
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json"), Body: []byte(`{"a":1`)},
			want:    `[{"kind":"body","primary":"{\"a\":1}","shadow":"{\"a\":1"}]`,
		},
		{
			name:    "JSON sniffed without Content-Type",
			primary: &compare.Response{Status: 200, Body: []byte(`{"a":1,"b":2}`)},
			shadow:  &compare.Response{Status: 200, Body: []byte(` {"b":2, "a":1.0}`)},
		},
		{
			name:    "text/json is JSON (WHATWG's JSON MIME types), scalars included",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/json"), Body: []byte(`{"a":1,"b":[2]}`)},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "Text/JSON; charset=utf-8"), Body: []byte(`{"b":[2.0],"a":1}`)},
		},
		{
			name:    "text/json scalar",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/json"), Body: []byte(`1`)},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/json"), Body: []byte(`1.0`)},
		},
		{
			// PHP's default type, under which many a monolith serves its
			// JSON, escaping "/" and non-ASCII as json_encode does.
			name:    "JSON served as text/html is compared as JSON",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html; charset=UTF-8"), Body: []byte(`{"url":"http:\/\/x\/caf\u00e9","a":1}`)},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html; charset=UTF-8"), Body: []byte(`{"a":1,"url":"http://x/café"}`)},
		},
		{
			name:    "JSON as text/html against application/json: the type differs, the body not",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"), Body: []byte(`{"a":[1,2]}`)},
			shadow:  jsonResp(`{"a":[1,2.0]}`),
			want:    `[{"kind":"header","header":"Content-Type","primary":"text/html","shadow":"application/json"}]`,
		},
		{
			name:    "an HTML page is not sniffed",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"), Body: []byte(`<p>{"a":1}</p>`)},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"), Body: []byte(`<p>{"a":1.0}</p>`)},
			want:    `[{"kind":"body","primary":"\u003cp\u003e{\"a\":1}\u003c/p\u003e","shadow":"\u003cp\u003e{\"a\":1.0}\u003c/p\u003e"}]`,
		},
		{
			name:    "JSON scalars with a JSON media type",
			primary: jsonResp(`1`),
			shadow:  jsonResp(`1.0`),
		},
		{
			name:    "text scalars are not sniffed",
			primary: &compare.Response{Status: 200, Body: []byte(`1`)},
			shadow:  &compare.Response{Status: 200, Body: []byte(`1.0`)},
			want:    `[{"kind":"body","primary":"1","shadow":"1.0"}]`,
		},
		{
			name:    "no body, with and without a coding (HEAD, 204, 304)",
			primary: &compare.Response{Status: 304, Header: hdr("Content-Type", "application/json", "Content-Encoding", "gzip")},
			shadow:  &compare.Response{Status: 304, Header: hdr("Content-Type", "application/json")},
		},
		{
			name:    "no body, with two codings",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json", "Content-Encoding", "gzip")},
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json", "Content-Encoding", "br")},
		},
		{
			name:    "status, headers and body together, in that order",
			primary: &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json", "X-B", "1", "X-A", "1"), Body: []byte(`{"a":1}`)},
			shadow:  &compare.Response{Status: 201, Header: hdr("Content-Type", "application/json", "X-A", "2", "X-B", "2"), Body: []byte(`{"a":2}`)},
			want: `[{"kind":"status","primary":200,"shadow":201},` +
				`{"kind":"header","header":"X-A","primary":"1","shadow":"2"},` +
				`{"kind":"header","header":"X-B","primary":"1","shadow":"2"},` +
				`{"kind":"body","pointer":"/a","primary":1,"shadow":2}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustRules(t, tt.cfg)
			res := compare.Compare(tt.primary, tt.shadow, r)
			wantOutcome := compare.Match
			if tt.want != "" {
				wantOutcome = compare.Mismatch
			}
			if res.Outcome != wantOutcome {
				t.Errorf("Outcome = %v, want %v; differences: %s", res.Outcome, wantOutcome, diffsJSON(t, res.Differences))
			}
			if tt.want != "" {
				if got := diffsJSON(t, res.Differences); got != tt.want {
					t.Errorf("differences\n got %s\nwant %s", got, tt.want)
				}
			}
			// Comparison must not depend on which side is which.
			if back := compare.Compare(tt.shadow, tt.primary, r); back.Outcome != res.Outcome || len(back.Differences) != len(res.Differences) {
				t.Errorf("reversed: %v with %d differences, want %v with %d", back.Outcome, len(back.Differences), res.Outcome, len(res.Differences))
			}
			// Nor on how the header names are spelled: a key net/http
			// would not make (here an ignored one) sends both maps down
			// the path that canonicalizes every name.
			odd := compare.Compare(withOddKey(tt.primary), withOddKey(tt.shadow), r)
			if got, want := diffsJSON(t, odd.Differences), diffsJSON(t, res.Differences); odd.Outcome != res.Outcome || got != want {
				t.Errorf("with a key not in canonical form: %v, %s\nwant %v, %s", odd.Outcome, got, res.Outcome, want)
			}
		})
	}
}

// withOddKey returns a copy of r with a header key not in canonical form,
// of a header comparison ignores.
func withOddKey(r *compare.Response) *compare.Response {
	c := *r
	c.Header = r.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header["date"] = []string{"Thu, 01 Jan 1970 00:00:00 GMT"}
	return &c
}

func TestCompareNotes(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"a":1}`)
	tests := []struct {
		name            string
		primary, shadow *compare.Response
		note            string
	}{
		{
			name:    "corrupt gzip says why",
			primary: jsonResp(string(doc)),
			shadow:  encoded("gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}),
			note:    "shadow body: content-encoding gzip: ",
		},
		{
			name:    "truncated gzip",
			primary: encoded("gzip", gzipped(t, doc)[:10]),
			shadow:  jsonResp(string(doc)),
			note:    "primary body: content-encoding gzip: unexpected EOF",
		},
		{
			name:    "unsupported encoding",
			primary: encoded("zstd", []byte{1, 2, 3}),
			shadow:  jsonResp(string(doc)),
			note:    `primary body: unsupported content-encoding "zstd"`,
		},
		{
			name:    "first differing byte",
			primary: &compare.Response{Status: 200, Body: []byte("hello world")},
			shadow:  &compare.Response{Status: 200, Body: []byte("hello there")},
			note:    "bodies differ from byte 6 (primary 11 bytes, shadow 11 bytes); excerpts start at byte 0",
		},
		{
			name:    "only one side is JSON",
			primary: jsonResp(`{"a":1}`),
			shadow:  &compare.Response{Status: 200, Header: hdr("Content-Type", "text/plain"), Body: []byte("a=1")},
			note:    "only the primary body is JSON; bodies differ from byte 0",
		},
	}
	r := mustRules(t, compare.RulesConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := compare.Compare(tt.primary, tt.shadow, r)
			var body []compare.Difference
			for _, d := range res.Differences {
				if d.Kind == compare.KindBody {
					body = append(body, d)
				}
			}
			if len(body) != 1 {
				t.Fatalf("got %d body differences, want 1: %s", len(body), diffsJSON(t, res.Differences))
			}
			if !strings.Contains(body[0].Note, tt.note) {
				t.Errorf("note %q, want it to contain %q", body[0].Note, tt.note)
			}
		})
	}
}

func TestCompareExcerptsAreBounded(t *testing.T) {
	t.Parallel()
	a := bytes.Repeat([]byte("é"), 10_000)
	b := bytes.Clone(a)
	b[9_001] = 'x' // breaks the second byte of a rune
	bin := bytes.Repeat([]byte{0xff, 0x00}, 1000)
	tests := []struct {
		name string
		a, b []byte
	}{
		{"text", a, b},
		{"binary", bin, append(bytes.Clone(bin), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := compare.Compare(&compare.Response{Status: 200, Body: tt.a}, &compare.Response{Status: 200, Body: tt.b}, mustRules(t, compare.RulesConfig{}))
			if len(res.Differences) != 1 {
				t.Fatalf("got %d differences, want 1", len(res.Differences))
			}
			for _, v := range []json.RawMessage{res.Differences[0].Primary, res.Differences[0].Shadow} {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					t.Fatalf("excerpt %s is not a JSON string: %v", v, err)
				}
				// Go-quoted binary is at most 4 bytes per byte, plus
				// a backslash escaped for JSON.
				if len(v) > 5*256+4 {
					t.Errorf("excerpt of %d bytes, want a short one", len(v))
				}
			}
		})
	}
}

func TestCompareLimitsDifferences(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	a.WriteString("[")
	b.WriteString("[")
	for i := range 150 {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		fmt.Fprint(&a, i)
		fmt.Fprint(&b, i+1)
	}
	a.WriteString("]")
	b.WriteString("]")
	tests := []struct {
		max          int
		listed, rest int
	}{
		{0, 100, 50},
		{10, 10, 140},
		{1000, 150, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
			t.Parallel()
			r := mustRules(t, compare.RulesConfig{MaxDifferences: tt.max})
			res := compare.Compare(jsonResp(a.String()), jsonResp(b.String()), r)
			if len(res.Differences) != tt.listed || res.Omitted != tt.rest || res.Outcome != compare.Mismatch {
				t.Errorf("listed %d, omitted %d, outcome %v; want %d, %d, mismatch", len(res.Differences), res.Omitted, res.Outcome, tt.listed, tt.rest)
			}
			if tt.listed > 0 && res.Differences[0].Pointer != "/0" {
				t.Errorf("first pointer %q, want /0", res.Differences[0].Pointer)
			}
		})
	}
}

// TestCompareSecretsNeverInDifferences checks the whole JSON of a result,
// as the proxy would store it, for the secret values.
func TestCompareSecretsNeverInDifferences(t *testing.T) {
	t.Parallel()
	secrets := []string{"Bearer s3cr3t-a", "Bearer s3cr3t-b", "s3ss10n-a", "s3ss10n-b", "k3y-a", "k3y-b", "c00kie-a", "c00kie-b"}
	primary := &compare.Response{Status: 200, Header: hdr(
		"Authorization", secrets[0],
		"Set-Cookie", "session="+secrets[2]+"; Path=/",
		"X-Api-Key", secrets[4],
		"Cookie", "c="+secrets[6],
		"Proxy-Authorization", secrets[0],
	)}
	shadow := &compare.Response{Status: 200, Header: hdr(
		"Authorization", secrets[1],
		"Set-Cookie", "sid="+secrets[3],
		"X-Api-Key", secrets[5],
		"Cookie", "c="+secrets[7],
		"Proxy-Authorization", secrets[1],
	)}
	r := mustRules(t, compare.RulesConfig{SecretHeaders: []string{"x-api-key"}})
	for name, res := range map[string]compare.Result{
		"compare":  compare.Compare(primary, shadow, r),
		"reversed": compare.Compare(shadow, primary, r),
		"one side": compare.Compare(primary, &compare.Response{Status: 200}, r),
		"noise":    compare.NewNoise(0).Compare(primary, shadow, primary, shadow, r),
	} {
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s: result contains secret %q: %s", name, s, out)
			}
		}
		if name != "noise" && !bytes.Contains(out, []byte(`"[redacted]"`)) {
			t.Errorf("%s: want redacted values in %s", name, out)
		}
	}
	res := compare.Compare(primary, shadow, r)
	var headers []string
	for _, d := range res.Differences {
		headers = append(headers, d.Header)
	}
	if got, want := strings.Join(headers, ","), "Authorization,Cookie,Set-Cookie,X-Api-Key"; got != want {
		t.Errorf("differing headers %s, want %s (Proxy-Authorization is hop-by-hop)", got, want)
	}
}

func TestDifferenceJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    compare.Difference
		want string
	}{
		{compare.Difference{Kind: compare.KindBody, Pointer: "/price", Primary: json.RawMessage(`10`), Shadow: json.RawMessage(`12`)},
			`{"kind":"body","pointer":"/price","primary":10,"shadow":12}`},
		{compare.Difference{Kind: compare.KindHeader, Header: "X-Foo", Primary: json.RawMessage(`"a"`), Shadow: json.RawMessage(`"b"`)},
			`{"kind":"header","header":"X-Foo","primary":"a","shadow":"b"}`},
		{compare.Difference{Kind: compare.KindStatus, Primary: json.RawMessage(`200`), Shadow: json.RawMessage(`500`)},
			`{"kind":"status","primary":200,"shadow":500}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.d)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("got %s, want %s", b, tt.want)
		}
	}
	res, err := json.Marshal(compare.Result{Outcome: compare.Mismatch, Omitted: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"outcome":"mismatch","omitted":2}`; string(res) != want {
		t.Errorf("got %s, want %s", res, want)
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for v, want := range map[fmt.Stringer]string{
		compare.KindStatus: "status", compare.KindHeader: "header", compare.KindBody: "body",
		compare.Match: "match", compare.Mismatch: "mismatch", compare.Error: "error",
		compare.Outcome(0): "outcome(0)", compare.Kind(9): "kind(9)",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
}

func TestNewRulesRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  compare.RulesConfig
		want string
	}{
		{compare.RulesConfig{IgnoreJSON: []string{"/ok", "items"}}, `ignore_json[1] "items": a JSON Pointer is "" or starts with "/"`},
		{compare.RulesConfig{IgnoreJSON: []string{"/a~2"}}, `ignore_json[0] "/a~2": "~" must be followed by "0"`},
		{compare.RulesConfig{IgnoreJSON: []string{"/a~"}}, `ignore_json[0] "/a~"`},
		{compare.RulesConfig{IgnoreHeaders: []string{"X Foo"}}, `ignore_headers[0] "X Foo": not a valid header name`},
		{compare.RulesConfig{SecretHeaders: []string{""}}, `secret_headers[0] "": not a valid header name`},
		{compare.RulesConfig{MaxDecoded: -1}, `max_decoded -1`},
		{compare.RulesConfig{MaxDecoded: 1 << 40}, `max_decoded 1099511627776`},
		{compare.RulesConfig{MaxDifferences: -1}, `max_differences -1`},
	}
	for _, tt := range tests {
		_, err := compare.NewRules(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewRules(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := compare.NewRules(compare.RulesConfig{IgnoreJSON: []string{"", "/", "/a~0~1/*/b", "/*"}}); err != nil {
		t.Errorf("valid patterns rejected: %v", err)
	}
}

// TestCompareConcurrent shares one Rules between goroutines; run with -race.
func TestCompareConcurrent(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{IgnoreJSON: []string{"/items/*/ts"}})
	a := encoded("gzip", gzipped(t, []byte(`{"items":[{"ts":1,"v":1}],"b":[1,2]}`)))
	b := jsonResp(`{"b":[1,3],"items":[{"v":1,"ts":2}]}`)
	done := make(chan string)
	for range 8 {
		go func() {
			var got string
			for range 200 {
				got = diffsJSON(t, compare.Compare(a, b, r).Differences)
			}
			done <- got
		}()
	}
	for range 8 {
		if got, want := <-done, `[{"kind":"body","pointer":"/b/1","primary":2,"shadow":3}]`; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestCompareLargeObjects covers objects too large to pair members by
// scanning, where they are sorted by name instead.
func TestCompareLargeObjects(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	a.WriteString(`{"dup":1,`)
	b.WriteString(`{`)
	for i := range 40 {
		fmt.Fprintf(&a, `"k%02d":%d,`, i, i)
		fmt.Fprintf(&b, `"k%02d":%d,`, 39-i, 39-i)
	}
	a.WriteString(`"dup":2,"only-a":true}`)
	b.WriteString(`"dup":1,"k05":5,"dup":3}`) // k05 twice: its second occurrence has no pair
	r := mustRules(t, compare.RulesConfig{})
	res := compare.Compare(jsonResp(a.String()), jsonResp(b.String()), r)
	want := `[{"kind":"body","pointer":"/dup","primary":2,"shadow":3},` +
		`{"kind":"body","pointer":"/only-a","primary":true},` +
		`{"kind":"body","pointer":"/k05","shadow":5}]`
	if got := diffsJSON(t, res.Differences); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCompareLargeValuesAreExcerpted(t *testing.T) {
	t.Parallel()
	big := `"` + strings.Repeat("x", 10_000) + `"`
	res := compare.Compare(jsonResp(`{"a":[`+big+`]}`), jsonResp(`{"a":1}`), mustRules(t, compare.RulesConfig{}))
	if len(res.Differences) != 1 {
		t.Fatalf("got %s, want one difference", diffsJSON(t, res.Differences))
	}
	d := res.Differences[0]
	if len(d.Primary) > 300 || string(d.Shadow) != "1" || !strings.Contains(d.Note, "primary value longer than 4096 bytes") {
		t.Errorf("got primary of %d bytes, shadow %s, note %q; want an excerpt, 1 and a note", len(d.Primary), d.Shadow, d.Note)
	}
	var s string
	if err := json.Unmarshal(d.Primary, &s); err != nil || !strings.HasPrefix(s, `["xxx`) {
		t.Errorf("excerpt %s: want a string starting with the value's text (%v)", d.Primary, err)
	}
}
