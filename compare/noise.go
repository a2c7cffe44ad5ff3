package compare

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultNoiseFields bounds a route's learned noise when NewNoise is given
// no limit: a route whose answers vary in more places than this is not
// being compared so much as sampled, and the admin list must stay short.
const DefaultNoiseFields = 256

// Noise is what one route has learned about its own nondeterminism: the
// fields in which the monolith answers the same request differently.
// Differences in those fields are noise, not divergence. One Noise is
// shared by all comparisons of a route and is safe for concurrent use:
// comparisons read an immutable snapshot, and learning, which stops once a
// route's noisy fields are known, copies it.
type Noise struct {
	max    int
	mu     sync.Mutex // serialises learners
	fields atomic.Pointer[map[noiseField]struct{}]
}

// noiseField is a noisy header (canonical name) or body field (JSON
// Pointer with numeric segments replaced by "*").
type noiseField struct {
	kind  Kind
	where string
}

// NewNoise returns an empty noise set that remembers at most max fields;
// max <= 0 means DefaultNoiseFields.
func NewNoise(max int) *Noise {
	if max <= 0 {
		max = DefaultNoiseFields
	}
	n := &Noise{max: max}
	n.fields.Store(&map[noiseField]struct{}{})
	return n
}

// Compare compares shadow with primary like the package-level Compare,
// then drops the differences that are noise, counting them in
// Result.Noisy. monolithA and monolithB are two answers of the monolith to
// the same request; the proxy passes the right pair: (primary, extra) when
// the monolith was the primary, (shadow, extra) when it was the shadow.
// Where they differ is noise now and is remembered for later comparisons.
// Pass nil for them when the extra call failed: the differences already
// learned are still dropped.
//
// A difference of status never counts as noise, and two monolith answers
// with different statuses teach nothing: one of them failed, and an error
// page differs from a real answer everywhere.
func (n *Noise) Compare(primary, shadow, monolithA, monolithB *Response, r *Rules) Result {
	f := &noiseFilter{learned: *n.fields.Load()}
	if monolithA != nil && monolithB != nil && monolithA.Status == monolithB.Status {
		c := getComparison(r)
		c.keysOnly = true
		c.limit = max(n.max, r.maxDifferences)
		c.run(monolithA, monolithB)
		for _, d := range c.diffs {
			where := d.Header
			if d.Kind == KindBody {
				where = d.Pointer
			}
			f.current = append(f.current, noiseField{d.Kind, where})
		}
		putComparison(c)
		f.learned = n.learn(f.current)
	}

	c := getComparison(r)
	defer putComparison(c)
	c.noise = f
	c.run(primary, shadow)
	return c.result()
}

// learn adds fields to the set, up to its bound, and returns the set now
// in force. The lock is only taken when something is new.
func (n *Noise) learn(fields []noiseField) map[noiseField]struct{} {
	cur := *n.fields.Load()
	if !hasNew(cur, fields) {
		return cur
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cur = *n.fields.Load()
	if len(cur) >= n.max || !hasNew(cur, fields) {
		return cur
	}
	next := maps.Clone(cur)
	for _, f := range fields {
		if len(next) >= n.max {
			break
		}
		next[f.normalized()] = struct{}{}
	}
	n.fields.Store(&next)
	return next
}

func hasNew(set map[noiseField]struct{}, fields []noiseField) bool {
	for _, f := range fields {
		if _, ok := set[f.normalized()]; !ok {
			return true
		}
	}
	return false
}

// Fields returns the learned noisy fields, sorted: body fields as JSON
// Pointers in ignore_json syntax ("/items/*/updatedAt", or "" for a whole
// non-JSON body), headers as "header:" and the canonical name. Both can be
// copied into a route's ignore_json or ignore_headers as they are.
func (n *Noise) Fields() []string {
	set := *n.fields.Load()
	out := make([]string, 0, len(set))
	for f := range set {
		if f.kind == KindHeader {
			out = append(out, "header:"+f.where)
		} else {
			out = append(out, f.where)
		}
	}
	slices.Sort(out)
	return out
}

// Len returns the number of learned noisy fields.
func (n *Noise) Len() int { return len(*n.fields.Load()) }

// noiseFilter drops differences known as noise during one comparison.
type noiseFilter struct {
	learned map[noiseField]struct{}
	current []noiseField // where this request's two monolith answers differ
}

// drops reports whether a difference is noise: found at the very same
// place between this request's monolith answers (array indexes taken
// literally), or at a place learned before once numeric segments are
// generalised. The second rule is what makes "/items/7/ts" noise after
// "/items/3/ts" was: the set would otherwise fill with one entry per index.
func (f *noiseFilter) drops(kind Kind, where string) bool {
	if kind == KindStatus {
		return false
	}
	field := noiseField{kind, where}
	if slices.Contains(f.current, field) {
		return true
	}
	_, ok := f.learned[field.normalized()]
	return ok
}

// normalized replaces every numeric segment of a body pointer by "*". It
// allocates only when there is one to replace.
func (f noiseField) normalized() noiseField {
	if f.kind != KindBody || !hasNumericSegment(f.where) {
		return f
	}
	segs := strings.Split(f.where, "/")
	for i, s := range segs {
		if i > 0 && isNumeric(s) {
			segs[i] = "*"
		}
	}
	return noiseField{f.kind, strings.Join(segs, "/")}
}

func hasNumericSegment(ptr string) bool {
	for seg := range strings.SplitSeq(ptr, "/") {
		if isNumeric(seg) {
			return true
		}
	}
	return false
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
