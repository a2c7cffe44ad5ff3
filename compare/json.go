package compare

// This file parses JSON into a flat tape of nodes that point back into the
// body. encoding/json is not used because decoding into `any` allocates a
// map or string per node and turns numbers into float64 (losing integers
// beyond 2^53), while json.Number keeps the text but compares "1" and
// "1.0" as different. The tape costs one pooled slice per side and keeps
// every value's raw bytes, which the differences report.

type nodeKind uint8

const (
	nodeNull nodeKind = iota
	nodeFalse
	nodeTrue
	nodeNumber
	nodeString
	nodeArray
	nodeObject
)

// node is one JSON value. The children of an array or object follow it on
// the tape (an object's as key string, value, key string, value...), and
// next is the index just past its subtree, so siblings are a jump apart.
type node struct {
	start, end int32 // raw bytes of the value; a string includes its quotes
	next       int32
	kind       nodeKind
	escaped    bool // a string to compare through appendUnquoted: a backslash escape, or a raw 0xED or 0xFF byte
}

// maxDepth bounds nesting, as encoding/json does, so that a body of
// 8 MiB of "[" cannot drive the recursive parse and walk into a huge stack.
// Deeper documents are compared as bytes.
const maxDepth = 10000

// document is a parsed JSON body.
type document struct {
	src   []byte
	nodes []node
}

// parse parses src as exactly one JSON value (RFC 8259) surrounded by
// optional whitespace, or else as a stream of such values apart by
// whitespace (seq; see parseSeq). Under a stream's media type (stream),
// src is always a stream, of one value too, whose values may also stand
// after RFC 7464's record separators with rs (application/json-seq).
// Invalid UTF-8 inside strings is accepted, as encoding/json does, and
// compared byte for byte.
func (d *document) parse(src []byte, stream, rs bool) (ok, seq bool) {
	d.src = src
	d.nodes = d.nodes[:0]
	if int64(len(src)) >= maxMaxDecoded {
		return false, false
	}
	if stream {
		return d.parseSeq(src, rs), true
	}
	p := parser{d: d}
	i, ok := p.value(skipSpace(src, 0), 0)
	if !ok {
		return false, false
	}
	if skipSpace(src, i) == len(src) {
		return true, false
	}
	return d.parseSeq(src, false), true
}

// parseSeq parses src as a stream of JSON values, each apart from the
// next by whitespace, or with rs also RFC 7464's record separator: JSON
// Lines (NDJSON, a Kubernetes watch, a bulk API's answer) or a JSON text
// sequence. The values become the elements of an array that spans src,
// so a difference in the third line is at "/2/...", and ignore_json and
// noise apply per line ("/*/ts"). Values that run together ("1" "2" as
// "12", or "{}{}") are not a stream: a stream's encoder ends each value
// with a newline.
func (d *document) parseSeq(src []byte, rs bool) bool {
	d.src = src
	d.nodes = append(d.nodes[:0], node{kind: nodeArray, start: 0, end: int32(len(src))})
	p := parser{d: d}
	i := skipSeqSpace(src, 0, rs)
	for i < len(src) {
		var ok bool
		if i, ok = p.value(i, 1); !ok {
			return false
		}
		j := skipSeqSpace(src, i, rs)
		if j == i && j < len(src) {
			return false
		}
		i = j
	}
	d.nodes[0].next = int32(len(d.nodes))
	// A stream of no values is an empty array: under a stream's media
	// type, "" and "\n" are the same answer (nothing found). Every other
	// caller has parsed a value already.
	return true
}

type parser struct {
	d *document
}

// value parses the value starting at i and returns the index after it.
func (p *parser) value(i, depth int) (int, bool) {
	src := p.d.src
	if i >= len(src) || depth > maxDepth {
		return i, false
	}
	switch c := src[i]; {
	case c == '{' || c == '[':
		return p.container(i, depth)
	case c == '"':
		end, escaped, ok := scanString(src, i)
		if !ok {
			return end, false
		}
		p.push(node{kind: nodeString, start: int32(i), end: int32(end), escaped: escaped})
		return end, true
	case c == '-' || ('0' <= c && c <= '9'):
		end, ok := scanNumber(src, i)
		if !ok {
			return end, false
		}
		p.push(node{kind: nodeNumber, start: int32(i), end: int32(end)})
		return end, true
	default:
		for _, lit := range [...]struct {
			text string
			kind nodeKind
		}{{"null", nodeNull}, {"false", nodeFalse}, {"true", nodeTrue}} {
			if len(src)-i >= len(lit.text) && string(src[i:i+len(lit.text)]) == lit.text {
				end := i + len(lit.text)
				p.push(node{kind: lit.kind, start: int32(i), end: int32(end)})
				return end, true
			}
		}
		return i, false
	}
}

// push appends a leaf, whose subtree ends right after it.
func (p *parser) push(n node) {
	n.next = int32(len(p.d.nodes) + 1)
	p.d.nodes = append(p.d.nodes, n)
}

func (p *parser) container(i, depth int) (int, bool) {
	src := p.d.src
	object := src[i] == '{'
	closer := byte(']')
	kind := nodeArray
	if object {
		closer, kind = '}', nodeObject
	}
	at := len(p.d.nodes)
	p.d.nodes = append(p.d.nodes, node{kind: kind, start: int32(i)})
	i = skipSpace(src, i+1)
	if i < len(src) && src[i] == closer {
		i++
	} else {
		for {
			var ok bool
			if object {
				if i >= len(src) || src[i] != '"' {
					return i, false
				}
				if i, ok = p.value(i, depth+1); !ok {
					return i, false
				}
				i = skipSpace(src, i)
				if i >= len(src) || src[i] != ':' {
					return i, false
				}
				i = skipSpace(src, i+1)
			}
			if i, ok = p.value(i, depth+1); !ok {
				return i, false
			}
			i = skipSpace(src, i)
			if i >= len(src) {
				return i, false
			}
			if src[i] == closer {
				i++
				break
			}
			if src[i] != ',' {
				return i, false
			}
			i = skipSpace(src, i+1)
		}
	}
	p.d.nodes[at].end = int32(i)
	p.d.nodes[at].next = int32(len(p.d.nodes))
	return i, true
}

// skipSeqSpace skips whitespace, and with rs record separators (0x1E),
// between the values of a stream.
func skipSeqSpace(src []byte, i int, rs bool) int {
	for i < len(src) && (rs && src[i] == 0x1e || src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i
}

func skipSpace(src []byte, i int) int {
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString scans the string whose opening quote is at i and returns the
// index after its closing quote.
func scanString(src []byte, i int) (end int, escaped, ok bool) {
	for i++; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c < 0x20:
			return i, false, false
		case c >= 0xed:
			escaped = escaped || c == 0xed || c == 0xff // see appendUnquoted
		case c == '\\':
			escaped = true
			if i+1 >= len(src) {
				return i, false, false
			}
			i++
			switch src[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(src) {
					return i, false, false
				}
				for _, h := range src[i+1 : i+5] {
					if hexValue(h) < 0 {
						return i, false, false
					}
				}
				i += 4
			default:
				return i, false, false
			}
		}
	}
	return i, false, false
}

func hexValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func scanNumber(src []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	default:
		var ok bool
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	if i < len(src) && src[i] == '.' {
		var ok bool
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}

// appendUnquoted appends the contents of the JSON string raw (quotes
// included) with escapes decoded, so that two strings are the same string
// exactly when their results are equal. A lone UTF-16 surrogate is kept
// as its three-byte WTF-8 form rather than U+FFFD, so that two different
// escapes never decode to the same bytes. Those three bytes (0xED, then
// 0xA0-0xBF) are invalid UTF-8, so a raw string could also hold them:
// a raw 0xED before such a byte is written as 0xFF 0xED, and a raw 0xFF
// (which no escape produces) as 0xFF 0xFF. The parser marks strings
// holding either byte as escaped, so they are always compared decoded.
func appendUnquoted(dst, raw []byte) []byte {
	raw = raw[1 : len(raw)-1]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			if marksRaw(c, raw[i+1:]) {
				dst = append(dst, 0xff)
			}
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			i += 4
			if 0xd800 <= r && r < 0xdc00 && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3:]); 0xdc00 <= lo && lo < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
					i += 6
				}
			}
			dst = appendWTF8(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

// marksRaw reports whether appendUnquoted writes raw byte c, followed by
// rest, after a 0xFF.
func marksRaw[T string | []byte](c byte, rest T) bool {
	return c == 0xff || c == 0xed && len(rest) > 0 && 0xa0 <= rest[0] && rest[0] <= 0xbf
}

// markRaw rewrites unescaped text (an ignore_json token) as appendUnquoted
// writes raw bytes, so that it compares equal to a decoded member name.
func markRaw(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if marksRaw(s[i], s[i+1:]) {
			b = append(b, 0xff)
		}
		b = append(b, s[i])
	}
	return string(b)
}

func hex4(b []byte) rune {
	return hexValue(b[0])<<12 | hexValue(b[1])<<8 | hexValue(b[2])<<4 | hexValue(b[3])
}

// appendWTF8 is utf8.AppendRune, except that surrogates are encoded as
// their own three bytes instead of U+FFFD.
func appendWTF8(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xc0|byte(r>>6), 0x80|byte(r)&0x3f)
	case r < 0x10000:
		return append(dst, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return append(dst, 0xf0|byte(r>>18), 0x80|byte(r>>12)&0x3f, 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
}
