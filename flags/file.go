package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/open-feature/flagd/core/pkg/model"
)

// File is a parsed and validated flag file. It is a snapshot: it does not
// watch the file and starts nothing, so `strangler validate` and Ramp can use
// it without an OpenFeature provider.
type File struct {
	flags map[string]fileFlag
	// objects are the lines of the "flags" keys, when the document has
	// more than one (see Note); lost are the flags only the others define.
	objects []int
	read    int // the line of the one flagd reads
	lost    []string
}

// fileFlag is one flag definition as flagd will see it.
type fileFlag struct {
	state          string
	defaultVariant string
	variants       map[string]any
	// targeted reports a non-empty targeting rule: flagd then evaluates the
	// rule per request, so its value may depend on the evaluation context.
	targeted bool
	// badRef: the rule holds a {"$ref"} no evaluator replaced.
	badRef    string
	hasBadRef bool
	// badState: state is neither "ENABLED" nor "DISABLED".
	badState bool
	// lines are where the flag is defined, when the file defines it more
	// than once (the last one in the "flags" object read counts, as in
	// flagd).
	lines []int
	// line is where the definition in force starts (0: not known).
	line int
}

// Load reads and validates the flag file at path. The error names the file
// and the problem: a missing file, invalid JSON (with line and column), a
// missing "flags" object, a flag with no variants, or a defaultVariant
// that is not one of its variants. A flag without a defaultVariant
// (flagd's schema allows null) or with a state other than ENABLED and
// DISABLED is valid, and unusable as a percentage (CheckPercent).
//
// Load is stricter than flagd, never looser: whatever it accepts, flagd
// accepts (FuzzLoad checks this), so a file that passes Load can be handed to
// the in-process provider or to a flagd daemon.
func Load(path string) (*File, error) {
	raw, err := ReadFile(path, MaxFlagFile)
	if err != nil {
		return nil, fmt.Errorf("flag file: %w", err)
	}
	f, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("flag file %s: %w", path, err)
	}
	return f, nil
}

// Has reports whether the file defines the flag.
func (f *File) Has(name string) bool {
	_, ok := f.flags[name]
	return ok
}

// Names returns the names of all flags in the file, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.flags))
	for n := range f.flags {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CheckPercent reports whether the flag can serve as a traffic percentage:
// it exists and every variant (not only the default: targeting may pick any
// of them) is a number within 0..100, and its targeting rule can be run.
// The error names the flag and variant and wraps ErrNotFound, ErrState,
// ErrNoDefault, ErrRule, ErrType or ErrRange.
func (f *File) CheckPercent(name string) error {
	fl, ok := f.flags[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err := fl.stateError(name); err != nil {
		return err
	}
	if fl.defaultVariant == "" {
		// flagd would answer with the caller's default value, which for a
		// traffic split is a number nobody wrote down.
		return fmt.Errorf(`%w: flag %q has no "defaultVariant" (null or missing): name one of its variants`, ErrNoDefault, name)
	}
	if fl.hasBadRef {
		return fmt.Errorf(`%w: flag %q refers to {"$ref": %q}, which "$evaluators" does not define `+
			`(or whose name holds <, > or &, which flagd cannot resolve)`, ErrRule, name, fl.badRef)
	}
	variants := make([]string, 0, len(fl.variants))
	for v := range fl.variants {
		variants = append(variants, v)
	}
	slices.Sort(variants) // report the same variant every time
	for _, v := range variants {
		switch x := fl.variants[v].(type) {
		case float64:
			if !inRange(x) {
				return fmt.Errorf("%w: flag %q variant %q is %v", ErrRange, name, v, x)
			}
		default:
			return fmt.Errorf("%w: flag %q variant %q is %s", ErrType, name, v, jsonKind(x))
		}
	}
	// Last: what the definition in force does comes first.
	return fl.duplicateError(name)
}

// stateError is a flag's error for a state flagd would serve as enabled
// while it says something else, or nil.
func (fl fileFlag) stateError(name string) error {
	if !fl.badState {
		return nil
	}
	return fmt.Errorf(`%w: flag %q: "state" is %q, want "ENABLED" or "DISABLED"`, ErrState, name, fl.state)
}

// duplicateError is a flag's error for a file that defines it more than
// once: the last definition counts (flagd's rule, and encoding/json's),
// and an editor shows the first.
func (fl fileFlag) duplicateError(name string) error {
	if len(fl.lines) < 2 {
		return nil
	}
	lines := make([]string, len(fl.lines))
	for i, l := range fl.lines {
		lines[i] = strconv.Itoa(l)
	}
	return fmt.Errorf("%w: flag %q is defined %d times (lines %s): the one at line %d counts, which an editor hides; remove the others",
		ErrDuplicate, name, len(fl.lines), strings.Join(lines, ", "), fl.line)
}

// Line returns the line where the file defines the flag (its last
// definition), or 0.
func (f *File) Line(name string) int { return f.flags[name].line }

// Disabled reports whether the file has the flag and it is DISABLED: valid,
// but every evaluation fails, so its route serves only the monolith.
func (f *File) Disabled(name string) bool {
	fl, ok := f.flags[name]
	return ok && fl.state == "DISABLED"
}

func inRange(v float64) bool { return v >= 0 && v <= 100 } // false for NaN

// parse validates a flag file. It decodes the document the way flagd's
// evaluator does (configToFlagDefinition in flagd/core: $evaluators are
// substituted into a normalized copy, then "flags" is decoded into
// model.Flag), so that both agree on what every flag is, including
// encoding/json's case-insensitive field names and last-duplicate-wins.
// On top of that it rejects what flagd only warns about or silently
// tolerates.
func parse(raw []byte) (*File, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("file is empty")
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, jsonError(raw, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf(`top level is %s, want an object with a "flags" object`, jsonKind(doc))
	}

	var evaluators struct {
		Evaluators map[string]json.RawMessage `json:"$evaluators"`
	}
	if err := json.Unmarshal(raw, &evaluators); err != nil {
		return nil, fmt.Errorf(`"$evaluators" must be an object of JsonLogic rules: %v`, err)
	}
	normalized, err := json.Marshal(doc)
	if err != nil {
		return nil, err // cannot happen: doc came from json.Unmarshal
	}
	transposed := string(normalized)
	for name, rule := range evaluators.Evaluators {
		if err := checkEvaluator(rule); err != nil {
			return nil, fmt.Errorf(`"$evaluators" %q %w`, name, err)
		}
		transposed = strings.ReplaceAll(transposed, `{"$ref":"`+name+`"}`, string(rule))
	}

	var def struct {
		Flags    json.RawMessage `json:"flags"`
		Metadata map[string]any  `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(transposed), &def); err != nil {
		return nil, fmt.Errorf(`top level: %s`, fieldError(err))
	}
	switch {
	case len(def.Flags) == 0:
		return nil, errors.New(`no "flags" object`)
	case def.Flags[0] == '[':
		return nil, errors.New(`"flags" is an array; use an object keyed by flag name`)
	case def.Flags[0] != '{':
		return nil, fmt.Errorf(`"flags" is %s, want an object keyed by flag name`, rawKind(def.Flags))
	}
	var defs map[string]json.RawMessage
	if err := json.Unmarshal(def.Flags, &defs); err != nil {
		return nil, fmt.Errorf(`"flags": %v`, err) // cannot happen: it is an object
	}

	f := &File{flags: make(map[string]fileFlag, len(defs))}
	for name, d := range defs {
		fl, err := parseFlag(name, d, def.Metadata)
		if err != nil {
			return nil, fmt.Errorf("flag %q: %w", name, err)
		}

		f.flags[name] = fl
	}
	seen, objects, read := flagDefinitions(raw)
	for name, defs := range seen {
		fl, ok := f.flags[name]
		if !ok {
			f.lost = append(f.lost, name)
			continue
		}
		// The last definition in the object read: in another object
		// (a "Flags" after the "flags" read) it changes nothing.
		for _, d := range defs {
			if d.object == read {
				fl.line = d.line
			}
		}
		if len(defs) > 1 {
			fl.lines = make([]int, len(defs))
			for i, d := range defs {
				fl.lines[i] = d.line
			}
		}
		f.flags[name] = fl
	}
	if len(objects) > 1 {
		f.objects, f.read = objects, objects[read]
		slices.Sort(f.lost)
	} else {
		f.lost = nil
	}
	return f, nil
}

// Note is what a valid file holds that flagd reads otherwise than it
// reads, or "": a document with two "flags" objects (a key repeated, or
// "Flags", which encoding/json also takes for it: files merged by hand or
// by a template) is read as one of them, the other's flags silently
// missing, while an editor shows them all. flagd accepts such a file, so
// it is not an error (a file shared with applications must not stop the
// proxy); validate and serve say it, and Ramp refuses to edit it.
func (f *File) Note() string {
	if f == nil || len(f.objects) < 2 {
		return ""
	}
	lines := make([]string, len(f.objects))
	for i, l := range f.objects {
		lines[i] = strconv.Itoa(l)
	}
	lost := "every flag is in the one read"
	switch n := len(f.lost); {
	case n == 1:
		lost = fmt.Sprintf("flag %q, defined only in another, is not read", f.lost[0])
	case n > 1:
		lost = fmt.Sprintf("%d flags defined only in the others are not read (%s)", n, strings.Join(f.lost, ", "))
	}
	return fmt.Sprintf(`the file has %d "flags" objects (lines %s): flagd reads only the one at line %d, and %s; merge them into one`,
		len(f.objects), strings.Join(lines, ", "), f.read, lost)
}

// flagDef is where a flag is defined: its line, and the index of the
// "flags" object it is in.
type flagDef struct{ line, object int }

// flagDefinitions finds the lines where the document defines each flag,
// in every "flags" object (decoding keeps one object, and in it the last
// definition of a flag, silently), and the lines of those objects' keys.
// The document is valid JSON (parse decoded it).
func flagDefinitions(raw []byte) (seen map[string][]flagDef, objects []int, read int) {
	var readKey string
	// Lines counted from where the last count ended: the offsets only
	// grow, and a count from the start each time made a file of many
	// flags quadratic (60,000 flags took 5 s, on every load).
	at, lines := int64(0), 1
	line := func(off int64) int {
		if off < at {
			at, lines = 0, 1
		}
		lines += bytes.Count(raw[at:off], []byte{'\n'})
		at = off
		return lines
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, 0
	}
	seen = map[string][]flagDef{}
	for dec.More() {
		keyAt := dec.InputOffset()
		t, err := dec.Token()
		if err != nil {
			return nil, nil, 0
		}
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			return nil, nil, 0
		}
		key, _ := t.(string)
		if !strings.EqualFold(key, "flags") || len(value) == 0 || value[0] != '{' {
			continue
		}
		objects = append(objects, line(keyAt+int64(len(raw[keyAt:])-len(bytes.TrimLeft(raw[keyAt:], " \t\r\n,")))))
		// The one read (see parse): of the keys' spellings, the last in
		// byte order (the normalized copy sorts them, and the decoder
		// keeps the last that matches); of one spelling, the last.
		if len(objects) == 1 || key >= readKey {
			read, readKey = len(objects)-1, key
		}
		base := dec.InputOffset() - int64(len(value))
		flags := json.NewDecoder(bytes.NewReader(value))
		flags.Token() // "{"
		for flags.More() {
			off := flags.InputOffset()
			t, err := flags.Token()
			if err != nil {
				return nil, nil, 0
			}
			name, _ := t.(string)
			// The key's own offset, past the "," and spaces before it.
			at := off + int64(len(value[off:])-len(bytes.TrimLeft(value[off:], " \t\r\n,")))
			seen[name] = append(seen[name], flagDef{line: line(base + at), object: len(objects) - 1})
			var skip json.RawMessage
			if flags.Decode(&skip) != nil {
				return nil, nil, 0
			}
		}
	}
	return seen, objects, read
}

// checkEvaluator rejects an evaluator that flagd would accept but not run
// as its author meant. flagd pastes each evaluator's raw text over its
// references, one evaluator at a time, in Go's random map order:
//   - its own emptiness check is on that raw text, so "{ }" passes where
//     "{}" does not; pasted in as a whole rule it is not the "{}" that
//     flagd skips, so flagd runs it, gets no variant, and every
//     evaluation fails;
//   - a reference inside an evaluator is resolved only when its own
//     evaluator happens to be pasted after this one, so the same file
//     works after one load and fails every evaluation after another.
//
// The error completes `"$evaluators" "name" ...`.
func checkEvaluator(rule json.RawMessage) error {
	if len(rule) < 3 { // flagd's own check
		return errors.New("is empty")
	}
	var v any
	_ = json.Unmarshal(rule, &v) // valid: it came from the document
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return errors.New(`is empty (an object with nothing in it, which flagd would run as a rule)`)
	}
	if ref, ok := findRef(v); ok {
		return fmt.Errorf(`refers to another evaluator ({"$ref": %q}), which flagd resolves or not at random; `+
			`write that rule out in this evaluator instead`, ref)
	}
	return nil
}

// findRef reports the first "$ref" in a decoded JSON value, depth first.
func findRef(v any) (string, bool) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"]; ok {
			s, _ := ref.(string)
			return s, true
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // name the same reference every time
		for _, k := range keys {
			if ref, ok := findRef(x[k]); ok {
				return ref, true
			}
		}
	case []any:
		for _, e := range x {
			if ref, ok := findRef(e); ok {
				return ref, true
			}
		}
	}
	return "", false
}

func parseFlag(name string, d json.RawMessage, setMetadata map[string]any) (fileFlag, error) {
	// flagd's store (go-memdb) drops a flag whose name or flagSetId is
	// empty, and matches names by prefix up to a NUL byte.
	if name == "" || strings.ContainsRune(name, 0) {
		return fileFlag{}, errors.New("a flag name must be non-empty and free of NUL bytes")
	}
	if d[0] != '{' {
		return fileFlag{}, fmt.Errorf("definition is %s, want an object", rawKind(d))
	}
	var m model.Flag
	if err := json.Unmarshal(d, &m); err != nil {
		return fileFlag{}, errors.New(fieldError(err))
	}
	setID, ok := m.Metadata["flagSetId"]
	if !ok {
		setID = setMetadata["flagSetId"] // the flag's own metadata wins, as in flagd
	}
	if id, ok := setID.(string); ok && (id == "" || strings.ContainsRune(id, 0)) {
		return fileFlag{}, errors.New(`metadata "flagSetId" must be non-empty and free of NUL bytes`)
	}
	fl := fileFlag{state: m.State, defaultVariant: m.DefaultVariant, variants: m.Variants}
	// Any other state flagd only warns about, and serves the flag as
	// enabled: a "disabled" meant to stop a route would send it traffic.
	// The flag's problem (CheckPercent; a route's stays on the monolith),
	// not the file's: an application's flag sharing the file must not stop
	// the proxy.
	fl.badState = m.State != "ENABLED" && m.State != "DISABLED"
	if len(m.Variants) == 0 {
		return fileFlag{}, errors.New(`no "variants"`)
	}
	// No defaultVariant (null: "use the code-defined default", as flagd's
	// schema allows, for an application's own flag sharing the file) is
	// the flag's problem, which CheckPercent reports for a route's, not
	// the file's.
	if _, ok := m.Variants[m.DefaultVariant]; !ok && m.DefaultVariant != "" {
		names := make([]string, 0, len(m.Variants))
		for v := range m.Variants {
			names = append(names, v)
		}
		slices.Sort(names)
		return fileFlag{}, fmt.Errorf("defaultVariant %q is not one of its variants %q", m.DefaultVariant, names)
	}
	if len(m.Targeting) > 0 {
		var rule any
		_ = json.Unmarshal(m.Targeting, &rule) // valid: it came from the document
		obj, ok := rule.(map[string]any)
		if !ok {
			return fileFlag{}, fmt.Errorf("targeting is %s, want a JsonLogic object", jsonKind(rule))
		}
		// flagd skips the rule only when it is exactly {}.
		fl.targeted = len(obj) > 0
		// A reference left after the substitution of "$evaluators" fails
		// every evaluation (flagd's PARSE_ERROR): the flag's problem,
		// which CheckPercent reports, not the file's.
		fl.badRef, fl.hasBadRef = findRef(rule)
	}
	return fl, nil
}

// jsonError turns a decoding error into one that says where the problem is.
func jsonError(raw []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		if syn.Offset >= int64(len(raw)) {
			return errors.New("invalid JSON: unexpected end of file (truncated?)")
		}
		line, col := position(raw, syn.Offset)
		msg := fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, syn)
		if bytes.HasPrefix(raw, []byte("\xef\xbb\xbf")) {
			msg += " (the file starts with a UTF-8 byte order mark; save it without one)"
		}
		return errors.New(msg)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) { // a number that does not fit a float64
		line, col := position(raw, typ.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %s is out of range", line, col, typ.Value)
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

// position converts a byte offset (just past the problem, as encoding/json
// reports it) into a 1-based line and column.
func position(raw []byte, off int64) (line, col int) {
	if off > int64(len(raw)) {
		off = int64(len(raw))
	}
	before := raw[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n') - 1
	return line, max(col, 1)
}

// fieldError rewrites encoding/json's "cannot unmarshal X into Go struct
// field Flag.state of type string" in the file's own words.
func fieldError(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return fmt.Sprintf("%q is %s, want %s", typ.Field, typ.Value, goKind(typ.Type.Kind().String()))
	}
	return err.Error()
}

func goKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	default:
		return k
	}
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func rawKind(raw json.RawMessage) string {
	var v any
	_ = json.Unmarshal(raw, &v)
	return jsonKind(v)
}
