package flags

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// rampFile has formatting, a targeting rule and neighbours that Ramp must
// leave byte for byte.
const rampFile = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "orders-percent": {
      "state": "ENABLED",
      "variants": { "on": 10, "off": 0 },
      "defaultVariant": "on"
    },
    "search-percent": {
      "state": "ENABLED",
      "variants": {"some": 20, "none": 0},
      "defaultVariant": "some",
      "targeting": {"if": [{"==": [{"var": "method"}, "DELETE"]}, "none", null]}
    },
    "payments-percent": {"state": "ENABLED", "variants": {"on": 10}, "defaultVariant": "on"},
    "a.b": {"state": "DISABLED", "variants": {"x.y": 2.5, "on": 10}, "defaultVariant": "x.y"}
  }
}
`

func TestRampRewritesOnlyTheValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flag    string
		percent float64
		old     float64
		from    string // the text Ramp replaces in rampFile
		to      string
	}{
		{"orders-percent", 25, 10, `"on": 10, "off"`, `"on": 25, "off"`},
		{"orders-percent", 2.5, 10, `"on": 10, "off"`, `"on": 2.5, "off"`},
		{"orders-percent", 100, 10, `"on": 10, "off"`, `"on": 100, "off"`},
		{"orders-percent", math.Copysign(0, -1), 10, `"on": 10, "off"`, `"on": 0, "off"`},
		{"payments-percent", 0.125, 10, `"variants": {"on": 10}`, `"variants": {"on": 0.125}`},
		{"a.b", 0, 2.5, `"x.y": 2.5`, `"x.y": 0`}, // DISABLED: only a ramp to 0 goes on
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), rampFile)
			old, _, err := Ramp(path, tt.flag, tt.percent)
			if err != nil {
				t.Fatal(err)
			}
			if old != tt.old {
				t.Errorf("old = %v, want %v", old, tt.old)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Replace(rampFile, tt.from, tt.to, 1); string(got) != want {
				t.Errorf("file after Ramp:\n%s\nwant:\n%s", got, want)
			}
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if fl := f.flags[tt.flag]; fl.variants[fl.defaultVariant] != tt.percent {
				t.Errorf("Load reads %v, want %v", fl.variants[fl.defaultVariant], tt.percent)
			}
		})
	}
}

func TestRampKeepsModeAndLeavesNoTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, rampFile)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ramp(path, "orders-percent", 30); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode after Ramp = %v, want 0640", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory after Ramp holds %d entries, want only flags.json", len(entries))
	}
}

// Flag and variant names are JSON keys, not path syntax.
func TestRampEscapesNames(t *testing.T) {
	t.Parallel()
	names := []string{"a.b", "a*b", "a?b", "#", "@this", "a|b", ":0", "0", "é.ü", `a\b`, "a b", `a"b`}
	for _, name := range names {
		key := strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), `"`, `\"`)
		content := `{"flags":{"` + key + `":{"state":"ENABLED","variants":{"` + key + `":10},"defaultVariant":"` + key + `"},` +
			`"other":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"}}}`
		path := writeFlags(t, t.TempDir(), content)
		if old, _, err := Ramp(path, name, 42); err != nil || old != 10 {
			t.Errorf("Ramp(%q) = %v, %v; want 10, nil", name, old, err)
			continue
		}
		got, _ := os.ReadFile(path)
		if want := strings.Replace(content, ":10}", ":42}", 1); string(got) != want {
			t.Errorf("Ramp(%q) wrote\n%s\nwant\n%s", name, got, want)
		}
	}
}

func TestRampRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		flag    string
		percent float64
		wantErr error
		want    string
	}{
		{"above 100", rampFile, "orders-percent", 101, ErrRange, "101"},
		{"negative", rampFile, "orders-percent", -1, ErrRange, "-1"},
		{"NaN", rampFile, "orders-percent", math.NaN(), ErrRange, "NaN"},
		{"infinity", rampFile, "orders-percent", math.Inf(1), ErrRange, "Inf"},
		{"unknown flag, differently cased flags key", `{"Flags":{}}`, "nope", 5, ErrNotFound, `cannot find its "flags" object`},
		{"unknown flag, second flags object", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}},"flags":{}}`, "nope", 5, nil, `2 "flags" objects (lines 1, 1)`},
		{"disabled flag, ramped up", `{"flags":{"a":{"state":"DISABLED","variants":{"on":10},"defaultVariant":"on"}}}`, "a", 30, ErrDisabled, `set its "state" to "ENABLED"`},
		{"invalid file", `{"flags":5}`, "a", 5, nil, `"flags" is a number`},
		{"differently cased key", `{"Flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`, "a", 5, nil, "cannot find"},
		{"duplicate flag", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"},
			"a":{"state":"ENABLED","variants":{"on":2},"defaultVariant":"on"}}}`, "a", 5, ErrDuplicate, "defined 2 times (lines 1, 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), tt.content)
			_, _, err := Ramp(path, tt.flag, tt.percent)
			if err == nil {
				t.Fatal("Ramp did not refuse")
			}
			if (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ramp error = %q, want %v containing %q", err, tt.wantErr, tt.want)
			}
			if strings.Contains(err.Error(), "ramp:") {
				// The command adds "ramp: " once.
				t.Errorf("Ramp error %q names the command itself", err)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.content {
				t.Error("a refused Ramp changed the file")
			}
		})
	}
}

func TestRampSymlinks(t *testing.T) {
	t.Parallel()
	// A ConfigMap volume: flags.json -> ..data/flags.json, ..data ->
	// ..2026_12_07_00_00_00.1: refused, nothing written.
	cm := t.TempDir()
	stamp := filepath.Join(cm, "..2026_12_07_00_00_00.1")
	if err := os.Mkdir(stamp, 0o755); err != nil {
		t.Fatal(err)
	}
	target := writeFlags(t, stamp, rampFile)
	for _, l := range [][2]string{{"..2026_12_07_00_00_00.1", "..data"}, {"..data/flags.json", "flags.json"}} {
		if err := os.Symlink(l[0], filepath.Join(cm, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := Ramp(filepath.Join(cm, "flags.json"), "orders-percent", 20)
	if err == nil || !strings.Contains(err.Error(), "ConfigMap") {
		t.Errorf("Ramp(ConfigMap file) = %v, want a ConfigMap refusal", err)
	}
	if got, _ := os.ReadFile(target); string(got) != rampFile {
		t.Error("Ramp wrote through the ConfigMap's symlinks")
	}

	// Any other symlink, relative or absolute, through two links: the file
	// it ends at is ramped, and the links stay.
	dir := t.TempDir()
	target = writeFlags(t, dir, rampFile)
	if err := os.Symlink("flags.json", filepath.Join(dir, "one.json")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "two.json")
	if err := os.Symlink(filepath.Join(dir, "one.json"), link); err != nil {
		t.Fatal(err)
	}
	old, note, err := Ramp(link, "orders-percent", 20)
	if err != nil || old != 10 || !strings.Contains(note, "is a symlink: ramped the file it links to, "+target) {
		t.Fatalf("Ramp(symlink) = %v, %q, %v", old, note, err)
	}
	if got, _ := os.ReadFile(target); string(got) != strings.Replace(rampFile, `"on": 10, "off"`, `"on": 20, "off"`, 1) {
		t.Errorf("target after the ramp:\n%s", got)
	}
	for _, l := range []string{link, filepath.Join(dir, "one.json")} {
		if fi, err := os.Lstat(l); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("Ramp replaced the symlink %s", l)
		}
	}

	loop := filepath.Join(t.TempDir(), "loop.json")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ramp(loop, "a", 1); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("Ramp(a link to itself) = %v", err)
	}
	if _, _, err := Ramp(filepath.Join(dir, "missing.json"), "a", 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Ramp(missing) = %v", err)
	}
}

// A targeting rule is kept, and the ramp says what it still decides: the
// default variant gets only the requests the rule gives it or leaves to
// it, so "ramp orders 0" must not read as a rollback of the users the rule
// pins elsewhere.
func TestRampKeepsTargetingRuleAndSaysSo(t *testing.T) {
	t.Parallel()
	rules := map[string]string{
		"fractional":         `{"fractional":[{"cat":[{"var":"$flagd.flagKey"},{"var":"targetingKey"}]},["all",10],["none",90]]}`,
		"if with a fallback": `{"if":[{"==":[{"var":"method"},"DELETE"]},"none",null]}`,
		"from an evaluator":  `{"$ref":"split"}`,
	}
	for name, rule := range rules {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			content := `{"$evaluators":{"split":{"if":[{"in":[{"var":"targetingKey"},["qa"]]},"all",null]}},` +
				`"flags":{"orders":{"state":"ENABLED","variants":{"all":100,"none":0,"on":10},"defaultVariant":"on",` +
				`"targeting":` + rule + `}}}`
			path := writeFlags(t, t.TempDir(), content)
			old, note, err := Ramp(path, "orders", 0)
			if err != nil || old != 10 {
				t.Fatalf("Ramp = %v, %v; want 10 and no error", old, err)
			}
			for _, want := range []string{`flag "orders"`, "targeting rule", "(all=100, none=0)", `default variant "on"`, "get 0, not those"} {
				if !strings.Contains(note, want) {
					t.Errorf("note %q does not contain %q", note, want)
				}
			}
			want := strings.Replace(content, `"on":10`, `"on":0`, 1)
			if got, _ := os.ReadFile(path); string(got) != want {
				t.Errorf("file after ramp:\n%s\nwant\n%s", got, want)
			}
		})
	}
	// An untargeted flag gets no note.
	path := writeFlags(t, t.TempDir(), `{"flags":{"orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"}}}`)
	if _, note, err := Ramp(path, "orders", 5); err != nil || note != "" {
		t.Errorf("untargeted: note %q, err %v", note, err)
	}
}

// Ramps of different flags of one file, at the same time, all land: each
// reads the file the one before it wrote. Without the turn-taking, a ramp
// that read the file before another's rename writes the other flag's old
// value back (at 3 AM: undoes a colleague's rollback).
func TestConcurrentRampsAllLand(t *testing.T) {
	t.Parallel()
	const flags, rounds = 8, 15
	var b strings.Builder
	b.WriteString(`{"flags": {`)
	for i := range flags {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"f%d": {"state": "ENABLED", "variants": {"on": 0}, "defaultVariant": "on"}`, i)
	}
	b.WriteString("}}\n")
	path := writeFlags(t, t.TempDir(), b.String())
	var wg sync.WaitGroup
	for i := range flags {
		wg.Go(func() {
			for r := 1; r <= rounds; r++ {
				if _, _, err := Ramp(path, fmt.Sprintf("f%d", i), float64(r)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range flags {
		fl := f.flags[fmt.Sprintf("f%d", i)]
		if got := fl.variants[fl.defaultVariant]; got != float64(rounds) {
			t.Errorf("f%d reads %v after its last ramp to %d: another ramp wrote over it", i, got, rounds)
		}
	}
}

// A lock that cannot be had does not stop a ramp (a rollback at 3 AM on a
// file system without flock): it goes on and says so. Not parallel: it
// swaps lockDir.
func TestRampWithoutTheLockGoesOnAndSaysSo(t *testing.T) {
	saved := lockDir
	t.Cleanup(func() { lockDir = saved })
	lockDir = func(dir string) (func(), error) {
		return nil, fmt.Errorf("locking %s: %w", dir, errors.ErrUnsupported)
	}
	path := writeFlags(t, t.TempDir(), rampFile)
	old, note, err := Ramp(path, "orders-percent", 0)
	if err != nil || old != 10 {
		t.Fatalf("Ramp = %v, %v; want 10 and no error", old, err)
	}
	if !strings.Contains(note, "did not wait for others") || !strings.Contains(note, filepath.Dir(path)) {
		t.Errorf("note %q does not say the ramp went on without the lock", note)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if fl := f.flags["orders-percent"]; fl.variants[fl.defaultVariant] != 0.0 {
		t.Errorf("orders-percent reads %v, want 0", fl.variants[fl.defaultVariant])
	}
}

// A DISABLED flag's route serves the monolith whatever the value, so a
// ramp up is refused (it would change a number and nothing else, and read
// as done); a ramp to 0, a rollback, goes on and says so.
func TestRampDisabledFlag(t *testing.T) {
	t.Parallel()
	const content = `{"flags":{"a":{"state":"DISABLED","variants":{"on":10},"defaultVariant":"on"}}}`
	path := writeFlags(t, t.TempDir(), content)
	old, note, err := Ramp(path, "a", 0)
	if err != nil || old != 10 {
		t.Fatalf("ramp to 0: old %v, err %v", old, err)
	}
	if !strings.Contains(note, "DISABLED") || !strings.Contains(note, "monolith") {
		t.Errorf("ramp to 0 of a disabled flag: note %q, want one saying it is DISABLED", note)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Disabled("a") {
		t.Error("the ramp changed the flag's state")
	}
}

// A flag the file lacks is added: its route was sending every request to
// the monolith, and the operator ramping it should not have to write flagd
// JSON by hand. The definition goes in as the last member, indented like
// the others, and the rest of the file stays byte for byte.
func TestRampAddsMissingFlag(t *testing.T) {
	t.Parallel()
	const def = `"new-percent": {"state": "ENABLED", "variants": {"on": 25}, "defaultVariant": "on"}`
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"indented", rampFile, strings.Replace(rampFile, `"defaultVariant": "x.y"}
  }`, `"defaultVariant": "x.y"},
    `+def+`
  }`, 1)},
		{"one line", `{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`,
			`{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}, ` + def + `}}`},
		{"empty object", `{"flags": {}}`, `{"flags": {` + def + `}}`},
		{"empty object on lines", "{\n  \"flags\": {\n  }\n}\n", "{\n  \"flags\": {\n    " + def + "\n  }\n}\n"},
		{"tabs, before metadata", "{\n\t\"flags\": {\n\t\t\"a\": {\"state\": \"ENABLED\", \"variants\": {\"on\": 1}, \"defaultVariant\": \"on\"}\n\t},\n\t\"metadata\": {}\n}",
			"{\n\t\"flags\": {\n\t\t\"a\": {\"state\": \"ENABLED\", \"variants\": {\"on\": 1}, \"defaultVariant\": \"on\"},\n\t\t" + def + "\n\t},\n\t\"metadata\": {}\n}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), tt.content)
			old, note, err := Ramp(path, "new-percent", 25)
			if err != nil {
				t.Fatal(err)
			}
			if old != 0 || !strings.Contains(note, `flag "new-percent" was not in`) || !strings.Contains(note, "monolith") {
				t.Errorf("old %v, note %q: want 0 and a note saying the flag was added", old, note)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.want {
				t.Errorf("file:\n%s\nwant:\n%s", got, tt.want)
			}
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.CheckPercent("new-percent"); err != nil {
				t.Error(err)
			}
			// The next ramp edits the flag it added, as any other.
			if old, _, err := Ramp(path, "new-percent", 50); err != nil || old != 25 {
				t.Errorf("second ramp: old %v, err %v; want 25", old, err)
			}
		})
	}
}

// A default variant that is not a number made the flag unusable and sent
// its route to the monolith; a ramp replaces it (a rollback must have a
// command), and says when another variant still keeps the flag unusable.
func TestRampReplacesValueThatIsNotANumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, want, note string
		usable                    bool
	}{
		{"string", `{"flags":{"a":{"state":"ENABLED","variants":{"on":"10"},"defaultVariant":"on"}}}`,
			`{"flags":{"a":{"state":"ENABLED","variants":{"on":5},"defaultVariant":"on"}}}`, `"on" was a string`, true},
		{"null, other variant a bool", `{"flags":{"a":{"state":"ENABLED","variants":{"on":null,"off":false},"defaultVariant":"on"}}}`,
			`{"flags":{"a":{"state":"ENABLED","variants":{"on":5,"off":false},"defaultVariant":"on"}}}`, "still unusable", false},
		{"object", `{"flags":{"a":{"state":"ENABLED","variants":{"on":{"x":[1]}},"defaultVariant":"on"}}}`,
			`{"flags":{"a":{"state":"ENABLED","variants":{"on":5},"defaultVariant":"on"}}}`, "an object", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), tt.content)
			old, note, err := Ramp(path, "a", 5)
			if err != nil || old != 0 || !strings.Contains(note, tt.note) || !strings.Contains(note, "monolith") {
				t.Fatalf("Ramp: old %v, note %q, err %v; want 0 and a note containing %q", old, note, err, tt.note)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.want {
				t.Errorf("file %s, want %s", got, tt.want)
			}
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.CheckPercent("a"); (err == nil) != tt.usable {
				t.Errorf("CheckPercent after the ramp: %v, want usable %v", err, tt.usable)
			}
		})
	}
}
