package compare

import "strings"

// urlHeaders hold URLs, whose query, fragment and path parameters may
// carry credentials: a presigned download's signature, an OAuth code or
// access token, a password-reset token, a session id (;jsessionid=). They
// differ between the two sides on every answer, so every such answer
// would become a difference holding a live credential.
var urlHeaders = map[string]bool{"Location": true, "Content-Location": true, "Link": true, "Refresh": true}

// redactHeaderURLs redacts the URLs of a urlHeaders value: Link's each
// between "<" and ">", the others' whole value as one URL (Refresh's
// "5; url=" then loses its name too, which is no loss).
func redactHeaderURLs(name, v string) string {
	if name != "Link" {
		return RedactURL(v)
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			b.WriteString(v)
			return b.String()
		}
		b.WriteString(v[:i+1])
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			b.WriteString(RedactURL(v))
			return b.String()
		}
		b.WriteString(RedactURL(v[:j]))
		v = v[j:]
	}
}

// RedactURL returns the URL v with the values of its query, its fragment
// and its path parameters (";jsessionid=…", also escaped as "%3B", as a
// path is written in an escaped form and shown decoded elsewhere)
// replaced by "[redacted]", and a part without "=" (a bare token)
// replaced whole. Names are kept: they tell requests apart. Nothing else
// changes.
func RedactURL(v string) string {
	if !strings.ContainsAny(v, "?#;") && !strings.Contains(v, "%3B") && !strings.Contains(v, "%3b") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		c, open := v[i], 1
		if c == '%' {
			if open = paramStart(v, i); open == 0 {
				open = 1
			} else {
				c = ';'
			}
		}
		if c != '?' && c != '#' && c != ';' {
			b.WriteByte(v[i])
			i++
			continue
		}
		j := i + open
		for j < len(v) && !(c == '?' && v[j] == '#') && !(c == ';' && (strings.IndexByte("/?#;", v[j]) >= 0 || paramStart(v, j) > 0)) {
			j++
		}
		b.WriteString(v[i : i+open])
		sep := byte('&')
		if c == ';' {
			sep = 0 // one parameter
		}
		redactPairs(&b, v[i+open:j], sep)
		i = j
	}
	return b.String()
}

// paramStart is the length of an escaped ";" ("%3B" or "%3b") at v[i:],
// or 0.
func paramStart(v string, i int) int {
	if i+2 < len(v) && v[i] == '%' && v[i+1] == '3' && (v[i+2] == 'B' || v[i+2] == 'b') {
		return 3
	}
	return 0
}

// redactPairs writes s, pairs separated by sep (none when sep is 0), with
// each value replaced by "[redacted]" and each part without "=" replaced
// whole.
func redactPairs(b *strings.Builder, s string, sep byte) {
	for first := true; ; first = false {
		part, rest, more := s, "", false
		if sep != 0 {
			if k := strings.IndexByte(s, sep); k >= 0 {
				part, rest, more = s[:k], s[k+1:], true
			}
		}
		if !first {
			b.WriteByte(sep)
		}
		name, _, hasValue := strings.Cut(part, "=")
		switch {
		case hasValue:
			b.WriteString(name)
			b.WriteString("=[redacted]")
		case part != "":
			b.WriteString("[redacted]")
		}
		if !more {
			return
		}
		s = rest
	}
}
