package compare

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// Response is a captured HTTP response: what the proxy read from the
// primary or the shadow. Compare only reads it, and keeps no reference to
// it once it returns, so the caller may reuse Body afterwards.
type Response struct {
	Status int
	Header http.Header
	// Body is the body as received, still Content-Encoded.
	Body []byte
}

// Kind is what a Difference is about. Its String is the label used in
// metrics and in JSON.
type Kind uint8

// The kinds of Difference.
const (
	KindStatus Kind = iota + 1
	KindHeader
	KindBody
)

var kindNames = [...]string{KindStatus: "status", KindHeader: "header", KindBody: "body"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText makes a Kind marshal as its label.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a label back, so that clients of the admin API can
// decode differences into this type.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, name := range kindNames {
		if name != "" && name == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("compare: unknown difference kind %q", b)
}

// Outcome is the verdict of one comparison. Its String is the label used
// in metrics and in JSON. The zero Outcome is not a verdict, so a Result
// nobody filled in is never mistaken for a match.
type Outcome uint8

// The outcomes of a comparison.
const (
	// Match: no differences beyond the configured and learned noise.
	Match Outcome = iota + 1
	// Mismatch: at least one difference.
	Mismatch
	// Error: there was nothing to compare because the shadow call failed.
	// Compare never returns it; the proxy records it.
	Error
)

var outcomeNames = [...]string{Match: "match", Mismatch: "mismatch", Error: "error"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// MarshalText makes an Outcome marshal as its label.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads a label back.
func (o *Outcome) UnmarshalText(b []byte) error {
	for i, name := range outcomeNames {
		if name != "" && name == string(b) {
			*o = Outcome(i)
			return nil
		}
	}
	return fmt.Errorf("compare: unknown outcome %q", b)
}

// Result is the outcome of comparing a primary and a shadow response.
type Result struct {
	Outcome Outcome `json:"outcome"`
	// Differences lists at most RulesConfig.MaxDifferences differences:
	// status first, then headers by name, then the body in document order.
	Differences []Difference `json:"differences,omitempty"`
	// Omitted counts the differences found beyond that limit.
	Omitted int `json:"omitted,omitempty"`
	// Noisy counts the differences dropped by noise cancellation until
	// the list is full; past that, every difference counts as omitted.
	Noisy int `json:"noisy,omitempty"`
	// TooLarge, with no difference found, says the bodies were not
	// compared: both decode to more than max_decoded. It is not a match;
	// the caller counts the pair as not compared.
	TooLarge bool `json:"too_large,omitempty"`
}

// Difference is one place where the primary and shadow responses differ.
// Primary and Shadow hold the value on each side as JSON: a number for a
// status, a string for a header (values joined with ", "), the JSON value
// at Pointer for a JSON body, an excerpt string for other bodies. A side
// where the header or member is absent is nil, so it is left out of the
// JSON, which keeps "absent" apart from a JSON null.
type Difference struct {
	Kind Kind `json:"kind"`
	// Pointer is the RFC 6901 JSON Pointer of a body difference; "" (and
	// left out of the JSON) for the whole body.
	Pointer string `json:"pointer,omitempty"`
	// Header is the canonical name of a header difference.
	Header  string          `json:"header,omitempty"`
	Primary json.RawMessage `json:"primary,omitempty"`
	Shadow  json.RawMessage `json:"shadow,omitempty"`
	// Note says what the values alone cannot: where two non-JSON bodies
	// start to differ, why a body could not be decoded, that a value was
	// truncated.
	Note string `json:"note,omitempty"`
}

// Compare compares a shadow response with the primary one under r, which
// must come from NewRules. It is safe for concurrent use and never panics
// on malformed input: bodies that cannot be decoded or parsed become
// differences.
func Compare(primary, shadow *Response, r *Rules) Result {
	c := getComparison(r)
	defer putComparison(c)
	c.run(primary, shadow)
	return c.result()
}

// comparison is the working state of one Compare call. It is pooled
// because its buffers (decoded bodies, parse tapes, path stack) are what
// would otherwise be allocated per comparison.
type comparison struct {
	rules *Rules
	limit int

	// noise, when set, drops differences it knows as noise before they
	// count towards the limit.
	noise *noiseFilter
	// keysOnly records differences without their values: learning noise
	// needs only where two answers differ.
	keysOnly bool

	diffs  []Difference
	shapes []shape // with keysOnly: each difference's shape, for learning
	// generals: with keysOnly, each difference's place as learned: a body
	// pointer with its array indexes as "*" (generalPointer).
	generals []string
	// unordered: with keysOnly, the arrays (as generalPointer names them,
	// with a "/" after) that hold the same elements in another order on
	// the two sides.
	unordered []string
	// moved: with keysOnly, those arrays as pointer names them (literal
	// indexes), at most maxMoved: what lies below them is noise for this
	// request whatever it is (which element of the other answer one is,
	// is not known).
	movedLists []string
	omitted    int
	noisy      int
	// probing: an unordered array's elements are being tried against each
	// other (probeCount): a difference is counted in probeDiffs and
	// nothing else, and the probe stops once it has counted more than
	// probeStop. probeCost counts the work done, to bound it.
	probing               bool
	probeDiffs, probeStop int
	probeCost, probeLimit int
	// probeNoise is the noise a probe drops when there is no c.noise:
	// while learning, the fields learned so far.
	probeNoise *noiseFilter
	// inUnordered counts the unordered_json arrays on the current path:
	// below one, elements are not named by their place in the monolith's
	// answers, so this request's noise (literal places) does not apply.
	inUnordered int
	// bodiesTooLarge: both bodies decode past max_decoded, so they were
	// not compared.
	bodiesTooLarge bool
	// textSpan: with keysOnly, where two non-JSON bodies differ (addBytes).
	textSpan textSpan

	headerNames []headerName
	headerDiffs []string
	body        bodyScratch
	walk        jsonWalk
	tmp         []byte // pointers and values under construction
}

var comparisonPool = sync.Pool{New: func() any { return new(comparison) }}

func getComparison(r *Rules) *comparison {
	c := comparisonPool.Get().(*comparison)
	c.rules = r
	c.limit = r.maxDifferences
	return c
}

// putComparison drops buffers grown past retainBytes so that one huge
// response does not pin its memory in the pool for the life of the process.
func putComparison(c *comparison) {
	const retainBytes = 1 << 20
	c.rules, c.noise, c.keysOnly = nil, nil, false
	c.probing, c.probeDiffs, c.probeStop, c.probeCost, c.probeLimit = false, 0, 0, 0, 0
	c.probeNoise, c.inUnordered = nil, 0
	c.diffs, c.omitted, c.noisy, c.bodiesTooLarge, c.textSpan = nil, 0, 0, false, textSpan{}
	c.shapes = keep(c.shapes, 1, retainBytes)
	clear(c.generals)
	c.generals = keep(c.generals, 1, retainBytes)
	clear(c.unordered)
	c.unordered = keep(c.unordered, 16, retainBytes)
	clear(c.movedLists)
	c.movedLists = keep(c.movedLists, 16, retainBytes)
	c.headerNames = keep(c.headerNames, 40, retainBytes)
	c.headerDiffs = keep(c.headerDiffs, 16, retainBytes)
	c.body.reset(retainBytes)
	c.walk.reset(retainBytes)
	c.tmp = keep(c.tmp, 1, retainBytes)
	comparisonPool.Put(c)
}

func (c *comparison) run(primary, shadow *Response) {
	if primary.Status != shadow.Status {
		c.addStatus(primary.Status, shadow.Status)
	}
	c.compareHeaders(primary.Header, shadow.Header)
	c.compareBodies(primary, shadow)
}

// result hands the differences to the caller; c.diffs is not reused, so
// the caller owns them.
func (c *comparison) result() Result {
	res := Result{Outcome: Match, Differences: c.diffs, Omitted: c.omitted, Noisy: c.noisy}
	if len(c.diffs) > 0 || c.omitted > 0 {
		res.Outcome = Mismatch
	} else if c.bodiesTooLarge {
		res.TooLarge = true
	}
	return res
}

// admit decides the fate of a difference of shape sh found at (kind,
// where): false when it is noise or over the limit (and counted as such).
// where is the header name or pointer, general the place as learned noise
// names it (see generalPointer; where itself but for a body pointer); the
// caller builds the values, and appends the difference, only when
// admitted.
func (c *comparison) admit(kind Kind, where, general string, sh shape) bool {
	return c.admitAt(kind, where, general, sh, true)
}

// admitAt is admit where noise applies only if noisy may be.
func (c *comparison) admitAt(kind Kind, where, general string, sh shape, noisy bool) bool {
	if noisy && c.noise != nil && c.noise.drops(kind, where, general, sh, c.inUnordered == 0) {
		c.noisy++
		return false
	}
	if len(c.diffs) >= c.limit {
		c.omitted++
		return false
	}
	if c.keysOnly {
		c.shapes = append(c.shapes, sh)
		c.generals = append(c.generals, general)
	}
	return true
}

// full reports whether no further difference can be listed, so callers can
// count one without building its pointer. Noise included: once the list is
// full the outcome is a mismatch whatever follows, and naming every
// further difference to tell noise from an omission cost a pointer per
// difference, as deep as the document (a body nested 6,000 levels took
// seconds). Past the limit, Omitted may so count some noise.
func (c *comparison) full() bool {
	return len(c.diffs) > 0 && len(c.diffs) >= c.limit
}

func (c *comparison) addStatus(primary, shadow int) {
	if !c.admit(KindStatus, "", "", shapeValue) {
		return
	}
	d := Difference{Kind: KindStatus}
	if !c.keysOnly {
		d.Primary = strconv.AppendInt(nil, int64(primary), 10)
		d.Shadow = strconv.AppendInt(nil, int64(shadow), 10)
	}
	c.diffs = append(c.diffs, d)
}
