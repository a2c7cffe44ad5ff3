package compare

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Sizes of what a Difference carries: enough to see the difference, small
// enough that diff samples kept by the proxy stay cheap.
const (
	// excerptBytes bounds each side's excerpt of a non-JSON body.
	excerptBytes = 256
	// excerptLead is how much context an excerpt shows before the first
	// differing byte.
	excerptLead = 32
	// maxValueBytes bounds a JSON value in a Difference; a larger value is
	// replaced by an excerpt string of its start.
	maxValueBytes = 4096
)

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD so the output is always valid JSON.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\t':
			dst = append(dst, `\t`...)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

// excerpt returns up to excerptBytes of b from start as a JSON string,
// trimmed to whole runes. Text is shown as is; anything that is not UTF-8
// is shown Go-quoted ("\x1f\x8b…"), so binary bodies stay readable and
// distinguishable.
func excerpt(b []byte, start int) json.RawMessage {
	start = min(start, len(b))
	end := min(len(b), start+excerptBytes)
	for i := 0; i < utf8.UTFMax-1 && start < end && !utf8.RuneStart(b[start]); i++ {
		start++
	}
	if end < len(b) {
		for i := 0; i < utf8.UTFMax-1 && end > start && !utf8.RuneStart(b[end]); i++ {
			end--
		}
	}
	part := b[start:end]
	if utf8.Valid(part) {
		return appendJSONString(nil, string(part))
	}
	return appendJSONString(nil, strconv.Quote(string(part)))
}

// jsonValue copies a raw JSON value out of a body (which the caller may
// reuse) in compact form. A value over maxValueBytes is replaced by an
// excerpt string, and truncated reports that it was.
func jsonValue(raw []byte) (v json.RawMessage, truncated bool) {
	v = appendCompact(make([]byte, 0, min(len(raw), maxValueBytes+1)), raw, maxValueBytes+1)
	if len(v) <= maxValueBytes {
		return v, false
	}
	return excerpt(v, 0), true
}

// appendCompact appends the valid JSON text raw without insignificant
// whitespace, replacing invalid UTF-8 in strings (which the parser
// tolerates, as encoding/json does) so that the output is valid JSON. It
// stops once it has appended limit bytes, so that a huge value costs no
// more than the excerpt made of it.
func appendCompact(dst, raw []byte, limit int) []byte {
	inString := false
	for i, start := 0, len(dst); i < len(raw) && len(dst)-start < limit; {
		c := raw[i]
		if !inString {
			switch c {
			case ' ', '\t', '\n', '\r':
				i++
				continue
			case '"':
				inString = true
			}
			dst = append(dst, c)
			i++
			continue
		}
		switch {
		case c == '\\':
			dst = append(dst, c, raw[i+1]) // the parser guarantees an escaped byte follows
			i += 2
			continue
		case c == '"':
			inString = false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
			continue
		}
		dst = append(dst, c)
		i++
	}
	return dst
}
