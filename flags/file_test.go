package flags

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/open-feature/flagd/core/pkg/evaluator"
	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/model"
	"github.com/open-feature/flagd/core/pkg/store"
	isync "github.com/open-feature/flagd/core/pkg/sync"
)

func TestLoadAcceptsFlagdFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		has     []string
	}{
		{"plain", plain, []string{"orders"}},
		{"no flags yet", `{"flags":{}}`, nil},
		{"disabled", `{"flags":{"a":{"state":"DISABLED","variants":{"on":1},"defaultVariant":"on"}}}`, []string{"a"}},
		{"targeting", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1,"off":0},"defaultVariant":"off",
			"targeting":{"if":[{"==":[{"var":"method"},"GET"]},"on",null]}}}}`, []string{"a"}},
		{"evaluators", `{"$schema":"https://flagd.dev/schema/v0/flags.json",
			"$evaluators":{"qa":{"in":[{"var":"targetingKey"},["qa"]]}},
			"metadata":{"team":"orders"},
			"flags":{"a":{"state":"ENABLED","variants":{"on":1,"off":0},"defaultVariant":"off",
			"targeting":{"if":[{"$ref":"qa"},"on",null]},"metadata":{"owner":"x"}}}}`, []string{"a"}},
		{"string variant (CheckPercent's job)", `{"flags":{"a":{"state":"ENABLED","variants":{"on":"x"},"defaultVariant":"on"}}}`, []string{"a"}},
		{"dotted name", `{"flags":{"a.b*c":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`, []string{"a.b*c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Load(writeFlags(t, t.TempDir(), tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); strings.Join(got, ",") != strings.Join(tt.has, ",") {
				t.Errorf("Names() = %q, want %q", got, tt.has)
			}
			for _, n := range tt.has {
				if !f.Has(n) {
					t.Errorf("Has(%q) = false", n)
				}
			}
			if f.Has("nope") {
				t.Error(`Has("nope") = true`)
			}
		})
	}
}

func TestLoadNamesTheProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"empty", "", "file is empty"},
		{"blank", " \n\t", "file is empty"},
		{"open brace", "{", "unexpected end of file (truncated?)"},
		{"truncated", `{"flags":{"orders":{"state":"ENABLED","variants":{"on":1`, "truncated"},
		{"syntax error with position", "{\"flags\":\n  {\"a\": x}}", "line 2, column 9"},
		{"trailing data", `{"flags":{}} {}`, "invalid JSON at line 1, column 14"},
		{"byte order mark", "\xef\xbb\xbf" + plain, "byte order mark"},
		{"huge number", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1e999},"defaultVariant":"on"}}}`, "1e999 is out of range"},
		{"top level array", `[]`, "top level is an array"},
		{"no flags", `{}`, `no "flags" object`},
		{"flags is a number", `{"flags":5}`, `"flags" is a number`},
		{"flags is null", `{"flags":null}`, `"flags" is null`},
		{"flags array", `{"flags":[]}`, `"flags" is an array`},
		{"flag not an object", `{"flags":{"a":1}}`, `flag "a": definition is a number`},
		{"empty flag name", `{"flags":{"":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`, `flag "": a flag name must be non-empty`},
		{"NUL in flag name", `{"flags":{"a\u0000b":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`, `free of NUL bytes`},
		{"empty flagSetId", `{"metadata":{"flagSetId":""},"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`,
			`flag "a": metadata "flagSetId" must be non-empty`},
		{"state not a string", `{"flags":{"a":{"state":1,"variants":{"on":1},"defaultVariant":"on"}}}`, `flag "a": "state" is number, want a string`},
		{"no variants", `{"flags":{"a":{"state":"ENABLED","defaultVariant":"on"}}}`, `flag "a": no "variants"`},
		{"variants not an object", `{"flags":{"a":{"state":"ENABLED","variants":[1],"defaultVariant":"on"}}}`, `flag "a": "variants" is array, want an object`},
		{"defaultVariant not a variant", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1,"half":50},"defaultVariant":"off"}}}`,
			`flag "a": defaultVariant "off" is not one of its variants ["half" "on"]`},
		{"targeting not an object", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on","targeting":"on"}}}`,
			`flag "a": targeting is a string`},
		{"targeting null", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on","targeting":null}}}`,
			`flag "a": targeting is null`},
		{"metadata not an object", `{"metadata":"x","flags":{}}`, `"metadata" is string, want an object`},
		{"empty evaluator", `{"$evaluators":{"e":{}},"flags":{}}`, `"$evaluators" "e" is empty`},
		{"evaluators not an object", `{"$evaluators":[],"flags":{}}`, `"$evaluators" must be an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), tt.content)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted %q", tt.content)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Load error = %q, want it to name %s and contain %q", err, path, tt.want)
			}
		})
	}
}

// flagd accepts these evaluators but does not run them as written (see
// checkEvaluator), so a file that passed `strangler validate` would send
// every request of the route to the monolith, always or after some loads
// and not others. Load refuses them and names the evaluator.
func TestLoadRejectsEvaluatorsFlagdCannotRun(t *testing.T) {
	t.Parallel()
	const flag = `"flags":{"orders":{"state":"ENABLED","variants":{"all":100,"none":0},"defaultVariant":"none","targeting":{"$ref":"outer"}}}`
	tests := []struct {
		name       string
		evaluators string
		want       string
	}{
		{"empty with a space", `{"outer":{ }}`, `"$evaluators" "outer" is empty`},
		{"empty over lines", "{\"outer\":{\n\t}}", `"$evaluators" "outer" is empty`},
		{"empty, compact", `{"outer":{}}`, `"$evaluators" "outer" is empty`},
		{"refers to another", `{"outer":{"if":[{"$ref":"isGet"},"all",null]},"isGet":{"==":[{"var":"method"},"GET"]}}`,
			`"$evaluators" "outer" refers to another evaluator ({"$ref": "isGet"})`},
		{"refers to itself", `{"outer":{"if":[{"$ref":"outer"},"all",null]}}`,
			`"$evaluators" "outer" refers to another evaluator ({"$ref": "outer"})`},
		{"refers deep down", `{"outer":{"if":[{"and":[true,{"!":[{"$ref":"inner"}]}]},"all",null]},"inner":{"==":[1,1]}}`,
			`"$evaluators" "outer" refers to another evaluator ({"$ref": "inner"})`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), `{"$evaluators":`+tt.evaluators+`,`+flag+`}`)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted the file")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A targeting {"$ref"} that no evaluator replaces (a typo, or a name with
// <, > or &, which the substitution never matches, in flagd as here) fails
// every evaluation of its flag: CheckPercent refuses it (validate does),
// but the file loads, so the other flags of the same edit still apply (a
// review found a typo in one flag freezing them all).
func TestUnresolvedRefIsTheFlagsProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, evaluators, ref string }{
		{"a misspelt reference", `{"outre":{"if":[true,"all",null]}}`, "outer"},
		{"no evaluators at all", `{}`, "outer"},
		{"a name encoding/json escapes", `{"a&b":{"if":[true,"all",null]}}`, "a&b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			content := `{"$evaluators":` + tc.evaluators + `,"flags":{` +
				`"orders":{"state":"ENABLED","variants":{"all":100,"none":0},"defaultVariant":"none","targeting":{"$ref":"` + tc.ref + `"}},` +
				`"users":{"state":"ENABLED","variants":{"on":25},"defaultVariant":"on"}}}`
			f, err := Load(writeFlags(t, t.TempDir(), content))
			if err != nil {
				t.Fatalf("Load refused the whole file: %v", err)
			}
			err = f.CheckPercent("orders")
			if !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), `refers to {"$ref": "`+tc.ref+`"}, which "$evaluators" does not define`) {
				t.Errorf("CheckPercent(orders) = %v, want ErrRule naming the reference", err)
			}
			if err := f.CheckPercent("users"); err != nil {
				t.Errorf("CheckPercent(users) = %v", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "flags.json")
	_, err := Load(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming %s", err, path)
	}
}

func TestCheckPercent(t *testing.T) {
	t.Parallel()
	f, err := Load(writeFlags(t, t.TempDir(), `{"flags":{
		"ok":{"state":"ENABLED","variants":{"a":0,"b":2.5,"c":100},"defaultVariant":"a"},
		"high":{"state":"ENABLED","variants":{"on":10,"x":150},"defaultVariant":"on"},
		"low":{"state":"ENABLED","variants":{"on":-1},"defaultVariant":"on"},
		"word":{"state":"ENABLED","variants":{"on":10,"w":"ten"},"defaultVariant":"on"},
		"null":{"state":"ENABLED","variants":{"on":10},"defaultVariant":null,"targeting":{"if":[{"==":[{"var":"method"},"GET"]},"on",null]}},
		"none":{"state":"ENABLED","variants":{"on":10}},
		"lower":{"state":"disabled","variants":{"on":10},"defaultVariant":"on"},
		"nostate":{"variants":{"on":10},"defaultVariant":"on"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		flag    string
		wantErr error
		want    string
	}{
		{"ok", nil, ""},
		{"high", ErrRange, `flag "high" variant "x" is 150`},
		{"low", ErrRange, `flag "low" variant "on" is -1`},
		{"word", ErrType, `flag "word" variant "w" is a string`},
		{"missing", ErrNotFound, `"missing"`},
		// Valid for flagd (an application's flag in a shared file), no
		// percentage for a route.
		{"null", ErrNoDefault, `flag "null" has no "defaultVariant"`},
		{"none", ErrNoDefault, `flag "none" has no "defaultVariant"`},
		// flagd serves these as enabled, whatever was meant.
		{"lower", ErrState, `flag "lower": "state" is "disabled"`},
		{"nostate", ErrState, `flag "nostate": "state" is ""`},
	}
	for _, tt := range tests {
		err := f.CheckPercent(tt.flag)
		if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckPercent(%q) = %v, want %v containing %q", tt.flag, err, tt.wantErr, tt.want)
		}
	}
}

// flagdEvaluator is the evaluator the in-process provider runs, without the
// provider's goroutines, so the fuzzer can afford one SetState per input.
var flagdEvaluator = sync.OnceValue(func() *evaluator.JSON {
	s, err := store.NewStore(logger.NewLogger(nil, false), []string{"fuzz"})
	if err != nil {
		panic(err)
	}
	return evaluator.NewJSON(logger.NewLogger(nil, false), s)
})

// FuzzLoad checks that the loader never panics and is never looser than
// flagd: whatever it accepts, flagd's evaluator accepts too, and for a flag
// Load considers free of targeting flagd answers STATIC with the default
// variant (so caching that answer is right), or, without one, no variant.
func FuzzLoad(f *testing.F) {
	ev := flagdEvaluator()
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parse(data)
		if err != nil {
			return
		}
		if err := ev.SetState(isync.DataSync{FlagData: string(data), Source: "fuzz"}); err != nil {
			t.Fatalf("Load accepted a file flagd rejects: %v\n%s", err, data)
		}
		for name, fl := range file.flags {
			_, variant, reason, _, err := ev.ResolveFloatValue(context.Background(), "", name, nil)
			switch {
			case fl.state == "DISABLED":
				if reason != model.DisabledReason {
					t.Fatalf("flag %q: Load says disabled, flagd says %s (%v)", name, reason, err)
				}
			case !fl.targeted && fl.defaultVariant == "":
				// No default: flagd selects no variant (the caller's
				// default value), which Percent reports as ErrNoDefault.
				if err := file.CheckPercent(name); variant != "" || !errors.Is(err, ErrNoDefault) && !errors.Is(err, ErrState) && !errors.Is(err, ErrDuplicate) {
					t.Fatalf("flag %q: no defaultVariant, flagd says %s variant %q (%v)", name, reason, variant, err)
				}
			case !fl.targeted:
				_, isNumber := fl.variants[fl.defaultVariant].(float64)
				if variant != fl.defaultVariant || (isNumber && reason != model.StaticReason) {
					t.Fatalf("flag %q: Load says no targeting, flagd says %s variant %q (%v)", name, reason, variant, err)
				}
			}
		}
	})
}
