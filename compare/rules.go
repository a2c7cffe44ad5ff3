package compare

import (
	"errors"
	"fmt"
	"golang.org/x/net/http/httpguts"
	"net/textproto"
	"strings"
)

// Defaults applied by [NewRules] when a limit is left at zero.
const (
	// DefaultMaxDecoded bounds a decoded body: large enough for any API
	// response worth comparing structurally, small enough that a handful of
	// concurrent comparisons cannot exhaust memory.
	DefaultMaxDecoded = 8 << 20
	// DefaultMaxDifferences is how many differences a Result lists; a
	// response that differs in more places is counted, not listed, because
	// nobody reads the 101st difference and samples must stay small.
	DefaultMaxDifferences = 100

	// maxMaxDecoded keeps offsets inside a parsed document within int32,
	// which halves the size of the parse tape.
	maxMaxDecoded = 1 << 30
)

// RulesConfig is the comparison part of a route's configuration, as parsed
// from YAML. [NewRules] validates it and compiles it into [Rules].
type RulesConfig struct {
	// IgnoreHeaders are response header names never compared, in addition
	// to the built-in list documented in the package doc.
	IgnoreHeaders []string
	// IgnoreJSON are JSON Pointers (RFC 6901) whose subtrees are skipped
	// when both bodies are JSON. A segment "*" matches any one segment.
	IgnoreJSON []string
	// UnorderedJSON are JSON Pointers (the same syntax) of arrays whose
	// element order does not matter: each element is paired with an equal
	// one wherever it is, and only what is left over differs.
	UnorderedJSON []string
	// SecretHeaders are header names whose values never appear in a
	// Difference, in addition to Authorization, Proxy-Authorization,
	// Cookie and Set-Cookie.
	SecretHeaders []string
	// MaxDecoded bounds the size of a body after Content-Encoding is
	// removed; 0 means DefaultMaxDecoded.
	MaxDecoded int64
	// MaxDifferences bounds Result.Differences; 0 means
	// DefaultMaxDifferences.
	MaxDifferences int
	// Mark is a request header the shadow's request carried and the
	// primary's did not (a proxy's mark on its copies), as "Name: value".
	// A service that echoes its request's headers in its answer (a
	// debugging endpoint, httpbin's /anything) echoes the mark too: a
	// JSON member of that name, in any case, present in the shadow's
	// answer only, whose value is the mark's value or a list of it alone,
	// is not a difference. Empty: no mark.
	Mark string
}

// Rules are compiled comparison rules. They are immutable, so one Rules is
// shared by every comparison of a route, from any number of goroutines.
type Rules struct {
	ignoreHeaders map[string]bool // canonical name → true; built-in plus configured
	secretHeaders map[string]bool // canonical name → true; built-in plus configured
	ignoreRoot    bool            // IgnoreJSON contains "": bodies are never compared as JSON
	// patternsByDepth[d] holds the patterns with exactly d segments, so the
	// walk only tries the patterns that can match the depth it is at.
	patternsByDepth [][]pattern
	// unorderedByDepth: UnorderedJSON the same way; "" (the root array)
	// is the one pattern at depth 0.
	unorderedByDepth [][]pattern
	maxDecoded       int64
	maxDifferences   int
	markName         []byte // RulesConfig.Mark's name; nil when there is no mark
	markValue        string
}

// NewRules validates cfg and compiles it. Errors name the offending entry
// the way the YAML spells it, e.g. `ignore_json[2] "/items/~2": ...`.
func NewRules(cfg RulesConfig) (*Rules, error) {
	r := &Rules{
		ignoreHeaders:  make(map[string]bool, len(builtinIgnoredHeaders)+len(cfg.IgnoreHeaders)),
		secretHeaders:  make(map[string]bool, len(builtinSecretHeaders)+len(cfg.SecretHeaders)),
		maxDecoded:     cfg.MaxDecoded,
		maxDifferences: cfg.MaxDifferences,
	}
	for _, name := range builtinIgnoredHeaders {
		r.ignoreHeaders[textproto.CanonicalMIMEHeaderKey(name)] = true
	}
	for _, name := range builtinSecretHeaders {
		r.secretHeaders[textproto.CanonicalMIMEHeaderKey(name)] = true
	}
	for i, name := range cfg.IgnoreHeaders {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("ignore_headers[%d] %q: not a valid header name", i, name)
		}
		r.ignoreHeaders[textproto.CanonicalMIMEHeaderKey(name)] = true
	}
	for i, name := range cfg.SecretHeaders {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("secret_headers[%d] %q: not a valid header name", i, name)
		}
		r.secretHeaders[textproto.CanonicalMIMEHeaderKey(name)] = true
	}
	var err error
	if r.patternsByDepth, err = compilePatterns("ignore_json", cfg.IgnoreJSON); err != nil {
		return nil, err
	}
	if len(r.patternsByDepth) > 0 && len(r.patternsByDepth[0]) > 0 {
		r.ignoreRoot = true
		r.patternsByDepth[0] = nil
	}
	if r.unorderedByDepth, err = compilePatterns("unordered_json", cfg.UnorderedJSON); err != nil {
		return nil, err
	}
	if err := indexedInUnordered(cfg.IgnoreJSON, cfg.UnorderedJSON); err != nil {
		return nil, err
	}
	switch {
	case r.maxDecoded < 0 || r.maxDecoded > maxMaxDecoded:
		return nil, fmt.Errorf("max_decoded %d: must be between 0 (default %d) and %d", cfg.MaxDecoded, DefaultMaxDecoded, maxMaxDecoded)
	case r.maxDecoded == 0:
		r.maxDecoded = DefaultMaxDecoded
	}
	if cfg.Mark != "" {
		name, value, ok := strings.Cut(cfg.Mark, ":")
		r.markName, r.markValue = []byte(name), strings.TrimSpace(value)
		if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(r.markValue) {
			return nil, fmt.Errorf("mark %q: want \"Name: value\"", cfg.Mark)
		}
	}
	switch {
	case r.maxDifferences < 0:
		return nil, fmt.Errorf("max_differences %d: must not be negative (0 means %d)", cfg.MaxDifferences, DefaultMaxDifferences)
	case r.maxDifferences == 0:
		r.maxDifferences = DefaultMaxDifferences
	}
	return r, nil
}

// compilePatterns compiles a list of pointers (named key in errors) into
// patterns grouped by their number of segments.
func compilePatterns(key string, list []string) ([][]pattern, error) {
	var byDepth [][]pattern
	for i, s := range list {
		p, err := parsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: %w", key, i, s, err)
		}
		for len(byDepth) <= len(p.segs) {
			byDepth = append(byDepth, nil)
		}
		byDepth[len(p.segs)] = append(byDepth[len(p.segs)], p)
	}
	return byDepth, nil
}

// indexedInUnordered refuses an ignore_json or unordered_json pointer
// that names an element of an unordered_json array by its index
// ("/items/0/ts" below "/items"): no element keeps a place there, so what
// it named would depend on the order of the answers.
func indexedInUnordered(ignore, unordered []string) error {
	for _, list := range []struct {
		key      string
		pointers []string
	}{{"ignore_json", ignore}, {"unordered_json", unordered}} {
		for i, ps := range list.pointers {
			p, _ := parsePattern(ps) // already checked
			for j, us := range unordered {
				if u, _ := parsePattern(us); indexesInto(p, u) {
					return fmt.Errorf("%s[%d] %q: names an element of unordered_json[%d] %q by its index, a place no element keeps (use * for every element)", list.key, i, ps, j, us)
				}
			}
		}
	}
	return nil
}

// indexesInto reports whether pattern p, on some path, names an element
// of an array that u matches by a literal index.
func indexesInto(p, u pattern) bool {
	n := len(u.segs)
	if len(p.segs) <= n || p.segs[n].wildcard || p.segs[n].index < 0 {
		return false
	}
	for k, seg := range u.segs {
		if ps := p.segs[k]; !seg.wildcard && !ps.wildcard && seg.lit != ps.lit {
			return false
		}
	}
	return true
}

// builtinIgnoredHeaders differ between two correct answers to the same
// request. The package doc gives the reason for each; keep the two in step.
var builtinIgnoredHeaders = []string{
	// Hop-by-hop (RFC 9110 §7.6.1): they describe one connection, not the response.
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"TE", "Trailer", "Transfer-Encoding", "Upgrade",
	// Generation time and caching metadata derived from it.
	"Date", "Age", "Expires", "Last-Modified", "ETag",
	// Representation details: bodies are compared after decoding.
	"Content-Length", "Content-Encoding",
	// Implementation identity: the service is not the monolith, by design.
	"Server", "X-Powered-By", "Via", "Alt-Svc",
	// Per-request identifiers and tracing.
	"X-Request-Id", "X-Correlation-Id", "Request-Id", "X-Trace-Id",
	"Traceparent", "Tracestate", "B3", "X-B3-TraceId", "X-B3-SpanId", "X-B3-ParentSpanId",
	"X-B3-Sampled", "X-B3-Flags", "X-Amzn-Trace-Id", "X-Amzn-RequestId", "X-Cloud-Trace-Context",
	// The same, from the infrastructure in front of one side only (a mesh,
	// a gateway, a CDN): missing on the other side, never learnable as noise.
	"X-Amz-Request-Id", "X-Amz-Id-2", "X-Amz-Cf-Id", "X-Amz-Cf-Pop", "X-Amz-Apigw-Id",
	"X-Kong-Request-Id", "Cf-Ray", "X-Ms-Request-Id",
	// Timings.
	"X-Runtime", "X-Response-Time", "Server-Timing",
	"X-Envoy-Upstream-Service-Time", "X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency",
	// Browser reporting endpoints, configured per deployment.
	"Report-To", "Reporting-Endpoints", "NEL",
}

// builtinSecretHeaders carry credentials or session state. Their values
// never leave the comparator, whatever the configuration says.
var builtinSecretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// A pattern is a compiled IgnoreJSON entry: one segment per pointer token.
type pattern struct {
	segs []patternSeg
}

type patternSeg struct {
	wildcard bool
	lit      string // the unescaped token, its raw bytes marked as appendUnquoted marks them
	// index is lit read as an array index ("0", "17"; not "017" or "-"),
	// or -1. Comparing ints spares formatting the walk's index per node.
	index int
}

var (
	errNoSlash   = errors.New(`a JSON Pointer is "" or starts with "/"`)
	errBadEscape = errors.New(`"~" must be followed by "0" (for "~") or "1" (for "/")`)
)

// parsePattern compiles a JSON Pointer in which a segment of exactly "*"
// matches any one segment. RFC 6901 has no escape for "*", so a member
// literally named "*" can only be matched by the wildcard.
func parsePattern(s string) (pattern, error) {
	if s == "" {
		return pattern{}, nil
	}
	if s[0] != '/' {
		return pattern{}, errNoSlash
	}
	var p pattern
	for _, tok := range strings.Split(s[1:], "/") {
		lit, err := unescapeToken(tok)
		if err != nil {
			return pattern{}, err
		}
		if tok == "*" {
			p.segs = append(p.segs, patternSeg{wildcard: true, index: -1})
			continue
		}
		p.segs = append(p.segs, patternSeg{lit: markRaw(lit), index: arrayIndex(lit)})
	}
	return p, nil
}

// unescapeToken undoes RFC 6901 escaping of one reference token.
func unescapeToken(tok string) (string, error) {
	if strings.IndexByte(tok, '~') < 0 {
		return tok, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '~' {
			b.WriteByte(tok[i])
			continue
		}
		if i+1 == len(tok) {
			return "", errBadEscape
		}
		switch tok[i+1] {
		case '0':
			b.WriteByte('~')
		case '1':
			b.WriteByte('/')
		default:
			return "", errBadEscape
		}
		i++
	}
	return b.String(), nil
}

// arrayIndex returns s as an RFC 6901 array index, or -1 when s is not one
// (leading zeros are not allowed; huge values are treated as keys).
func arrayIndex(s string) int {
	if s == "" || len(s) > 9 || (s[0] == '0' && len(s) > 1) {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}
