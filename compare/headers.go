package compare

import (
	"cmp"
	"encoding/json"
	"mime"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// headerName is one key of one side's header map; entries are sorted by
// canonical name so both maps are walked in step without building a map.
type headerName struct {
	canon string
	key   string // as it appears in the map; usually canon
	side  side
}

type side uint8

const (
	primarySide side = iota
	shadowSide
)

// redacted stands for the value of a secret header in a Difference.
var redacted = json.RawMessage(`"[redacted]"`)

// compareHeaders reports one difference per canonical header name whose
// values differ, after removing hop-by-hop, ignored and Connection-listed
// names, in the order of their names.
func (c *comparison) compareHeaders(a, b http.Header) {
	if c.compareCanonicalHeaders(a, b) {
		return
	}
	c.compareAnyHeaders(a, b)
}

// compareCanonicalHeaders compares maps whose keys are all canonical, as
// net/http's and the proxy's own readers make them, by looking each name
// up in the other map. Only the names that differ are sorted: sorting
// every name of both maps, as compareAnyHeaders must, was 40 % of
// comparing two typical answers' headers. It reports false, having
// recorded nothing, when it meets a key that is not canonical.
func (c *comparison) compareCanonicalHeaders(a, b http.Header) bool {
	differ := c.headerDiffs[:0]
	defer func() { c.headerDiffs = differ[:0] }()
	for key, av := range a {
		if len(av) == 0 {
			continue // a key without values is an absent header
		}
		if textproto.CanonicalMIMEHeaderKey(key) != key {
			return false
		}
		if c.skipHeader(key, a, b) {
			continue
		}
		if !headerValuesEqual(key, av, b[key]) {
			differ = append(differ, key)
		}
	}
	for key, bv := range b {
		if len(bv) == 0 || len(a[key]) != 0 {
			continue // absent, or compared above
		}
		if textproto.CanonicalMIMEHeaderKey(key) != key {
			return false
		}
		if c.skipHeader(key, a, b) {
			continue
		}
		if !headerValuesEqual(key, nil, bv) {
			differ = append(differ, key)
		}
	}
	// Sorted so that, past the difference limit, the same names are kept
	// whatever order the maps were walked in.
	slices.Sort(differ)
	for _, name := range differ {
		c.addHeader(name, a[name], b[name])
	}
	return true
}

// skipHeader reports whether a canonical header name is left out of the
// comparison.
func (c *comparison) skipHeader(canon string, a, b http.Header) bool {
	return c.rules.ignoreHeaders[canon] || listedInConnection(canon, a) || listedInConnection(canon, b)
}

// compareAnyHeaders compares maps with keys in any spelling: it sorts
// every key of both maps by canonical name, so that one name held under
// several spellings is one header.
func (c *comparison) compareAnyHeaders(a, b http.Header) {
	names := c.headerNames[:0]
	names = c.appendHeaderNames(names, a, primarySide, a, b)
	names = c.appendHeaderNames(names, b, shadowSide, a, b)
	slices.SortFunc(names, func(x, y headerName) int {
		if n := strings.Compare(x.canon, y.canon); n != 0 {
			return n
		}
		if n := cmp.Compare(x.side, y.side); n != 0 {
			return n
		}
		return strings.Compare(x.key, y.key)
	})
	c.headerNames = names

	for i := 0; i < len(names); {
		j := i + 1
		for j < len(names) && names[j].canon == names[i].canon {
			j++
		}
		group := names[i:j]
		av := headerValues(group, primarySide, a)
		bv := headerValues(group, shadowSide, b)
		if !headerValuesEqual(group[0].canon, av, bv) {
			c.addHeader(group[0].canon, av, bv)
		}
		i = j
	}
}

func (c *comparison) appendHeaderNames(names []headerName, h http.Header, s side, a, b http.Header) []headerName {
	for key, vs := range h {
		if len(vs) == 0 {
			continue // a key without values is an absent header
		}
		canon := textproto.CanonicalMIMEHeaderKey(key) // does not allocate when key is canonical
		if c.skipHeader(canon, a, b) {
			continue
		}
		names = append(names, headerName{canon: canon, key: key, side: s})
	}
	return names
}

// listedInConnection reports whether h's Connection header names the
// header: such headers are hop-by-hop too (RFC 9110 §7.6.1). Either side's
// list excludes the name from both, which keeps comparison symmetric.
func listedInConnection(name string, h http.Header) bool {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), name) {
				return true
			}
		}
	}
	return false
}

// headerValues returns one side's values of a header, concatenating the
// rare maps that hold one name under several spellings.
func headerValues(group []headerName, s side, h http.Header) []string {
	var vs []string
	n := 0
	for _, g := range group {
		if g.side != s {
			continue
		}
		if n == 0 {
			vs = h[g.key]
		} else {
			vs = append(slices.Clip(vs), h[g.key]...)
		}
		n++
	}
	return vs
}

// headerValuesEqual compares two sides' values of one header. Most headers
// are compared as their combined field value (RFC 9110 §5.3: values joined
// with ", "), so "a, b" on one line equals "a" and "b" on two; a few have
// rules of their own.
func headerValuesEqual(name string, a, b []string) bool {
	if name == "Vary" {
		return varyEqual(a, b) // "Vary: Accept-Encoding" equals no Vary
	}
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	switch name {
	case "Set-Cookie":
		return cookieNamesEqual(a, b)
	case "Content-Type":
		return listEqual(a, b) || mediaTypeEqual(a, b)
	}
	return listEqual(a, b)
}

func listEqual(a, b []string) bool {
	if slices.Equal(a, b) {
		return true
	}
	return strings.Join(a, ", ") == strings.Join(b, ", ")
}

// cookieNamesEqual compares the sets of cookie names: values and
// attributes (session ids, expiry dates) differ on every answer.
func cookieNamesEqual(a, b []string) bool {
	return cookieNamesIn(a, b) && cookieNamesIn(b, a)
}

func cookieNamesIn(sub, super []string) bool {
	for _, s := range sub {
		found := false
		for _, t := range super {
			if cookieName(s) == cookieName(t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// cookieName returns the name of a Set-Cookie value. A value without "="
// has an empty name (RFC 6265bis §5.6): what it holds is a value, and so
// never reported.
func cookieName(setCookie string) string {
	pair, _, _ := strings.Cut(setCookie, ";")
	name, _, ok := strings.Cut(pair, "=")
	if !ok {
		return ""
	}
	return textproto.TrimString(name)
}

// varyEqual compares Vary as a case-insensitive set of field names without
// Accept-Encoding: compression middleware adds that one, and encodings are
// already ignored. Any other name matters, since a missing Vary can make
// a shared cache serve one user's answer to another.
func varyEqual(a, b []string) bool {
	return varyIn(a, b) && varyIn(b, a)
}

func varyIn(sub, super []string) bool {
	for _, v := range sub {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			if tok == "" || strings.EqualFold(tok, "Accept-Encoding") {
				continue
			}
			if !varyHas(super, tok) {
				return false
			}
		}
	}
	return true
}

func varyHas(vs []string, name string) bool {
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), name) {
				return true
			}
		}
	}
	return false
}

// mediaTypeEqual compares Content-Type values by meaning: type and
// parameter names are case-insensitive, and so is the charset value, so
// "text/html; charset=utf-8" equals "text/html;charset=UTF-8". JSON is
// always UTF-8 and has no charset parameter (RFC 8259 §11), yet some
// frameworks add "charset=utf-8" and others do not, so for JSON types it
// is the same as none.
func mediaTypeEqual(a, b []string) bool {
	if len(a) != 1 || len(b) != 1 {
		return false
	}
	ta, pa, errA := mime.ParseMediaType(a[0])
	tb, pb, errB := mime.ParseMediaType(b[0])
	if errA != nil || errB != nil || ta != tb {
		return false
	}
	if ta == "application/json" || strings.HasSuffix(ta, "+json") {
		for _, p := range []map[string]string{pa, pb} {
			if strings.EqualFold(p["charset"], "utf-8") {
				delete(p, "charset")
			}
		}
	}
	if len(pa) != len(pb) {
		return false
	}
	for k, va := range pa {
		vb, ok := pb[k]
		if !ok || (va != vb && !(k == "charset" && strings.EqualFold(va, vb))) {
			return false
		}
	}
	return true
}

func (c *comparison) addHeader(name string, a, b []string) {
	sh := shapeValue
	if len(a) == 0 || len(b) == 0 {
		sh = shapeAbsent
	}
	if !c.admit(KindHeader, name, sh) {
		return
	}
	d := Difference{Kind: KindHeader, Header: name}
	if !c.keysOnly {
		d.Primary = c.headerValue(name, a)
		d.Shadow = c.headerValue(name, b)
		if name != "Set-Cookie" && c.rules.secretHeaders[name] && len(a) > 0 && len(b) > 0 {
			d.Note = "secret header: the values differ and are not shown"
		}
	}
	c.diffs = append(c.diffs, d)
}

// headerValue renders one side of a header difference. Secret values are
// replaced; for Set-Cookie, which is secret, the sorted cookie names are
// shown instead, since they are what was compared and hold no credential.
func (c *comparison) headerValue(name string, vs []string) json.RawMessage {
	switch {
	case len(vs) == 0:
		return nil
	case name == "Set-Cookie":
		names := make([]string, 0, len(vs))
		for _, v := range vs {
			n := cookieName(v)
			if n == "" {
				n = "(unnamed)"
			}
			names = append(names, n)
		}
		slices.Sort(names)
		return appendJSONString(nil, strings.Join(slices.Compact(names), ", "))
	case c.rules.secretHeaders[name]:
		return append(json.RawMessage(nil), redacted...)
	}
	return appendJSONString(nil, strings.Join(vs, ", "))
}
