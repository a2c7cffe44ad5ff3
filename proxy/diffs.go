package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/compare"
)

// Samples kept per route and body bytes kept per side of a sample: enough
// to see what diverged, bounded so memory stays flat however often a
// route mismatches.
const (
	samplesPerRoute = 100
	sampleBodyBytes = 4 << 10
	// sampleDiffBytes bounds a sample's differences together, and
	// samplePointerBytes each one's JSON Pointer: the comparator bounds
	// values, but a pointer is as long as the keys on its way, and a key
	// can be as long as an answer (one taken from the request: a review
	// stored 6 MiB a sample).
	sampleDiffBytes    = 64 << 10
	samplePointerBytes = 1 << 10
)

// DiffSample is one mismatched comparison, as GET /api/diffs shows it.
// Secret headers (Authorization, Cookie, Set-Cookie, secret_headers) never
// reach it: the comparator redacts their values, and no other header is
// stored.
type DiffSample struct {
	Time        time.Time            `json:"time"`
	Route       string               `json:"route"`
	Method      string               `json:"method"`
	Path        string               `json:"path"` // query values redacted
	Primary     SampleSide           `json:"primary"`
	Shadow      SampleSide           `json:"shadow"`
	Differences []compare.Difference `json:"differences"`
	Omitted     int                  `json:"omitted,omitempty"`
	// TraceID is the request's trace, which holds both calls' spans and
	// the access log's line; empty with tracing off.
	TraceID string `json:"trace_id,omitempty"`
}

// SampleSide is one side of a DiffSample.
type SampleSide struct {
	Backend         string  `json:"backend"`
	Status          int     `json:"status"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Body is the start of the answer's body when it is plain text (not
	// content-encoded), at most 4 KiB.
	Body          string `json:"body,omitempty"`
	BodyTruncated bool   `json:"body_truncated,omitempty"`
}

func newSample(p *shadowPair, res compare.Result) DiffSample {
	secrets := secretValues(p.req.Header, p.sh.secrets)
	s := DiffSample{
		Time:    p.queued.UTC(), // when the request came, not when the pool compared it
		Route:   p.rt.name,
		Method:  p.req.Method,
		Path:    redactQuery(p.req.URL.EscapedPath(), p.req.URL.RawQuery),
		Primary: sampleSide(p.primaryBackend(), &p.primary, p.primaryDur, secrets),
		Shadow:  sampleSide(p.shadowBackend(), &p.shadow, p.shadowDur, secrets),
		TraceID: traceID(p.client),
	}
	s.Differences, s.Omitted = boundDifferences(res.Differences, res.Omitted)
	if len(secrets) > 0 {
		redactEchoes(&s, secrets)
	}
	return s
}

// minSecret is the shortest secret value looked for in what a sample
// keeps: shorter ones ("1", a cookie "en") are found everywhere, and
// replacing them would garble the sample, not protect anything.
const minSecret = 8

// secretValues are the request's values of the secret headers, as an
// answer that echoes its request (a debugging endpoint) shows them: each
// whole value, an Authorization's credentials without their scheme, a
// Cookie's values one by one.
func secretValues(h http.Header, names []string) []string {
	var out []string
	add := func(v string) {
		if v = strings.TrimSpace(v); len(v) >= minSecret {
			out = append(out, v)
		}
	}
	for _, name := range names {
		for _, v := range h.Values(name) {
			add(v)
			if _, cred, ok := strings.Cut(strings.TrimSpace(v), " "); ok {
				add(cred)
			}
			if strings.EqualFold(name, "Cookie") {
				for c := range strings.SplitSeq(v, ";") {
					if _, val, ok := strings.Cut(c, "="); ok {
						add(val)
					}
				}
			}
		}
	}
	// As JSON writes them too (a debugging endpoint that marshals its
	// request's headers): "&" as \u0026, "/" as \/ (PHP), quotes and
	// backslashes escaped.
	// Twice: a JSON value past 4 KiB is shown as an excerpt string of
	// its JSON text, escaped once more.
	for range 2 {
		for _, v := range out {
			for _, w := range jsonForms(v) {
				if !slices.Contains(out, w) {
					out = append(out, w)
				}
			}
		}
	}
	// The longest first: a whole value before the credentials in it.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// jsonForms are the ways JSON may write v inside a string, but v itself.
func jsonForms(v string) []string {
	var forms []string
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		enc.Encode(v)
		q := strings.TrimSuffix(b.String(), "\n")
		q = q[1 : len(q)-1]
		for _, f := range []string{q, strings.ReplaceAll(q, "/", `\/`)} {
			if f != v && !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
		}
	}
	return forms
}

// minSecretEdge is the shortest part of a secret looked for at an
// excerpt's edges.
const minSecretEdge = 4

// redactEnds replaces a start of s that ends a secret, and an end of s
// that begins one (at least minSecretEdge bytes of it): what an excerpt
// cut in the middle of an echoed secret shows of it.
func redactEnds(s string, secrets []string) string {
	for _, v := range secrets {
		for k := len(v) - 1; k >= minSecretEdge; k-- {
			if strings.HasSuffix(s, v[:k]) {
				s = s[:len(s)-k] + "[redacted]"
				break
			}
		}
		for k := len(v) - 1; k >= minSecretEdge; k-- {
			if strings.HasPrefix(s, v[len(v)-k:]) {
				s = "[redacted]" + s[k:]
				break
			}
		}
	}
	return s
}

// redactEchoes replaces the secret values an answer echoed (in its body's
// excerpt, or a JSON value of a difference) with "[redacted]".
func redactEchoes(s *DiffSample, secrets []string) {
	for i := range s.Differences {
		d := &s.Differences[i]
		for _, v := range secrets {
			d.Primary = replaceRaw(d.Primary, v)
			d.Shadow = replaceRaw(d.Shadow, v)
			d.Note = strings.ReplaceAll(d.Note, v, "[redacted]")
		}
		// A value shown as an excerpt (a long string) may cut one.
		d.Primary, d.Shadow = redactStringEnds(d.Primary, secrets), redactStringEnds(d.Shadow, secrets)
	}
}

// redactStringEnds is redactEnds inside a JSON string value.
func redactStringEnds(raw json.RawMessage, secrets []string) json.RawMessage {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return raw
	}
	inner := string(raw[1 : len(raw)-1])
	if r := redactEnds(inner, secrets); r != inner {
		return json.RawMessage(`"` + r + `"`)
	}
	return raw
}

func replaceRaw(raw json.RawMessage, secret string) json.RawMessage {
	if !bytes.Contains(raw, []byte(secret)) {
		return raw
	}
	out := bytes.ReplaceAll(raw, []byte(secret), []byte("[redacted]"))
	if !json.Valid(out) {
		// The secret was no string's part there (a number, or spanning
		// JSON's own syntax): the whole value goes.
		return redactedValue
	}
	return out
}

// boundDifferences keeps the differences that fit in sampleDiffBytes (the
// first one always), with each pointer cut to samplePointerBytes, and
// counts the rest as omitted.
func boundDifferences(diffs []compare.Difference, omitted int) ([]compare.Difference, int) {
	out := make([]compare.Difference, 0, len(diffs))
	size := 0
	for i, d := range diffs {
		if len(d.Pointer) > samplePointerBytes {
			p := d.Pointer[:samplePointerBytes]
			for len(p) > 0 && !utf8.ValidString(p) && len(p) > samplePointerBytes-utf8.UTFMax {
				p = p[:len(p)-1] // do not cut a character in half
			}
			d.Pointer = p + "…"
			d.Note = strings.TrimPrefix(d.Note+"; pointer longer than "+strconv.Itoa(samplePointerBytes)+" bytes is shown as its start", "; ")
		}
		n := len(d.Pointer) + len(d.Header) + len(d.Primary) + len(d.Shadow) + len(d.Note)
		if size+n > sampleDiffBytes && len(out) > 0 {
			return out, omitted + len(diffs) - i
		}
		size += n
		out = append(out, d)
	}
	return out, omitted
}

func sampleSide(backend string, c *capture, d time.Duration, secrets []string) SampleSide {
	side := SampleSide{Backend: backend, Status: c.status, DurationSeconds: d.Seconds()}
	if enc := c.header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return side
	}
	b := c.body
	if len(secrets) > 0 {
		// Redacted before the cut, so that a secret across it goes
		// whole; then what the cut left of one at the end.
		more := len(secrets[0]) // the longest
		head := string(b[:min(len(b), sampleBodyBytes+more)])
		side.BodyTruncated = len(b) > len(head)
		for _, v := range secrets {
			head = strings.ReplaceAll(head, v, "[redacted]")
		}
		if len(head) > sampleBodyBytes {
			cut := sampleBodyBytes
			for cut > sampleBodyBytes-utf8.UTFMax && !utf8.RuneStart(head[cut]) {
				cut-- // do not cut a character in half
			}
			head = head[:cut]
			side.BodyTruncated = true
		}
		if side.BodyTruncated {
			head = redactEnds(head, secrets)
		}
		if utf8.ValidString(head) {
			side.Body = head
		}
		return side
	}
	if len(b) > sampleBodyBytes {
		b, side.BodyTruncated = b[:sampleBodyBytes], true
		for len(b) > 0 && !utf8.Valid(b) && len(b) > sampleBodyBytes-utf8.UTFMax {
			b = b[:len(b)-1] // do not cut a character in half
		}
	}
	if utf8.Valid(b) {
		side.Body = string(b)
	}
	return side
}

// redactQuery keeps the names of the query's parts and of the path's
// parameters (;jsessionid=…) and drops their values: values carry tokens,
// emails and search terms; names are what a reader needs to tell requests
// apart. The same redaction as the answers' Location and Link headers.
func redactQuery(path, rawQuery string) string {
	if rawQuery != "" {
		path += "?" + rawQuery
	}
	return compare.RedactURL(path)
}

// diffRing keeps a route's last samples. Only comparison workers write it,
// so its lock is never taken on the request path.
type diffRing struct {
	mu     sync.Mutex
	buf    [samplesPerRoute]DiffSample
	next   int
	count  int
	secret map[string]bool // see setSecret
}

func (d *diffRing) add(s DiffSample) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s.Differences = redactHeaderDiffs(s.Differences, d.secret)
	d.buf[d.next] = s
	d.next = (d.next + 1) % len(d.buf)
	d.count = min(d.count+1, len(d.buf))
}

// setSecret makes names the header names whose values no sample shows
// (the route's latest config's): kept samples are redacted now, and a
// sample a comparison adds later too, though that comparison began under
// an older config (a reload names a header secret because a sample
// showed it).
func (d *diffRing) setSecret(names map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.secret = names
	for i := range d.buf[:d.count] {
		d.buf[i].Differences = redactHeaderDiffs(d.buf[i].Differences, names)
	}
}

// redactHeaderDiffs replaces the values of the named headers'
// differences, as the comparator leaves secret headers' out. It returns
// a copy when it changes something: /api/diffs may be writing out the old
// one (newest shares the slices it returns).
func redactHeaderDiffs(diffs []compare.Difference, names map[string]bool) []compare.Difference {
	shows := func(d compare.Difference) bool {
		// Set-Cookie's difference shows cookie names and attributes
		// only, as the comparator chose (its values never).
		return d.Kind == compare.KindHeader && names[d.Header] && d.Header != "Set-Cookie" &&
			(d.Primary != nil && !bytes.Equal(d.Primary, redactedValue) || d.Shadow != nil && !bytes.Equal(d.Shadow, redactedValue))
	}
	if !slices.ContainsFunc(diffs, shows) {
		return diffs
	}
	diffs = slices.Clone(diffs)
	for j := range diffs {
		if dj := &diffs[j]; shows(*dj) {
			if dj.Primary != nil && dj.Shadow != nil {
				dj.Note = "secret header: the values differ and are not shown"
			}
			if dj.Primary != nil {
				dj.Primary = redactedValue
			}
			if dj.Shadow != nil {
				dj.Shadow = redactedValue
			}
		}
	}
	return diffs
}

// redactedValue stands for a secret header's value, as the comparator
// writes it.
var redactedValue = json.RawMessage(`"[redacted]"`)

// newest returns up to limit samples, newest request first. Samples are
// added in the order the pool finished comparing them, which is not quite
// the order the requests came in.
func (d *diffRing) newest(limit int) []DiffSample {
	d.mu.Lock()
	out := make([]DiffSample, 0, d.count)
	for i := 1; i <= d.count; i++ {
		out = append(out, d.buf[(d.next-i+len(d.buf))%len(d.buf)])
	}
	d.mu.Unlock()
	sortNewestFirst(out)
	return out[:min(limit, len(out))]
}

func sortNewestFirst(s []DiffSample) {
	slices.SortStableFunc(s, func(a, b DiffSample) int { return b.Time.Compare(a.Time) })
}

// apiDiffs serves GET /api/diffs?route=orders&limit=20: the latest
// mismatch samples, newest first, of one route or all.
func (s *Server) apiDiffs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeText(w, http.StatusBadRequest, "limit: want a whole number from 1 (at most 100 are kept)\n")
			return
		}
		limit = min(n, samplesPerRoute) // a route keeps no more
	}
	t := s.table.Load()
	var out []DiffSample
	found := false
	for _, rt := range t.routes {
		if name := q.Get("route"); name != "" && name != rt.name {
			continue
		}
		found = true
		out = append(out, rt.shadow.state.samples.newest(limit)...)
	}
	if !found && q.Get("route") != "" {
		writeText(w, http.StatusNotFound, "route "+strconv.Quote(q.Get("route"))+": no such route\n")
		return
	}
	// Merge the routes' lists by time, newest first.
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	if out == nil {
		out = []DiffSample{}
	}
	writeJSON(w, http.StatusOK, out)
}
