package compare

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// compareBodies decodes both bodies and compares them as JSON when both
// are JSON, else byte for byte. It reports at most one difference unless
// both are JSON.
func (c *comparison) compareBodies(a, b *Response) {
	if c.rules.ignoreRoot {
		return // ignore_json "" ignores the whole body, JSON or not
	}
	ca := appendCodings(c.body.codings[primarySide][:0], a.Header)
	cb := appendCodings(c.body.codings[shadowSide][:0], b.Header)
	c.body.codings[primarySide], c.body.codings[shadowSide] = ca, cb
	// Identical bytes under identical codings decode identically: the
	// common case skips decoding, and so does an identical zip bomb.
	if bytes.Equal(a.Body, b.Body) && slices.Equal(ca, cb) {
		return
	}

	da, errA := c.decode(a.Body, primarySide)
	db, errB := c.decode(b.Body, shadowSide)
	// Past max_decoded a body is not parsed as JSON, and a compressed one's
	// rest is unknown. An unencoded one is whole whatever its size, but
	// one each side is as far past as two that could not be decoded whole
	// (and one of each, too): else JSON that differs only in key order
	// would be a mismatch of bytes every time.
	var bigA, bigB tooLargeError
	wholeA, wholeB := errA == nil, errB == nil
	pastA := errors.As(errA, &bigA) || wholeA && int64(len(da)) > c.rules.maxDecoded
	pastB := errors.As(errB, &bigB) || wholeB && int64(len(db)) > c.rules.maxDecoded
	if pastA && pastB {
		// Learning (keysOnly) goes on here too: what is compared as bytes
		// below is learned as bytes, so the span where the monolith's two
		// answers differ (a CSRF token in a large page) is noise as it is
		// in a small one, not a mismatch on every request.
		if wholeA && wholeB && bytes.Equal(da, db) {
			return
		}
		// Bodies that differ within the limit differ, unless JSON: its
		// text can differ where its value does not (key order, spacing,
		// an ignore_json field, noise), and half a document cannot be
		// compared as JSON. Identical answers compressed differently
		// must not count as a mismatch every time either.
		n := int(min(int64(len(da)), int64(len(db)), c.rules.maxDecoded))
		asJSON := c.isJSON(mediaType(a.Header), da[:n]) || c.isJSON(mediaType(b.Header), db[:n])
		switch {
		case asJSON:
			c.bodiesTooLarge = true
		case wholeA && wholeB:
			c.addBytes(da, db, "", shapeValue) // both here whole: bytes are cheap
		case (wholeA || bigA.final) && (wholeB || bigB.final) && !bytes.Equal(da[:n], db[:n]):
			c.addBytes(da, db, "both bodies decode past max_decoded; compared up to it: ", shapeValue)
		default:
			c.bodiesTooLarge = true
		}
		return
	}
	if errA != nil || errB != nil {
		if c.keysOnly {
			// Learning noise: an answer that cannot be decoded is a
			// failure, not a sample of the route's nondeterminism.
			// Learning from it would mark the whole body (pointer "")
			// as noise for good and hide every later whole-body
			// difference.
			return
		}
		c.addUndecodable(a.Body, b.Body, da, db, errA, errB)
		return
	}
	if bytes.Equal(da, db) {
		return
	}
	// A byte order mark on both sides is skipped (RFC 8259 lets a parser
	// ignore one), so the JSON after it is compared as JSON. On one side
	// only it stays a difference: encoding/json, for one, refuses it.
	if bytes.HasPrefix(da, utf8BOM) && bytes.HasPrefix(db, utf8BOM) {
		da, db = da[len(utf8BOM):], db[len(utf8BOM):]
	}
	var jsonA, jsonB, seqA, seqB bool
	mtA, mtB := mediaType(a.Header), mediaType(b.Header)
	if c.isJSON(mtA, da) {
		jsonA, seqA = c.walk.docs[primarySide].parse(da, jsonSeqMedia(mtA), jsonTextSeq(mtA))
	}
	if c.isJSON(mtB, db) {
		jsonB, seqB = c.walk.docs[shadowSide].parse(db, jsonSeqMedia(mtB), jsonTextSeq(mtB))
	}
	if jsonA && jsonB {
		// One value against a stream: the one is a stream of one, so that
		// a stream's lines are compared with it, not its whole.
		// (A value nested to the depth limit is no line: bytes, then.)
		switch {
		case seqA && !seqB:
			jsonB = c.walk.docs[shadowSide].parseSeq(db, false)
		case seqB && !seqA:
			jsonA = c.walk.docs[primarySide].parseSeq(da, false)
		}
	}
	if jsonA && jsonB {
		c.compareJSON()
		return
	}
	if jsonA != jsonB && c.keysOnly {
		return // a failure too, as for an undecodable answer
	}
	var note string
	switch {
	case jsonA:
		note = "only the primary body is JSON; "
	case jsonB:
		note = "only the shadow body is JSON; "
	}
	sh := shapeValue
	if jsonA != jsonB {
		sh = shapeType
	}
	c.addBytes(da, db, note, sh)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// isJSON decides whether a decoded body is compared as JSON, before it is
// parsed: when its media type says JSON (jsonMedia), or when the type says nothing useful (missing,
// text/plain, application/octet-stream, text/html) and the body starts
// like an object or array. Scalars are not sniffed: "OK" vs "ok" or "1" vs "1.0" in a
// text body are real differences. Bodies over max_decoded (possible when
// they were not encoded) are compared as bytes, which costs no memory.
func (c *comparison) isJSON(mt string, body []byte) bool {
	if int64(len(body)) > c.rules.maxDecoded {
		return false
	}
	switch {
	case jsonMedia(mt) || jsonSeqMedia(mt):
		return true
	case mt == "" || strings.EqualFold(mt, "text/plain") || strings.EqualFold(mt, "application/octet-stream") ||
		strings.EqualFold(mt, "text/html"):
		// text/html too: PHP's default, under which many a monolith serves
		// its JSON (escaping "/" and non-ASCII as json_encode does); a page
		// never starts with "{" or "[".
		i := skipSpace(body, 0)
		return i < len(body) && (body[i] == '{' || body[i] == '[')
	}
	return false
}

// jsonTextSeq reports whether a media type is RFC 7464's, whose values
// follow record separators (0x1E); NDJSON and JSON Lines have none.
func jsonTextSeq(mt string) bool { return strings.EqualFold(mt, "application/json-seq") }

// mediaType is a header's Content-Type without its parameters.
func mediaType(h http.Header) string {
	mt := h.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	return strings.TrimSpace(mt)
}

// jsonMedia reports whether a media type (without parameters) is JSON's:
// application/json, text/json (older servers send it) or any +json suffix
// (RFC 6839), as the WHATWG MIME Sniffing standard defines a JSON MIME
// type.
func jsonMedia(mt string) bool {
	return strings.EqualFold(mt, "application/json") || strings.EqualFold(mt, "text/json") || hasSuffixFold(mt, "+json")
}

// jsonSeqMedia reports whether a media type is a sequence of JSON values:
// NDJSON, JSON Lines (under their registered and customary names) and
// RFC 7464's JSON text sequences.
func jsonSeqMedia(mt string) bool {
	for _, t := range [...]string{"application/x-ndjson", "application/ndjson", "application/jsonl",
		"application/x-jsonlines", "application/jsonlines", "application/json-seq"} {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	return false
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// addBytes reports two different non-JSON bodies as one difference: an
// excerpt of each, starting a little before the first differing byte.
func (c *comparison) addBytes(a, b []byte, note string, sh shape) {
	switch {
	case c.keysOnly:
		c.textSpan = spanOf(a, b, sh)
	case c.noise != nil && c.noise.span.set && c.noise.span.covers(spanOf(a, b, sh)):
		c.noisy++
		return
	}
	if !c.admit(KindBody, textBody, "", sh) {
		return
	}
	d := Difference{Kind: KindBody}
	if !c.keysOnly {
		off := firstDifference(a, b)
		start := max(0, off-excerptLead)
		d.Primary, d.Shadow = excerpt(a, start), excerpt(b, start)
		d.Note = fmt.Sprintf("%sbodies differ from byte %d (primary %d bytes, shadow %d bytes); excerpts start at byte %d",
			note, off, len(a), len(b), start)
	}
	c.diffs = append(c.diffs, d)
}

// textBody is where, for noise, a difference of two whole bodies that are
// not both JSON lies: not "", the root of a JSON document, whose value the
// monolith may vary per request like any field's.
const textBody = "\x00text"

// textSpan is where two non-JSON bodies differ: the bytes they share at
// the start and at the end. Noise in a text body (an HTML page's CSRF
// token, a timestamp) is where two monolith answers differ; the whole
// body is not, or a service that answered an error page, or nothing, would
// pass for noise.
type textSpan struct {
	set            bool
	prefix, suffix int
	shortest       int // the shorter body's length
	middle         int // what lies between prefix and suffix in the longer body
	shape          shape
}

func spanOf(a, b []byte, sh shape) textSpan {
	p := firstDifference(a, b)
	s, n := 0, min(len(a), len(b))-p
	for s < n && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	return textSpan{set: true, prefix: p, suffix: s, shortest: min(len(a), len(b)),
		middle: max(len(a), len(b)) - p - s, shape: sh}
}

// covers reports whether the difference d lies within the noise span m,
// as the two monolith answers of the same request showed it: d keeps at
// least the start and the end they share, its differing middle is not
// much longer than theirs, and its shape is one m covers. Monolith
// answers that share less than half of the shorter one (two random
// numbers with a newline) show no span, and cover nothing: a shared "<"
// or "\n" would let any error page pass.
func (m textSpan) covers(d textSpan) bool {
	return m.set && d.set && 2*(m.prefix+m.suffix) >= m.shortest && m.prefix+m.suffix > 0 &&
		m.shape.covers(d.shape) && d.prefix >= m.prefix && d.suffix >= m.suffix && d.middle <= 2*m.middle+16
}

func firstDifference(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// addUndecodable reports bodies that could not be decoded. A side that
// failed shows an excerpt of what was decoded before the output grew too
// large, or else of the bytes received (often the explanation: a plain
// body labelled gzip); a side that decoded shows its decoded start.
func (c *comparison) addUndecodable(rawA, rawB, da, db []byte, errA, errB error) {
	// A failure is not the kind of difference a varying answer makes:
	// noise learned from two different text bodies does not hide it.
	if !c.admit(KindBody, textBody, "", shapeType) {
		return
	}
	d := Difference{Kind: KindBody}
	if !c.keysOnly {
		d.Primary = undecodableExcerpt(rawA, da, errA)
		d.Shadow = undecodableExcerpt(rawB, db, errB)
		var notes []string
		if errA != nil {
			notes = append(notes, "primary body: "+errA.Error())
		}
		if errB != nil {
			notes = append(notes, "shadow body: "+errB.Error())
		}
		d.Note = strings.Join(notes, "; ")
	}
	c.diffs = append(c.diffs, d)
}

func undecodableExcerpt(raw, decoded []byte, err error) []byte {
	var tooLarge tooLargeError
	switch {
	case err == nil:
		return excerpt(decoded, 0)
	case errors.As(err, &tooLarge):
		return excerpt(decoded, 0)
	}
	return excerpt(raw, 0)
}
