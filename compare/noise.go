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
	mu     sync.Mutex                           // serialises learners
	fields atomic.Pointer[map[noiseField]shape] // the widest shape seen there
}

// noiseField is a noisy header (canonical name) or body field (JSON
// Pointer; as learned, with its array indexes as "*", an object's numeric
// keys as they are).
type noiseField struct {
	kind  Kind
	where string
}

// shape is the kind of difference found at a place. A place whose value
// varies between two monolith answers is noise for values (a timestamp,
// an id), and one whose type varies (null or a date) for types too; but
// neither says anything about a member or an array element missing on
// one side: a service that drops a noisy field, or answers [] where the
// monolith's list merely grew, is a real divergence. So a shape is
// dropped only where the monolith showed it, or a wider one: shapeType
// covers shapeValue, and shapeAbsent is never learned (learned at
// "/items/*", a list whose length varied once would hide every missing or
// extra element for good); it is dropped only for the request whose
// monolith answers showed it at the very same place.
type shape uint8

const (
	shapeValue  shape = iota + 1 // both present, same JSON type (or header present on both sides)
	shapeType                    // both present, different JSON types; a body that failed to decode or is JSON on one side only
	shapeAbsent                  // present on one side only
)

// covers reports whether noise of shape learned hides a difference of
// shape sh.
func (learned shape) covers(sh shape) bool {
	if learned == shapeAbsent || sh == shapeAbsent {
		return learned == sh
	}
	return learned >= sh
}

// noiseDiff is where this request's two monolith answers differ, and how.
type noiseDiff struct {
	noiseField        // the place: for a body, its literal pointer
	general    string // the place as learned (generalPointer)
	shape      shape
}

// NewNoise returns an empty noise set that remembers at most max fields;
// max <= 0 means DefaultNoiseFields.
func NewNoise(max int) *Noise {
	if max <= 0 {
		max = DefaultNoiseFields
	}
	n := &Noise{max: max}
	n.fields.Store(&map[noiseField]shape{})
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
		// Elements of an unordered_json array pair despite the fields
		// already known to vary (a timestamp): paired otherwise, they
		// would teach the fields that tell them apart.
		c.probeNoise = &noiseFilter{learned: f.learned}
		c.run(monolithA, monolithB)
		for i, d := range c.diffs {
			where := d.Header
			if d.Kind == KindBody {
				where = d.Pointer
			}
			f.current = append(f.current, noiseDiff{noiseField{d.Kind, where}, c.generals[i], c.shapes[i]})
		}
		if len(c.movedLists) > 0 {
			f.movedAt = make(map[string]bool, len(c.movedLists))
			for _, m := range c.movedLists {
				f.movedAt[m] = true
			}
			f.movedShapes = map[string]uint8{}
			for _, d := range f.current {
				if in, _ := f.inMovedList(d.where); in && d.kind == KindBody {
					f.movedShapes[d.general] |= 1 << d.shape
				}
			}
		}
		if len(f.current) > 0 {
			f.currentAt = make(map[noiseField]uint8, len(f.current))
			for _, d := range f.current {
				f.currentAt[d.noiseField] |= 1 << d.shape
			}
		}
		f.span = c.textSpan
		toLearn := f.current
		if len(c.unordered) > 0 {
			// Fields of a list the monolith returned in another order are
			// noise for this request, not fields that vary: remembered,
			// they would hide a service's wrong prices for good.
			toLearn = slices.DeleteFunc(slices.Clone(f.current), func(d noiseDiff) bool {
				return slices.ContainsFunc(c.unordered, func(u string) bool { return strings.HasPrefix(d.general, u) })
			})
		}
		putComparison(c)
		f.learned = n.learn(toLearn)
	}

	c := getComparison(r)
	defer putComparison(c)
	c.noise = f
	c.run(primary, shadow)
	return c.result()
}

// learn adds fields to the set, up to its bound, and returns the set now
// in force. The lock is only taken when something is new.
func (n *Noise) learn(fields []noiseDiff) map[noiseField]shape {
	cur := *n.fields.Load()
	if !hasNew(cur, fields, n.max) {
		return cur
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cur = *n.fields.Load()
	if !hasNew(cur, fields, n.max) {
		return cur
	}
	next := maps.Clone(cur)
	for _, f := range fields {
		if !learnable(f) {
			continue
		}
		k := noiseField{f.kind, f.general}
		old, ok := next[k]
		if !ok && len(next) >= n.max {
			continue // full: a known field can still widen
		}
		next[k] = max(old, f.shape)
	}
	n.fields.Store(&next)
	return next
}

// maxNoiseWhere bounds the place of a learned field: the set keeps at most
// max fields, and without it each could be as long as an answer (a JSON
// key of 64 KiB, taken from the request). A longer place is dropped from
// the comparison it was seen in, not remembered.
const maxNoiseWhere = 1 << 10

// learnable reports whether a noisy field may be remembered: not a member
// missing on one side (see shape), not a place past maxNoiseWhere, and not
// a whole body: where two text bodies vary is a span of one request's
// answers (textSpan), and remembered as a place it would hide any later
// difference of the body, an error page included. Nor Set-Cookie: its
// comparison leaves values and expiry out already, so two monolith
// answers differ there only by the cookies they set (one refreshed a
// session), and remembered, that would hide for good a service that
// never sets the session cookie, or strips its Secure and HttpOnly.
func learnable(f noiseDiff) bool {
	return f.shape != shapeAbsent && len(f.general) <= maxNoiseWhere && !(f.kind == KindBody && f.where == "") &&
		!(f.kind == KindHeader && f.where == "Set-Cookie")
}

// hasNew reports whether fields hold a wider shape at a known place, or a
// new place while the set holds fewer than max.
func hasNew(set map[noiseField]shape, fields []noiseDiff, max int) bool {
	for _, f := range fields {
		if !learnable(f) {
			continue
		}
		if old, ok := set[noiseField{f.kind, f.general}]; ok && old < f.shape || !ok && len(set) < max {
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
	learned map[noiseField]shape
	current []noiseDiff // where this request's two monolith answers differ
	// currentAt indexes current: the shapes (a bit each) seen at a
	// place. Scanned, current cost each difference as many comparisons
	// of places as the monolith's answers had differences.
	currentAt map[noiseField]uint8
	// movedAt: the lists whose elements the monolith's two answers did
	// not keep in place (reordered, or another number of them); and
	// movedShapes, the shapes (a bit each) of their differences within
	// those lists, by general place ("/items/*/price"): a difference
	// within such a list is this request's noise where the monolith's own
	// answers differed so at that place in some element (a price another
	// element has), not a field missing or retyped that every element of
	// both had.
	movedAt     map[string]bool
	movedShapes map[string]uint8
	span        textSpan // where their non-JSON bodies differ
}

// inMovedList reports whether a body place lies within an element of a
// list in movedAt ("/items/2/u" or "/items/2" within "/items"), and at
// the element itself (element).
func (f *noiseFilter) inMovedList(where string) (in, element bool) {
	i := strings.LastIndexByte(where, '/')
	for p, depth := where, 0; i >= 0; depth++ {
		p = p[:i]
		if f.movedAt[p] {
			return true, depth == 0
		}
		i = strings.LastIndexByte(p, '/')
	}
	return false, false
}

// drops reports whether a difference of shape sh is noise: a difference
// of a shape that covers it was found at the very same place between this
// request's monolith answers (array indexes taken literally; only where
// literal is set: not below an unordered_json array, whose elements are
// named by their place in the compared answers, not the monolith's), or
// learned at that place before, once array indexes are generalised. The
// second rule is what makes "/items/7/ts" noise after "/items/3/ts" was:
// the set would otherwise fill with one entry per index.
func (f *noiseFilter) drops(kind Kind, where, general string, sh shape, literal bool) bool {
	if kind == KindStatus || kind == KindBody && where == textBody {
		return false // a whole text body: only within its span (addBytes)
	}
	if literal && kind == KindBody && len(f.movedAt) > 0 {
		// An element itself missing goes by the rules below: a service
		// that answers [] is no noise. An element of another value, or
		// kind ({} where null was), goes by the place's shapes.
		if in, element := f.inMovedList(where); in && (!element || sh != shapeAbsent) {
			seen := f.movedShapes[general]
			for d := shapeValue; d <= shapeAbsent; d++ {
				if seen&(1<<d) != 0 && d.covers(sh) {
					return true
				}
			}
		}
	}
	if seen := f.currentAt[noiseField{kind, where}]; literal && seen != 0 {
		if kind == KindBody && where == "" {
			// The JSON root: only a scalar the monolith varies (a
			// timestamp), not two answers of different types ({"a":1}
			// and [], PHP's empty map), which would let null or "error"
			// pass.
			if seen&(1<<shapeValue) != 0 && sh == shapeValue {
				return true
			}
		} else {
			for d := shapeValue; d <= shapeAbsent; d++ {
				if seen&(1<<d) != 0 && d.covers(sh) {
					return true
				}
			}
		}
	}
	learned, ok := f.learned[noiseField{kind, general}]
	return ok && learned.covers(sh)
}
