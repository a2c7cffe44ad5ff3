package compare

import (
	"bytes"
	"math"
	"math/bits"
	"slices"
	"strconv"
)

// This file compares two parsed JSON documents. It is written by hand
// rather than with github.com/wI2L/jsondiff because jsondiff decodes into
// `any` (float64 numbers: 12345678901234567890 == 12345678901234567891),
// matches ignores by exact pointer only (no "/items/*/ts"), formats a
// pointer string per visited node when ignores are set, and reports only
// the new value of a replaced member. The walk below keeps raw bytes,
// compares numbers by decimal value, matches compiled patterns against a
// path stack, and builds a pointer only for a difference it reports.

// jsonWalk is the pooled state of a structural comparison. Its slices are
// arenas used as stacks: an object appends its members, recurses, then
// truncates back, so they are indexed, never held across a recursive call.
type jsonWalk struct {
	docs    [2]document
	members []member
	order   []int32 // member indexes sorted by key, for unaligned objects
	pair    []int32 // the member each member is paired with, or -1
	keys    []byte  // decoded keys that contained escapes
	path    []pathSeg
	str     [2][]byte // decoded strings being compared
}

func (w *jsonWalk) push(seg pathSeg) { w.path = append(w.path, seg) }

func (w *jsonWalk) pop() { w.path = w.path[:len(w.path)-1] }

// longerThan reports whether the path, as a JSON Pointer, is longer than
// n bytes, without formatting it: it stops counting past n, so asking
// costs at most about n whatever the path's length.
func (w *jsonWalk) longerThan(n int) bool {
	size := 0
	for _, seg := range w.path {
		size++ // "/"
		if seg.isIndex {
			for i := seg.index; ; i /= 10 {
				size++
				if i < 10 {
					break
				}
			}
		} else {
			key := w.keyBytes(seg.key)
			size += len(key)
			if size > n {
				return true
			}
			// "~" and "/" are written as two bytes.
			size += bytes.Count(key, []byte{'~'}) + bytes.Count(key, []byte{'/'})
		}
		if size > n {
			return true
		}
	}
	return false
}

// reset empties the walk for reuse, dropping any buffer larger than
// retainBytes (the element sizes are approximate: 16 bytes per node,
// 24 per member).
func (w *jsonWalk) reset(retainBytes int) {
	for i := range w.docs {
		w.docs[i].src = nil
		w.docs[i].nodes = keep(w.docs[i].nodes, 16, retainBytes)
		w.str[i] = keep(w.str[i], 1, retainBytes)
	}
	w.members = keep(w.members, 24, retainBytes)
	w.order = keep(w.order, 4, retainBytes)
	w.pair = keep(w.pair, 4, retainBytes)
	w.keys = keep(w.keys, 1, retainBytes)
	w.path = keep(w.path, 24, retainBytes)
}

// keep returns s emptied, or nil when its capacity exceeds retainBytes.
func keep[S ~[]E, E any](s S, elemBytes, retainBytes int) S {
	if cap(s)*elemBytes > retainBytes {
		return nil
	}
	return s[:0]
}

// keyRef locates a member name: in its document's source (without the
// quotes) when it has no escapes, else decoded in jsonWalk.keys.
type keyRef struct {
	start, end int32
	decoded    bool
	side       side
}

type member struct {
	key keyRef
	val int32 // node index of the value
}

// pathSeg is one step from the root to the value being compared.
type pathSeg struct {
	key     keyRef
	index   int32
	isIndex bool
}

func (w *jsonWalk) keyBytes(k keyRef) []byte {
	if k.decoded {
		return w.keys[k.start:k.end]
	}
	return w.docs[k.side].src[k.start:k.end]
}

func (w *jsonWalk) keyRefOf(s side, keyNode int32) keyRef {
	n := &w.docs[s].nodes[keyNode]
	if !n.escaped {
		return keyRef{start: n.start + 1, end: n.end - 1, side: s}
	}
	start := len(w.keys)
	w.keys = appendUnquoted(w.keys, w.docs[s].src[n.start:n.end])
	return keyRef{start: int32(start), end: int32(len(w.keys)), decoded: true, side: s}
}

func (w *jsonWalk) raw(s side, i int32) []byte {
	n := &w.docs[s].nodes[i]
	return w.docs[s].src[n.start:n.end]
}

// compareJSON compares the two parsed documents from their roots.
func (c *comparison) compareJSON() {
	w := &c.walk
	w.path = w.path[:0]
	// One budget for pairing the elements of unordered arrays by value,
	// for the whole comparison: many small arrays share it.
	c.probeLimit = c.probeCost + 16*(len(w.docs[primarySide].nodes)+len(w.docs[shadowSide].nodes)) + 4096
	c.diffValue(0, 0)
}

// diffValue compares primary node ai with shadow node bi at the current path.
func (c *comparison) diffValue(ai, bi int32) {
	w := &c.walk
	if c.probing {
		if c.probeDiffs > c.probeStop {
			return // counted as far as the probe needs
		}
		c.probeCost++
	}
	// Equal bytes are equal values, whatever they hold: the common case of
	// identically serialised subtrees costs one memcmp.
	if bytes.Equal(w.raw(primarySide, ai), w.raw(shadowSide, bi)) {
		return
	}
	a, b := &w.docs[primarySide].nodes[ai], &w.docs[shadowSide].nodes[bi]
	if a.kind != b.kind {
		c.addJSON(ai, bi)
		return
	}
	switch a.kind {
	case nodeNumber:
		if !numbersEqual(w.raw(primarySide, ai), w.raw(shadowSide, bi)) {
			c.addJSON(ai, bi)
		}
	case nodeString:
		if !w.stringsEqual(ai, bi) {
			c.addJSON(ai, bi)
		}
	case nodeArray:
		if c.matchHere(c.rules.unorderedByDepth) {
			c.diffMultiset(ai, bi)
		} else {
			c.diffArray(ai, bi)
		}
	case nodeObject:
		c.diffObject(ai, bi)
	}
	// null, true and false are equal to their own kind.
}

func (w *jsonWalk) stringsEqual(ai, bi int32) bool {
	a, b := &w.docs[primarySide].nodes[ai], &w.docs[shadowSide].nodes[bi]
	if !a.escaped && !b.escaped {
		return false // diffValue already found the raw bytes different
	}
	w.str[0] = appendUnquoted(w.str[0][:0], w.raw(primarySide, ai))
	w.str[1] = appendUnquoted(w.str[1][:0], w.raw(shadowSide, bi))
	return bytes.Equal(w.str[0], w.str[1])
}

// diffArray compares arrays position by position; elements beyond the
// shorter array are each present on one side only.
func (c *comparison) diffArray(ai, bi int32) {
	w := &c.walk
	aEnd, bEnd := w.docs[primarySide].nodes[ai].next, w.docs[shadowSide].nodes[bi].next
	if c.keysOnly && !c.probing && !c.full() && c.moved(ai, bi) {
		// The monolith's two answers hold the same elements in another
		// order (a query without ORDER BY), or another number of them
		// (a feed that grew at its front shifts every element): every
		// field of every element may differ here, and none of it says
		// which fields vary. Kept with its "/", once: an array of a
		// million small arrays names one.
		if u := c.generalPointer() + "/"; !slices.Contains(c.unordered, u) {
			c.unordered = append(c.unordered, u)
		}
		if len(c.movedLists) < maxMoved && !c.walk.longerThan(maxNoiseWhere) {
			c.movedLists = append(c.movedLists, c.pointer())
		}
	}
	ca, cb := ai+1, bi+1
	for i := int32(0); (ca < aEnd || cb < bEnd) && !c.probeDone(); i++ {
		if c.probing {
			c.probeCost++ // an element ignored costs too
		}
		w.push(pathSeg{index: i, isIndex: true})
		switch {
		case c.ignored():
		case ca < aEnd && cb < bEnd:
			c.diffValue(ca, cb)
		case ca < aEnd:
			c.addJSON(ca, -1)
		default:
			c.addJSON(-1, cb)
		}
		w.pop()
		if ca < aEnd {
			ca = w.docs[primarySide].nodes[ca].next
		}
		if cb < bEnd {
			cb = w.docs[shadowSide].nodes[cb].next
		}
	}
}

// moved reports whether the elements of two arrays may not keep their
// places: the arrays are of different lengths (neither empty), or hold the
// same elements in another order.
func (c *comparison) moved(ai, bi int32) bool {
	w := &c.walk
	na, nb := w.count(primarySide, ai), w.count(shadowSide, bi)
	if na != nb {
		return na > 0 && nb > 0
	}
	return c.reordered(ai, bi)
}

// count is the number of elements of array arr.
func (w *jsonWalk) count(s side, arr int32) int {
	nodes, n := w.docs[s].nodes, 0
	for e := arr + 1; e < nodes[arr].next; e = nodes[e].next {
		n++
	}
	return n
}

// reordered reports whether two arrays hold the same elements, byte for
// byte, in another order. Arrays past maxReordered elements are not
// checked (learning is off the request path, but not free).
func (c *comparison) reordered(ai, bi int32) bool {
	w := &c.walk
	elems := func(s side, arr int32) [][]byte {
		doc := &w.docs[s]
		var out [][]byte
		for e := arr + 1; e < doc.nodes[arr].next; e = doc.nodes[e].next {
			if len(out) == maxReordered {
				return nil
			}
			out = append(out, w.raw(s, e))
		}
		return out
	}
	a, b := elems(primarySide, ai), elems(shadowSide, bi)
	if len(a) < 2 || len(a) != len(b) {
		return false
	}
	slices.SortFunc(a, bytes.Compare)
	slices.SortFunc(b, bytes.Compare)
	return slices.EqualFunc(a, b, bytes.Equal)
}

const maxReordered = 10000

// maxMoved bounds the lists one request's noise holds as moved.
const maxMoved = 1000

// diffMultiset compares two arrays that unordered_json names as
// multisets. Each primary element is paired with an equal shadow element
// wherever it stands: byte for byte first, then by value (noise
// dropped). In a comparison that reports (not while
// learning noise, nor inside a probe), each element left over is then
// paired with the one it differs from least, so that one changed field
// of one element is reported as that field, not as an element missing
// and another added; what the work budget leaves is paired in order.
// Pointers name an element by its primary index; one only the shadow
// has, by its shadow index. Learning noise, elements left over are
// present on one side only, which teaches nothing: which element of the
// other answer a varying one is, is not known here.
func (c *comparison) diffMultiset(ai, bi int32) {
	w := &c.walk
	c.inUnordered++
	start := len(w.members)
	w.appendElems(primarySide, ai)
	mid := len(w.members)
	w.appendElems(shadowSide, bi)
	end := len(w.members)
	pairStart := len(w.pair)
	for range end - start {
		w.pair = append(w.pair, -1)
	}
	work := w.pairEqual(start, mid, end, pairStart, true)
	if c.probing {
		c.probeCost += end - start + work
	}
	reports := !c.keysOnly && !c.probing
	if !reports || !c.full() { // a full list decided the outcome: nothing to pair
		orderStart := len(w.order)
		for j := mid; j < end; j++ {
			if w.pair[pairStart+j-start] < 0 {
				w.order = append(w.order, int32(j))
			}
		}
		free := freeList{start: orderStart, n: len(w.order) - orderStart}
		c.pairFree(start, mid, pairStart, &free, false)
		if reports {
			c.pairFree(start, mid, pairStart, &free, true)
		}
		w.order = w.order[:orderStart]
	}

	j := mid // past the budget: the n-th unpaired with the n-th unpaired
	for i := start; i < mid && !c.probeDone(); i++ {
		b := w.pair[pairStart+i-start]
		if b < 0 && reports {
			for j < end && w.pair[pairStart+j-start] >= 0 {
				j++
			}
			if j < end {
				b = int32(j)
				w.pair[pairStart+i-start], w.pair[pairStart+j-start] = b, int32(i)
			}
		}
		w.push(pathSeg{index: int32(i - start), isIndex: true})
		switch {
		case c.ignored():
		case b < 0:
			c.addJSON(w.members[i].val, -1)
		default:
			c.diffValue(w.members[i].val, w.members[b].val)
		}
		w.pop()
	}
	for j := mid; j < end && !c.probeDone(); j++ {
		if w.pair[pairStart+j-start] >= 0 {
			continue
		}
		w.push(pathSeg{index: int32(j - mid), isIndex: true})
		if !c.ignored() {
			c.addJSON(-1, w.members[j].val)
		}
		w.pop()
	}
	w.pair = w.pair[:pairStart]
	w.members = w.members[:start]
	c.inUnordered--
}

// freeList is the shadow elements not paired yet, as member indexes at
// walk.order[start:][:n] in document order; a paired one is marked -1 (a
// hole), and first is the first that may not be one.
type freeList struct {
	start, n, first, holes int
}

// pairFree pairs each unpaired element of members[start:mid] with a free
// shadow element that compares without a difference (noise dropped), or
// with nearest, with the one it has the fewest differences with: of
// those that qualify equally, the first in document order, so that a
// list in the same order pairs in one probe an element. It stops when
// the comparison's budget is spent.
func (c *comparison) pairFree(start, mid, pairStart int, free *freeList, nearest bool) {
	w := &c.walk
	for i := start; i < mid && free.n-free.first-free.holes > 0 && c.probeCost < c.probeLimit; i++ {
		if w.pair[pairStart+i-start] >= 0 {
			continue
		}
		best, fewest := -1, math.MaxInt
		for k := free.first; k < free.n && c.probeCost < c.probeLimit; k++ {
			c.probeCost++ // each candidate costs, a hole too
			j := w.order[free.start+k]
			if j < 0 {
				continue
			}
			stop := 0
			if nearest {
				stop = fewest - 1 // counting past the best so far tells nothing
			}
			if d := c.probeCount(w.members[i].val, w.members[j].val, int32(i-start), stop); d <= stop {
				best, fewest = k, d
				if d == 0 {
					break
				}
			}
		}
		if best < 0 {
			continue
		}
		j := w.order[free.start+best]
		w.pair[pairStart+i-start], w.pair[pairStart+int(j)-start] = j, int32(i)
		w.order[free.start+best] = -1
		free.holes++
		for free.first < free.n && w.order[free.start+free.first] < 0 {
			free.first++
			free.holes--
		}
		if free.holes > 64 && 2*free.holes > free.n-free.first {
			// Mostly holes: close them up, keeping the order.
			live := free.start
			for k := free.first; k < free.n; k++ {
				if j := w.order[free.start+k]; j >= 0 {
					w.order[live] = j
					live++
				}
			}
			free.n, free.first, free.holes = live-free.start, 0, 0
		}
	}
}

// probeFilter is the noise a probe drops: the comparison's, or while
// learning, what was learned so far.
func (c *comparison) probeFilter() *noiseFilter {
	if c.noise != nil {
		return c.noise
	}
	return c.probeNoise
}

// appendElems appends the elements of array arr to members, as members
// without a name.
func (w *jsonWalk) appendElems(s side, arr int32) {
	nodes := w.docs[s].nodes
	for e := arr + 1; e < nodes[arr].next; e = nodes[e].next {
		w.members = append(w.members, member{key: keyRef{side: s}, val: e})
	}
}

// probeCount counts the differences between primary element ai, at
// index i of the array at the current path, and shadow element bi: what
// comparing them there would report, noise dropped. It stops counting
// past stop.
func (c *comparison) probeCount(ai, bi, i int32, stop int) int {
	w := &c.walk
	was, wasDiffs, wasStop := c.probing, c.probeDiffs, c.probeStop
	c.probing, c.probeDiffs, c.probeStop = true, 0, stop
	w.push(pathSeg{index: i, isIndex: true})
	if !c.ignored() {
		c.diffValue(ai, bi)
	}
	w.pop()
	n := c.probeDiffs
	c.probing, c.probeDiffs, c.probeStop = was, wasDiffs, wasStop
	return n
}

// probeDone reports whether the probe running has counted all it needs.
func (c *comparison) probeDone() bool { return c.probing && c.probeDiffs > c.probeStop }

// diffObject compares objects by member name, ignoring member order.
// Members with the same name (RFC 8259 leaves their meaning open, and
// parsers disagree on which one wins) are paired in order of appearance,
// so a difference in any of them counts.
func (c *comparison) diffObject(ai, bi int32) {
	w := &c.walk
	keysStart := len(w.keys)
	start := len(w.members)
	w.appendMembers(primarySide, ai)
	mid := len(w.members)
	w.appendMembers(shadowSide, bi)
	end := len(w.members)
	if c.probing {
		c.probeCost += end - start
	}

	aligned := mid-start == end-mid
	for i := 0; aligned && i < mid-start; i++ {
		aligned = bytes.Equal(w.keyBytes(w.members[start+i].key), w.keyBytes(w.members[mid+i].key))
	}
	if aligned {
		// The usual case: both sides serialise members in the same order.
		for i := 0; i < mid-start && !c.probeDone(); i++ {
			c.diffMember(w.members[start+i], w.members[mid+i].val)
		}
	} else {
		c.diffUnaligned(start, mid, end)
	}
	w.members = w.members[:start]
	w.keys = w.keys[:keysStart]
}

func (w *jsonWalk) appendMembers(s side, obj int32) {
	nodes := w.docs[s].nodes
	for k := obj + 1; k < nodes[obj].next; k = nodes[k+1].next {
		w.members = append(w.members, member{key: w.keyRefOf(s, k), val: k + 1})
	}
}

// diffMember compares member m below the current path. A primary member
// is compared with bval, its paired shadow value, or reported alone when
// bval is -1; a shadow member is only ever passed when it has no pair.
func (c *comparison) diffMember(m member, bval int32) {
	w := &c.walk
	w.push(pathSeg{key: m.key})
	switch {
	case c.ignored():
	case m.key.side == shadowSide:
		if !c.echoesMark(m) {
			c.addJSON(-1, m.val)
		}
	case bval < 0:
		c.addJSON(m.val, -1)
	default:
		c.diffValue(m.val, bval)
	}
	w.pop()
}

// echoesMark reports whether shadow member m is the copy's mark echoed
// back (RulesConfig.Mark): named as the mark's header in any case, its
// value the mark's value, alone or as a list's one element (Go's
// http.Header serialises as lists).
func (c *comparison) echoesMark(m member) bool {
	r, w := c.rules, &c.walk
	if r.markName == nil || !bytes.EqualFold(w.keyBytes(m.key), r.markName) {
		return false
	}
	nodes := w.docs[shadowSide].nodes
	v := m.val
	if nodes[v].kind == nodeArray {
		if nodes[v].next != v+2 { // not exactly one element, itself without children
			return false
		}
		v++
	}
	if nodes[v].kind != nodeString {
		return false
	}
	w.str[1] = appendUnquoted(w.str[1][:0], w.raw(shadowSide, v))
	return string(w.str[1]) == r.markValue
}

// diffUnaligned compares differently ordered objects. Each primary
// member is paired with the first unpaired shadow member of the same name,
// so duplicates pair in order of appearance; then differences are reported
// in primary document order followed by the shadow-only members, so that
// output order is deterministic.
func (c *comparison) diffUnaligned(start, mid, end int) {
	w := &c.walk
	pairStart := len(w.pair)
	for range end - start {
		w.pair = append(w.pair, -1)
	}
	if work := w.pairEqual(start, mid, end, pairStart, false); c.probing {
		c.probeCost += work
	}

	for i := start; i < mid && !c.probeDone(); i++ {
		bval := int32(-1)
		if p := w.pair[pairStart+i-start]; p >= 0 {
			bval = w.members[p].val
		}
		c.diffMember(w.members[i], bval)
	}
	for i := mid; i < end && !c.probeDone(); i++ {
		if w.pair[pairStart+i-start] < 0 {
			c.diffMember(w.members[i], -1)
		}
	}
	w.pair = w.pair[:pairStart]
}

// pairEqual pairs each of members[start:mid] with the first unpaired of
// members[mid:end] whose key is the same, or with byValue whose value's
// bytes are. It returns about how many comparisons that took.
func (w *jsonWalk) pairEqual(start, mid, end, pairStart int, byValue bool) int {
	if n := (mid - start) * (end - mid); n <= maxScanPairs {
		w.pairByScan(start, mid, end, pairStart, byValue)
		return n
	}
	w.pairBySort(start, mid, end, pairStart, byValue)
	return (end - start) * bits.Len(uint(end-start))
}

// pairKey is what pairEqual pairs m by.
func (w *jsonWalk) pairKey(m member, byValue bool) []byte {
	if byValue {
		return w.raw(m.key.side, m.val)
	}
	return w.keyBytes(m.key)
}

// maxScanPairs is the size (primary × shadow members) below which pairing
// by scanning beats sorting: typical API objects of a dozen members cost
// fewer key comparisons, most of them rejected on length.
const maxScanPairs = 16 * 16

// pairByScan pairs members in O(n·m) comparisons. Scans start at the
// first unpaired shadow member, so an object that is mostly in order
// pairs in nearly one pass.
func (w *jsonWalk) pairByScan(start, mid, end, pairStart int, byValue bool) {
	first := mid
	for i := start; i < mid; i++ {
		key := w.pairKey(w.members[i], byValue)
		for j := first; j < end; j++ {
			if w.pair[pairStart+j-start] < 0 && bytes.Equal(key, w.pairKey(w.members[j], byValue)) {
				w.pair[pairStart+i-start] = int32(j)
				w.pair[pairStart+j-start] = int32(i)
				break
			}
		}
		for first < end && w.pair[pairStart+first-start] >= 0 {
			first++
		}
	}
}

// pairBySort pairs members in O(n log n) comparisons by sorting each
// side's members by name (stably, so duplicates keep their order) and
// merging.
func (w *jsonWalk) pairBySort(start, mid, end, pairStart int, byValue bool) {
	orderStart := len(w.order)
	for i := start; i < end; i++ {
		w.order = append(w.order, int32(i))
	}
	byKey := func(x, y int32) int {
		return bytes.Compare(w.pairKey(w.members[x], byValue), w.pairKey(w.members[y], byValue))
	}
	sortedA := w.order[orderStart : orderStart+mid-start]
	sortedB := w.order[orderStart+mid-start:]
	slices.SortStableFunc(sortedA, byKey)
	slices.SortStableFunc(sortedB, byKey)
	for i, j := 0, 0; i < len(sortedA) && j < len(sortedB); {
		switch n := byKey(sortedA[i], sortedB[j]); {
		case n < 0:
			i++
		case n > 0:
			j++
		default:
			w.pair[pairStart+int(sortedA[i])-start] = sortedB[j]
			w.pair[pairStart+int(sortedB[j])-start] = sortedA[i]
			i++
			j++
		}
	}
	w.order = w.order[:orderStart]
}

// ignored reports whether an ignore_json pattern matches the current path.
func (c *comparison) ignored() bool { return c.matchHere(c.rules.patternsByDepth) }

// matchHere reports whether one of the patterns matches the current path.
// Only patterns as deep as the path are tried, last segment first, where
// paths differ most; matching compares bytes and ints, so it does not
// allocate.
func (c *comparison) matchHere(byDepth [][]pattern) bool {
	w := &c.walk
	if len(w.path) >= len(byDepth) {
		return false
	}
next:
	for _, p := range byDepth[len(w.path)] {
		for i := len(p.segs) - 1; i >= 0; i-- {
			ps, seg := &p.segs[i], &w.path[i]
			switch {
			case ps.wildcard:
			case seg.isIndex:
				if ps.index != int(seg.index) {
					continue next
				}
			case string(w.keyBytes(seg.key)) != ps.lit:
				continue next
			}
		}
		return true
	}
	return false
}

// pointer formats the current path as an RFC 6901 JSON Pointer.
func (c *comparison) pointer() string { return c.formatPath(false) }

// generalPointer is pointer with every array index as "*": the place noise
// learned at /items/3/ts names /items/7/ts too, and the set keeps one
// entry for a field of every element. Only indexes: an object's numeric
// key (/rates/2024) names that member, not its neighbours.
func (c *comparison) generalPointer() string { return c.formatPath(true) }

func (c *comparison) formatPath(general bool) string {
	w := &c.walk
	b := c.tmp[:0]
	for _, seg := range w.path {
		b = append(b, '/')
		if seg.isIndex {
			if general {
				b = append(b, '*')
			} else {
				b = strconv.AppendInt(b, int64(seg.index), 10)
			}
			continue
		}
		key := w.keyBytes(seg.key)
		for i := 0; i < len(key); i++ {
			ch := key[i]
			if ch == 0xff && seg.key.decoded {
				// appendUnquoted's mark before a raw byte: show the byte.
				i++
				ch = key[i]
			}
			switch ch {
			case '~':
				b = append(b, '~', '0')
			case '/':
				b = append(b, '~', '1')
			default:
				b = append(b, ch)
			}
		}
	}
	c.tmp = b
	return string(b)
}

// addJSON reports a difference at the current path between primary node
// ai and shadow node bi, either of which is -1 when absent on its side.
func (c *comparison) addJSON(ai, bi int32) {
	// A place longer than maxNoiseWhere is never noise (nor learned):
	// naming each of many differences there, and matching it against the
	// noise, cost a pointer as long as the place every time, which a
	// body can make as long as itself.
	long := c.noise != nil || c.keysOnly || c.probing
	long = long && c.walk.longerThan(maxNoiseWhere)
	if c.probing {
		f := c.probeFilter()
		if f == nil || len(f.current) == 0 && len(f.learned) == 0 || long {
			c.probeDiffs++
			return
		}
		ptr, general := c.pointer(), c.generalPointer()
		c.probeCost += (len(ptr) + len(general)) / 16 // formatting them is work too (long member names)
		if !f.drops(KindBody, ptr, general, c.walk.shapeOf(ai, bi), c.inUnordered == 0) {
			c.probeDiffs++
		}
		return
	}
	if c.full() || long && c.keysOnly {
		c.omitted++ // spare building a pointer nobody will read
		return
	}
	ptr, general := c.pointer(), ""
	if !long && (c.keysOnly || c.noise != nil && (len(c.noise.learned) > 0 || len(c.noise.movedAt) > 0)) {
		general = c.generalPointer()
	}
	if !c.admitAt(KindBody, ptr, general, c.walk.shapeOf(ai, bi), !long) {
		return
	}
	d := Difference{Kind: KindBody, Pointer: ptr}
	if !c.keysOnly {
		var truncA, truncB bool
		if ai >= 0 {
			d.Primary, truncA = jsonValue(c.walk.raw(primarySide, ai))
		}
		if bi >= 0 {
			d.Shadow, truncB = jsonValue(c.walk.raw(shadowSide, bi))
		}
		switch {
		case truncA && truncB:
			d.Note = "values longer than " + strconv.Itoa(maxValueBytes) + " bytes are shown as excerpts"
		case truncA:
			d.Note = "primary value longer than " + strconv.Itoa(maxValueBytes) + " bytes is shown as an excerpt"
		case truncB:
			d.Note = "shadow value longer than " + strconv.Itoa(maxValueBytes) + " bytes is shown as an excerpt"
		}
	}
	c.diffs = append(c.diffs, d)
}

// shapeOf classifies the difference between primary node ai and shadow
// node bi (-1 when absent) for noise cancellation.
func (w *jsonWalk) shapeOf(ai, bi int32) shape {
	if ai < 0 || bi < 0 {
		return shapeAbsent
	}
	ka, kb := w.docs[primarySide].nodes[ai].kind, w.docs[shadowSide].nodes[bi].kind
	if ka == kb || (ka == nodeTrue || ka == nodeFalse) && (kb == nodeTrue || kb == nodeFalse) {
		return shapeValue
	}
	return shapeType
}
