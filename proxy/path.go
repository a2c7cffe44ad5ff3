package proxy

import (
	"net/url"
	"strings"
)

// Path normalization: the path a route is matched on must be the path the
// upstream receives. Neither net/http, chi nor ReverseProxy resolves dot
// segments, so without this `/api/orders/../admin` would be matched by
// `/api/orders/*` and sent to the orders service, whose framework resolves
// it to `/api/admin`: a route's service would answer for paths it does not
// own, and a route meant to keep traffic on the monolith could be skipped.
//
// normalizePath decodes percent-encoded unreserved characters (RFC 3986
// section 6.2.2.2), then resolves `.` and `..` segments (section 5.2.4, as
// Envoy's normalize_path does) in place, literal or percent-encoded
// (`%2e`, `%2E`), and keeps everything else byte for byte: an encoded slash
// (`%2F`) stays encoded and is part of its segment, never a separator; the
// query is not touched. Path and RawPath are rewritten together, so routing
// (which reads RawPath when set) and forwarding (EscapedPath) agree.
//
// It allocates only when the path has a dot segment to resolve, or an
// escaping other than the default one.
func normalizePath(u *url.URL) {
	if u.RawPath != "" && u.EscapedPath() != u.RawPath {
		// net/url keeps a RawPath it will not use (one with an octet that
		// must be escaped, such as '"'): forwarding re-escapes Path, in
		// which an encoded slash has become a separator. Route on that.
		u.RawPath = ""
	}
	if u.RawPath != "" {
		// An unreserved character percent-encoded (%6F for "o") is the
		// same character (RFC 3986 §6.2.2.2), and the upstream's framework
		// decodes it: matched on as it came, /api/%6Frders/7 would miss
		// the route of /api/orders/*. Decoded, the path may need no
		// RawPath at all.
		if raw, ok := decodeUnreserved(u.RawPath); ok {
			u.RawPath = raw
			if raw == (&url.URL{Path: u.Path}).EscapedPath() {
				u.RawPath = ""
			}
		}
	}
	// Path is the decoded form, so an encoded dot shows there as a dot: a
	// path without one has no dot segment, literal or encoded.
	if strings.IndexByte(u.Path, '.') < 0 {
		return
	}
	if u.RawPath == "" {
		// The request's escaping was the default one, so Path holds no
		// encoded slash: its slashes are the separators and its dots are
		// literal (a "%2e" here is the text of an escaped "%252e").
		if p, ok := removeDotSegments(u.Path, false); ok {
			u.Path = p
		}
		return
	}
	p, ok := removeDotSegments(u.RawPath, true)
	if !ok {
		return
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return // cannot happen: p is a subsequence of segments of a valid RawPath
	}
	u.Path, u.RawPath = dec, p
}

// decodeUnreserved decodes the percent-encoded unreserved characters of an
// escaped path (ALPHA, DIGIT, "-", ".", "_", "~"), reporting false when it
// has none. Every other escape, %2F above all, stays as it is.
func decodeUnreserved(p string) (string, bool) {
	var out []byte
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) {
			if out != nil {
				out = append(out, p[i])
			}
			continue
		}
		h, l := unhex(p[i+1]), unhex(p[i+2])
		c := byte(h<<4 | l)
		if h < 0 || l < 0 || !unreserved(c) {
			if out != nil {
				out = append(out, p[i])
			}
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(p)), p[:i]...)
		}
		out = append(out, c)
		i += 2
	}
	if out == nil {
		return p, false
	}
	return string(out), true
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments resolves the dot segments of an absolute path (one
// starting with "/"), reporting false when it has none. With encoded, a
// segment spelled with %2e counts as a dot segment.
func removeDotSegments(p string, encoded bool) (string, bool) {
	if len(p) == 0 || p[0] != '/' || !hasDotSegment(p, encoded) {
		return p, false
	}
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		// p[i] == '/': the segment runs to the next slash.
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		last := j == len(p)
		switch dots(p[i+1:j], encoded) {
		case 1: // "/." : drop it; a final one leaves the directory's slash
			if last {
				out = append(out, '/')
			}
		case 2: // "/..": drop it and the segment before it
			if k := lastSlash(out); k >= 0 {
				out = out[:k]
			}
			if last {
				out = append(out, '/')
			}
		default:
			out = append(out, p[i:j]...)
		}
		i = j
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return string(out), true
}

// dotWithParameter reports whether the path has a dot segment that carries
// a path parameter ("..;x", "..;", ".;x", encoded dots too). Servlet
// containers and Spring drop ";" parameters before resolving dot segments,
// so the upstream would read "/api/orders/..;/admin" as "/api/admin", a path
// outside the route that matched it. Such segments have no legitimate use;
// the proxy refuses them.
func dotWithParameter(u *url.URL) bool {
	// In Path (no RawPath), a "%2e" is the text of an escaped "%252e",
	// not a dot.
	p, encoded := u.RawPath, true
	if p == "" {
		p, encoded = u.Path, false
	}
	if strings.IndexByte(p, ';') < 0 {
		return false
	}
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg := p[i+1 : j]
		if k := strings.IndexByte(seg, ';'); k >= 0 && dots(seg[:k], encoded) != 0 {
			return true
		}
		i = j
	}
	return false
}

func hasDotSegment(p string, encoded bool) bool {
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		if dots(p[i+1:j], encoded) != 0 {
			return true
		}
		i = j
	}
	return false
}

// dots reports whether seg is "." (1), ".." (2) or neither (0); with
// encoded, each dot may also be written %2e or %2E.
func dots(seg string, encoded bool) int {
	n := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case encoded && i+2 < len(seg) && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return 0
		}
		n++
		if n > 2 {
			return 0
		}
	}
	return n
}

func lastSlash(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return i
		}
	}
	return -1
}
