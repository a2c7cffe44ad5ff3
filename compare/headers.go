package compare

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
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
			if sameFieldName(textproto.TrimString(tok), name) {
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
// are compared as the elements of their combined field value (RFC 9110
// §5.3, §5.6.1), in order, so "a, b" on one line equals "a" and "b" on two,
// and "a,b" too, but not "b, a"; a few have rules of their own.
func headerValuesEqual(name string, a, b []string) bool {
	if name == "Vary" {
		return varyEqual(a, b) // "Vary: Accept-Encoding" equals no Vary
	}
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	switch name {
	case "Set-Cookie":
		return setCookiesEqual(a, b)
	case "Content-Type":
		return listEqual(a, b) || mediaTypeEqual(a, b)
	case "Cache-Control":
		return listEqual(a, b) || slices.Equal(directives(a, false), directives(b, false))
	case "Strict-Transport-Security":
		return listEqual(a, b) || slices.Equal(directives(a, true), directives(b, true))
	case "Allow", "Access-Control-Allow-Methods":
		return listEqual(a, b) || slices.Equal(tokenSet(a, false), tokenSet(b, false))
	case "Access-Control-Allow-Headers", "Access-Control-Expose-Headers":
		return listEqual(a, b) || slices.Equal(tokenSet(a, true), tokenSet(b, true))
	}
	return listEqual(a, b)
}

// directives reads Cache-Control (comma-separated) or, with semicolons,
// Strict-Transport-Security as the sorted set of its directives: two
// frameworks write the same policy in their own order, case and quoting
// (RFC 9111 §5.2: directive names are case-insensitive, and a value may
// be a token or a quoted string), and a client reads them alike.
func directives(vals []string, semicolons bool) []string {
	var out []string
	add := func(d string) {
		// No white space is allowed around "=": "max-age = 0" stays a
		// different (malformed) directive.
		name, value, hasValue := strings.Cut(textproto.TrimString(d), "=")
		name = strings.ToLower(name)
		if name == "" {
			return
		}
		if hasValue {
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			name += "=" + value
		}
		out = append(out, name)
	}
	if semicolons {
		for _, v := range vals {
			for d := range strings.SplitSeq(v, ";") {
				add(d)
			}
		}
	} else {
		e := listElems{rest: vals}
		for d, ok := e.next(); ok; d, ok = e.next() {
			add(d)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tokenSet reads a list of tokens as a sorted set: Allow and
// Access-Control-Allow-Methods name methods, in no order that means
// anything; Access-Control-Allow-Headers and -Expose-Headers name fields,
// case-insensitively (fold).
func tokenSet(vals []string, fold bool) []string {
	var out []string
	e := listElems{rest: vals}
	for t, ok := e.next(); ok; t, ok = e.next() {
		if fold {
			t = strings.ToLower(t)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// listEqual compares two sides' values as comma-separated lists: element
// by element, in order, with the whitespace around each element and empty
// elements ignored (RFC 9110 §5.6.1), so "GET,HEAD" equals "GET, HEAD" and
// two lines "no-cache" and "no-store" equal "no-cache,no-store". Values
// that are byte for byte the same, the common case, are equal without
// being split; splitting does not allocate either. A header whose value is
// not a list but holds commas (a date) is split the same way on both sides,
// so only whitespace after its commas stops counting. Values whose lines
// joined with ", " are equal stay equal, malformed quoting included.
func listEqual(a, b []string) bool {
	if slices.Equal(a, b) {
		return true
	}
	ea, eb := listElems{rest: a}, listElems{rest: b}
	for {
		x, okA := ea.next()
		y, okB := eb.next()
		if okA != okB || x != y {
			// Elements differ; the joined values can still be equal when
			// a quote left open on one line closes on the next.
			return joinedEqual(a, b)
		}
		if !okA {
			return true
		}
	}
}

// joinedEqual reports whether a and b joined with ", " are equal, without
// joining them.
func joinedEqual(a, b []string) bool {
	ca, cb := joinedChunks{rest: a}, joinedChunks{rest: b}
	var x, y string
	for {
		if x == "" {
			x = ca.next()
		}
		if y == "" {
			y = cb.next()
		}
		if x == "" || y == "" {
			return x == y
		}
		n := min(len(x), len(y))
		if x[:n] != y[:n] {
			return false
		}
		x, y = x[n:], y[n:]
	}
}

// joinedChunks yields the non-empty pieces of values joined with ", ":
// the values and the separators between them; "" at the end.
type joinedChunks struct {
	rest []string
	sep  bool // a separator comes next
}

func (j *joinedChunks) next() string {
	for len(j.rest) > 0 {
		var s string
		if j.sep {
			s, j.sep = ", ", false
		} else {
			s, j.rest = j.rest[0], j.rest[1:]
			j.sep = len(j.rest) > 0
		}
		if s != "" {
			return s
		}
	}
	return ""
}

// listElems walks the non-empty elements of field values read as one
// comma-separated list. A comma inside a quoted string (where a backslash
// escapes the next byte) does not separate; a quote left open ends with
// its field line, as each line is its own field value.
type listElems struct {
	rest []string // field lines not yet started
	line string   // what is left of the current one
}

func (l *listElems) next() (string, bool) {
	for {
		for l.line == "" {
			if len(l.rest) == 0 {
				return "", false
			}
			l.line, l.rest = l.rest[0], l.rest[1:]
		}
		var elem string
		elem, l.line = cutListElem(l.line)
		if elem = textproto.TrimString(elem); elem != "" {
			return elem, true
		}
	}
}

// cutListElem cuts s at its first comma outside a quoted string.
func cutListElem(s string) (elem, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // quoted-pair: the next byte is literal
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// setCookiesEqual compares two sides' Set-Cookie lines as sets of cookies
// in a form that leaves out what differs on every answer, the value (a
// session id) and the exact expiry, but keeps what changes what a browser
// does: the name, whether the line deletes the cookie or outlives the
// browser's session, and its Path,
// Domain, Secure, HttpOnly, SameSite and Partitioned (CHIPS: kept per
// top-level site, so dropping it changes which pages share the cookie).
// Lines that have the same name,
// the same attributes byte for byte and values that are both empty or
// both not, as two answers setting the same cookie do, are equal without
// being parsed.
func setCookiesEqual(a, b []string) bool {
	if slices.Equal(a, b) || (setCookieLinesIn(a, b) && setCookieLinesIn(b, a)) {
		return true
	}
	now := time.Now()
	fa, fb := cookieForms(a, now), cookieForms(b, now)
	return subset(fa, fb) && subset(fb, fa)
}

// setCookieLinesIn reports whether each line of sub has a line in super
// that differs at most in a non-empty value.
func setCookieLinesIn(sub, super []string) bool {
	if len(super) > smallSet {
		return subset(cookieLines(sub), cookieLines(super))
	}
	for _, s := range sub {
		ns, vs, as := splitSetCookie(s)
		found := false
		for _, t := range super {
			nt, vt, at := splitSetCookie(t)
			if ns == nt && as == at && emptyCookieValue(vs) == emptyCookieValue(vt) {
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

// smallSet is the size up to which membership is checked by a scan, which
// allocates nothing and beats building a map. Past it, a map: an answer
// may carry thousands of Set-Cookie lines or Vary names, and comparing
// them pairwise would take quadratic time (a 90 KiB head: 120 ms).
const smallSet = 32

// subset reports whether every element of sub is in super.
func subset[T comparable](sub, super []T) bool {
	if len(super) <= smallSet {
		for _, x := range sub {
			if !slices.Contains(super, x) {
				return false
			}
		}
		return true
	}
	set := make(map[T]struct{}, len(super))
	for _, x := range super {
		set[x] = struct{}{}
	}
	for _, x := range sub {
		if _, ok := set[x]; !ok {
			return false
		}
	}
	return true
}

// cookieLine is what setCookieLinesIn compares of a line: all but a
// non-empty value.
type cookieLine struct {
	name, attrs string
	empty       bool
}

func cookieLines(lines []string) []cookieLine {
	out := make([]cookieLine, len(lines))
	for i, l := range lines {
		name, value, attrs := splitSetCookie(l)
		out[i] = cookieLine{name, attrs, emptyCookieValue(value)}
	}
	return out
}

// cookieForm is what is compared of one Set-Cookie line. It holds no
// value, only the name, and can be shown.
type cookieForm struct {
	name        string
	deleted     bool
	path        string
	domain      string // lower case, without a leading dot
	secure      bool
	httpOnly    bool
	sameSite    http.SameSite // 0 when absent, which is not Lax
	partitioned bool
	// persistent: kept past the browser's session (Max-Age above zero, or
	// a future Expires), where without either it is a session cookie: a
	// "remember me" that forgets at the next restart.
	persistent bool
}

func cookieForms(lines []string, now time.Time) []cookieForm {
	forms := make([]cookieForm, len(lines))
	for i, line := range lines {
		forms[i] = parseCookieForm(line, now)
	}
	return forms
}

// parseCookieForm reads a Set-Cookie line's attributes with net/http's
// parser. The name and value are replaced by a placeholder first: the
// value is a secret that need not be parsed at all, and a name or value
// that net/http refuses (a space, a backslash) must not make the cookie's
// attributes unreadable on one side only. A cookie is deleted when its
// value is empty, its Max-Age is zero or less, or it has no Max-Age and
// an Expires date that is not after now (RFC 6265 §5.3: Max-Age wins
// over Expires).
func parseCookieForm(line string, now time.Time) cookieForm {
	name, value, attrs := splitSetCookie(line)
	f := cookieForm{name: name, deleted: emptyCookieValue(value)}
	c, err := http.ParseSetCookie("v=v;" + attrs)
	if err != nil {
		return f // not reached: the placeholder pair is valid
	}
	switch {
	case c.MaxAge < 0:
		f.deleted = true
	case c.MaxAge == 0 && !c.Expires.IsZero() && !c.Expires.After(now):
		f.deleted = true
	}
	f.persistent = !f.deleted && (c.MaxAge > 0 || c.MaxAge == 0 && c.Expires.After(now))
	f.path = c.Path
	f.domain = strings.ToLower(strings.TrimPrefix(c.Domain, "."))
	f.secure, f.httpOnly, f.sameSite, f.partitioned = c.Secure, c.HttpOnly, c.SameSite, c.Partitioned
	return f
}

// String renders the attributes compared, for a difference's note.
func (f cookieForm) String() string {
	var parts []string
	if f.deleted {
		parts = append(parts, "deleted")
	}
	if f.persistent {
		parts = append(parts, "persistent")
	}
	if f.path != "" {
		parts = append(parts, "Path="+f.path)
	}
	if f.domain != "" {
		parts = append(parts, "Domain="+f.domain)
	}
	if f.secure {
		parts = append(parts, "Secure")
	}
	if f.httpOnly {
		parts = append(parts, "HttpOnly")
	}
	switch f.sameSite {
	case http.SameSiteLaxMode:
		parts = append(parts, "SameSite=Lax")
	case http.SameSiteStrictMode:
		parts = append(parts, "SameSite=Strict")
	case http.SameSiteNoneMode:
		parts = append(parts, "SameSite=None")
	case http.SameSiteDefaultMode:
		parts = append(parts, "SameSite (unrecognised value)")
	}
	if f.partitioned {
		parts = append(parts, "Partitioned")
	}
	if len(parts) == 0 {
		return "(no attributes)"
	}
	return strings.Join(parts, "; ")
}

// cookieNote says, for each cookie name set on both sides, how the
// attributes differ, since the names shown as the values do not; "" when
// only the names differ.
func cookieNote(a, b []string) string {
	now := time.Now()
	fa, fb := renderCookieForms(cookieForms(a, now)), renderCookieForms(cookieForms(b, now))
	var names []string
	for name := range fa {
		if _, ok := fb[name]; ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var notes []string
	for _, name := range names {
		pa, pb := fa[name], fb[name]
		if slices.Equal(pa, pb) {
			continue
		}
		label := name
		if label == "" {
			label = "(unnamed)"
		}
		notes = append(notes, fmt.Sprintf("cookie %s: primary %s, shadow %s", label, strings.Join(pa, " | "), strings.Join(pb, " | ")))
	}
	if len(notes) == 0 {
		return ""
	}
	return "Set-Cookie attributes differ: " + strings.Join(notes, "; ")
}

// renderCookieForms renders the distinct forms of each cookie name,
// sorted.
func renderCookieForms(forms []cookieForm) map[string][]string {
	out := make(map[string][]string)
	for _, f := range forms {
		out[f.name] = append(out[f.name], "["+f.String()+"]")
	}
	for name, rendered := range out {
		slices.Sort(rendered)
		out[name] = slices.Compact(rendered)
	}
	return out
}

// splitSetCookie splits a Set-Cookie line into its name, value and
// attributes (what follows the first ";"). A line without "=" before the
// first ";" has an empty name (RFC 6265bis §5.6): what it holds is a
// value, and so never reported.
func splitSetCookie(line string) (name, value, attrs string) {
	pair, attrs, _ := strings.Cut(line, ";")
	name, value, ok := strings.Cut(pair, "=")
	if !ok {
		return "", textproto.TrimString(pair), attrs
	}
	return textproto.TrimString(name), textproto.TrimString(value), attrs
}

// emptyCookieValue reports whether a raw cookie value is empty, quoted or
// not.
func emptyCookieValue(v string) bool {
	return v == "" || v == `""`
}

// varyEqual compares Vary as a case-insensitive set of field names without
// Accept-Encoding: compression middleware adds that one, and encodings are
// already ignored. Any other name matters, since a missing Vary can make
// a shared cache serve one user's answer to another.
func varyEqual(a, b []string) bool {
	if slices.Equal(a, b) {
		return true
	}
	if varyNames(a) > smallSet || varyNames(b) > smallSet {
		sa, sb := varySet(a), varySet(b)
		return maps.Equal(sa, sb)
	}
	return varyIn(a, b) && varyIn(b, a)
}

// varyNames is an upper bound on how many names vs holds.
func varyNames(vs []string) int {
	n := 0
	for _, v := range vs {
		n += strings.Count(v, ",") + 1
	}
	return n
}

// sameFieldName reports whether two Vary names name the same field: as
// net/http canonicalizes them, ASCII letters only, and the same below and
// above smallSet (strings.EqualFold would also fold "ſ" to "s", a map of
// strings.ToLower keys would not).
func sameFieldName(a, b string) bool {
	return a == b || textproto.CanonicalMIMEHeaderKey(a) == textproto.CanonicalMIMEHeaderKey(b)
}

// varySet is vs's names, canonical, without Accept-Encoding.
func varySet(vs []string) map[string]struct{} {
	set := make(map[string]struct{})
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(tok))
			if tok != "" && tok != "Accept-Encoding" {
				set[tok] = struct{}{}
			}
		}
	}
	return set
}

func varyIn(sub, super []string) bool {
	for _, v := range sub {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			if tok == "" || sameFieldName(tok, "Accept-Encoding") {
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
			if sameFieldName(textproto.TrimString(tok), name) {
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
	if jsonMedia(ta) || jsonSeqMedia(ta) { // UTF-8 by definition too (RFC 7464 §2.2, NDJSON, JSON Lines)
		for _, p := range []map[string]string{pa, pb} {
			if utf8Label(p["charset"]) {
				delete(p, "charset")
			}
		}
	}
	if len(pa) != len(pb) {
		return false
	}
	for k, va := range pa {
		vb, ok := pb[k]
		if !ok || (va != vb && !(k == "charset" && (strings.EqualFold(va, vb) || utf8Label(va) && utf8Label(vb)))) {
			return false
		}
	}
	return true
}

// utf8Label reports whether a charset names UTF-8 as browsers read it (the
// WHATWG Encoding Standard's labels): "utf8" is as good as "utf-8".
func utf8Label(charset string) bool {
	switch strings.ToLower(charset) {
	case "utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8":
		return true
	}
	return false
}

func (c *comparison) addHeader(name string, a, b []string) {
	sh := shapeValue
	if len(a) == 0 || len(b) == 0 {
		sh = shapeAbsent
	}
	if !c.admit(KindHeader, name, name, sh) {
		return
	}
	d := Difference{Kind: KindHeader, Header: name}
	if !c.keysOnly {
		ta, sa := c.headerText(name, a)
		tb, sb := c.headerText(name, b)
		if len(ta) > maxValueBytes || len(tb) > maxValueBytes {
			// A head may be 512 KiB, and a route keeps 100 samples:
			// long values are cut as long JSON values are.
			start := max(0, firstDifference([]byte(ta), []byte(tb))-excerptLead)
			d.Primary, d.Shadow = headerExcerpt(ta, len(a) > 0, sa, start), headerExcerpt(tb, len(b) > 0, sb, start)
			d.Note = "values longer than " + strconv.Itoa(maxValueBytes) + " bytes are shown as excerpts, from a little before where they differ"
		} else {
			d.Primary, d.Shadow = renderHeader(ta, len(a) > 0, sa), renderHeader(tb, len(b) > 0, sb)
		}
		if name != "Set-Cookie" && c.rules.secretHeaders[name] && len(a) > 0 && len(b) > 0 {
			d.Note = "secret header: the values differ and are not shown"
		}
		if name == "Set-Cookie" && len(a) > 0 && len(b) > 0 {
			d.Note = cookieNote(a, b)
		}
		if urlHeaders[name] && !c.rules.secretHeaders[name] && len(a) > 0 && len(b) > 0 && string(d.Primary) == string(d.Shadow) {
			d.Note = "the URLs differ in redacted parts (query, fragment or path parameter values), which are not shown"
		}
	}
	c.diffs = append(c.diffs, d)
}

// headerText is what one side of a header difference shows. Secret
// values are not shown (secret); for Set-Cookie, which is secret, the
// sorted cookie names are shown instead, since they hold no credential
// (how the attributes of the same names differ goes in the note: see
// cookieNote).
func (c *comparison) headerText(name string, vs []string) (text string, secret bool) {
	switch {
	case len(vs) == 0:
		return "", false
	case name == "Set-Cookie":
		names := make([]string, 0, len(vs))
		for _, v := range vs {
			n, _, _ := splitSetCookie(v)
			if n == "" {
				n = "(unnamed)"
			}
			names = append(names, n)
		}
		slices.Sort(names)
		return strings.Join(slices.Compact(names), ", "), false
	case c.rules.secretHeaders[name]:
		return "", true
	case urlHeaders[name]:
		return redactHeaderURLs(name, strings.Join(vs, ", ")), false
	}
	return strings.Join(vs, ", "), false
}

// renderHeader is one side of a header difference as JSON: null when the
// header is absent.
func renderHeader(text string, present, secret bool) json.RawMessage {
	switch {
	case !present:
		return nil
	case secret:
		return append(json.RawMessage(nil), redacted...)
	}
	return appendJSONString(nil, text)
}

func headerExcerpt(text string, present, secret bool, start int) json.RawMessage {
	if !present || secret {
		return renderHeader(text, present, secret)
	}
	return excerpt([]byte(text), start)
}
