package compare_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/compare"
)

// fuzzMedia and fuzzCodings are the headers FuzzCompare picks from, so it
// explores JSON, sniffed and byte comparison, and every decoder.
var (
	fuzzMedia   = []string{"", "application/json", "application/problem+json", "text/plain", "text/html", "application/x-ndjson"}
	fuzzCodings = []string{"", "gzip", "deflate", "br", "identity"}
)

// FuzzCompare checks the comparator's laws on arbitrary input: it never
// panics, a response equals itself, the outcome does not depend on which
// side is primary, results marshal to valid JSON, and a match between two
// JSON bodies agrees with encoding/json (and, where encoding/json's
// semantics are exact, so does a mismatch). Seeds are in
// testdata/fuzz/FuzzCompare; mode picks the media type and coding.
func FuzzCompare(f *testing.F) {
	markRules := mustRules(f, compare.RulesConfig{MaxDecoded: 1 << 20, Mark: "M: 1"})
	f.Fuzz(func(t *testing.T, mode uint8, statusA, statusB int, a, b []byte) {
		media := fuzzMedia[int(mode)%len(fuzzMedia)]
		coding := fuzzCodings[int(mode)/len(fuzzMedia)%len(fuzzCodings)]
		ra := &compare.Response{Status: statusA, Header: hdr("Content-Type", media, "Content-Encoding", coding), Body: a}
		rb := &compare.Response{Status: statusB, Header: hdr("Content-Type", media), Body: b}
		r := mustRules(t, compare.RulesConfig{MaxDecoded: 1 << 20})

		if res := compare.Compare(ra, ra, r); res.Outcome != compare.Match {
			t.Fatalf("Compare(a, a) = %v: %s", res.Outcome, diffsJSON(t, res.Differences))
		}
		ab, ba := compare.Compare(ra, rb, r), compare.Compare(rb, ra, r)
		if ab.Outcome != ba.Outcome {
			t.Fatalf("Compare(a, b) = %v but Compare(b, a) = %v", ab.Outcome, ba.Outcome)
		}
		// A mark only ever drops a shadow-only member.
		if mab := compare.Compare(ra, rb, markRules); len(mab.Differences) > len(ab.Differences) || ab.Outcome == compare.Match && mab.Outcome != compare.Match {
			t.Fatalf("with a mark: %v %s; without: %v %s", mab.Outcome, diffsJSON(t, mab.Differences), ab.Outcome, diffsJSON(t, ab.Differences))
		}
		out, err := json.Marshal(ab)
		if err != nil || !json.Valid(out) {
			t.Fatalf("result does not marshal: %v", err)
		}

		// Against encoding/json, on plain bodies both sides read as JSON.
		if coding != "" || statusA != statusB {
			return
		}
		// Streams of values (one value is a stream of one) likewise.
		sa, errA := decodeStream(a)
		sb, errB := decodeStream(b)
		if errA == nil && errB == nil && ab.Outcome == compare.Match && !reflect.DeepEqual(sa, sb) {
			t.Fatalf("Match, but encoding/json decodes the streams %v and %v", sa, sb)
		}
		va, errA := decodeStd(a)
		vb, errB := decodeStd(b)
		if errA != nil || errB != nil {
			return
		}
		std := reflect.DeepEqual(va, vb)
		if ab.Outcome == compare.Match && !std {
			t.Fatalf("Match, but encoding/json decodes %v and %v", va, vb)
		}
		// A mismatch is only wrong where encoding/json is exact too: no
		// duplicate names (it keeps the last, we pair them), valid UTF-8
		// and no escaped surrogates (it writes U+FFFD, we keep the bytes),
		// and numbers it can represent.
		if media != "application/json" && media != "application/problem+json" {
			return
		}
		if ab.Outcome == compare.Mismatch && exactForStd(a) && exactForStd(b) && ratEqual(a, b) {
			t.Fatalf("Mismatch, but the values are equal: %s", diffsJSON(t, ab.Differences))
		}
	})
}

// decodeStream decodes a stream of JSON values as json.Decoder reads one.
func decodeStream(b []byte) ([]any, error) {
	var out []any
	d := json.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		if err := d.Decode(&v); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func decodeStd(b []byte) (any, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// exactForStd reports whether encoding/json's view of b loses nothing that
// the comparator looks at.
func exactForStd(b []byte) bool {
	return utf8.Valid(b) && !bytes.Contains(bytes.ToLower(b), []byte(`\ud`)) && !hasDuplicateNames(b)
}

func hasDuplicateNames(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next string token is a name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true // be conservative
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: tok == '{', names: map[string]bool{}, key: tok == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				if top.names[tok] {
					return true
				}
				top.names[tok] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

// ratEqual compares two JSON documents with numbers as exact rationals.
func ratEqual(a, b []byte) bool {
	va, okA := decodeNumbers(a)
	vb, okB := decodeNumbers(b)
	return okA && okB && ratDeepEqual(va, vb)
}

func decodeNumbers(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

func ratDeepEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		// big.Rat would expand 1e999999999 digit by digit.
		if len(a) > 40 || len(b) > 40 || strings.ContainsAny(string(a)+string(b), "eE") {
			return a == b
		}
		ra, okA := new(big.Rat).SetString(string(a))
		rb, okB := new(big.Rat).SetString(string(b))
		return okA && okB && ra.Cmp(rb) == 0
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !ratDeepEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !ratDeepEqual(va, vb) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// FuzzPointerPattern checks ignore_json patterns: compiling never panics
// and rejects exactly the malformed pointers; a pattern without "*" names
// the member it ignores, so a document that differs only there matches
// under the pattern and, without it, differs at exactly that pointer.
// Seeds are in testdata/fuzz/FuzzPointerPattern.
func FuzzPointerPattern(f *testing.F) {
	f.Fuzz(func(t *testing.T, p string) {
		_, err := compare.NewRules(compare.RulesConfig{IgnoreJSON: []string{p}})
		if (err == nil) != validPointer(p) {
			t.Fatalf("NewRules(%q) error %v, want valid=%v", p, err, validPointer(p))
		}
		if err != nil || p == "" || strings.Count(p, "/") > 1000 {
			return
		}
		segs := strings.Split(p[1:], "/")
		keys := make([]string, len(segs))
		wildcard := false
		for i, s := range segs {
			if s == "*" {
				wildcard = true
				s = "anything"
			}
			keys[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
		}
		a, b := nestedJSON(keys, "1"), nestedJSON(keys, "2")

		ignoring := mustRules(t, compare.RulesConfig{IgnoreJSON: []string{p}})
		if res := compare.Compare(jsonResp(a), jsonResp(b), ignoring); res.Outcome != compare.Match {
			t.Fatalf("%s vs %s ignoring %q: %s", a, b, p, diffsJSON(t, res.Differences))
		}
		if wildcard {
			return
		}
		res := compare.Compare(jsonResp(a), jsonResp(b), mustRules(t, compare.RulesConfig{}))
		if len(res.Differences) != 1 || res.Differences[0].Pointer != p {
			t.Fatalf("%s vs %s: %s, want one difference at %q", a, b, diffsJSON(t, res.Differences), p)
		}
	})
}

// validPointer is RFC 6901 syntax, restated independently of the package.
func validPointer(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return false
		}
	}
	return true
}

// nestedJSON builds {"k1":{"k2":...leaf}}, writing key bytes as they are
// (invalid UTF-8 included) and escaping only what JSON requires.
func nestedJSON(keys []string, leaf string) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(`{"`)
		for i := 0; i < len(k); i++ {
			switch c := k[i]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20:
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[c>>4])
				b.WriteByte("0123456789abcdef"[c&0xf])
			default:
				b.WriteByte(c)
			}
		}
		b.WriteString(`":`)
	}
	b.WriteString(leaf)
	b.WriteString(strings.Repeat("}", len(keys)))
	return b.String()
}

// FuzzNoise checks noise cancellation's laws on arbitrary answers: it
// never panics; the outcome does not depend on which side is primary
// (with the monolith's two answers swapped too); what the monolith's two
// identical answers teach drops nothing; a primary compared with itself
// matches whatever was learned; and nothing learned is a whole body or
// Set-Cookie. MaxDecoded is small, so bodies past it are explored too.
func FuzzNoise(f *testing.F) {
	f.Add(uint8(1), []byte(`{"a":1,"t":5}`), []byte(`{"a":1,"t":6}`), []byte(`{"a":1,"t":7}`), []byte(`{"a":2,"t":8}`))
	f.Add(uint8(3), []byte(`<p>token=AAA</p>`), []byte(`<p>token=BBB</p>`), []byte(`<p>token=CCC</p>`), []byte(``))
	f.Add(uint8(1), []byte(`[1,2,3]`), []byte(`[3,2,1]`), []byte(`[1,2,3]`), []byte(`{"rates":{"2024":1}}`))
	f.Fuzz(func(t *testing.T, mode uint8, ma, mb, p, s []byte) {
		media := fuzzMedia[int(mode)%len(fuzzMedia)]
		resp := func(b []byte) *compare.Response {
			return &compare.Response{Status: 200, Header: hdr("Content-Type", media), Body: b}
		}
		r := mustRules(t, compare.RulesConfig{MaxDecoded: 64})
		n1, n2 := compare.NewNoise(0), compare.NewNoise(0)
		ab := n1.Compare(resp(p), resp(s), resp(ma), resp(mb), r)
		ba := n2.Compare(resp(s), resp(p), resp(mb), resp(ma), r)
		if ab.Outcome != ba.Outcome {
			t.Fatalf("Compare(p, s) = %v (%s) but Compare(s, p) = %v (%s)", ab.Outcome, diffsJSON(t, ab.Differences), ba.Outcome, diffsJSON(t, ba.Differences))
		}
		for _, field := range n1.Fields() {
			if field == "" || field == "header:Set-Cookie" {
				t.Fatalf("learned %q", field)
			}
		}
		if res := n1.Compare(resp(p), resp(p), nil, nil, r); res.Outcome != compare.Match {
			t.Fatalf("p against itself after learning: %v", res.Outcome)
		}
		plain := compare.Compare(resp(p), resp(s), r)
		if res := compare.NewNoise(0).Compare(resp(p), resp(s), resp(ma), resp(ma), r); res.Outcome != plain.Outcome {
			t.Fatalf("two identical monolith answers changed the outcome: %v, without noise %v", res.Outcome, plain.Outcome)
		}
	})
}
