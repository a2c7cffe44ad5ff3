//go:build unix

package flags

// Behaviour a hand mutation test of this package found no test pinning:
// each test here fails when the code it guards is changed.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-feature/flagd/core/pkg/evaluator"
	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/store"
	isync "github.com/open-feature/flagd/core/pkg/sync"
)

// An evaluator is written once to be shared: flagd pastes it over every
// reference. Were only the first replaced, validate would refuse the other
// flags of a file flagd serves, and a ramp of one would say its rule
// cannot be run.
func TestOneEvaluatorServesEveryFlagThatRefersToIt(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"$evaluators":{"qa":{"in":[{"var":"targetingKey"},["qa"]]}},"flags":{
	  "orders":{"state":"ENABLED","variants":{"all":100,"some":10},"defaultVariant":"some","targeting":{"if":[{"$ref":"qa"},"all",null]}},
	  "users":{"state":"ENABLED","variants":{"all":100,"some":20},"defaultVariant":"some","targeting":{"if":[{"$ref":"qa"},"all",null]}}}}`)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := open(t, path)
	for _, name := range []string{"orders", "users"} {
		if err := f.CheckPercent(name); err != nil {
			t.Errorf("CheckPercent(%s) = %v; want nil, as flagd serves it", name, err)
		}
		if v, err := s.Flag(name).Percent(context.Background(), "qa", Attrs{}); err != nil || v != 100 {
			t.Errorf("%s for qa = %v, %v; want 100, placed by the shared rule", name, v, err)
		}
	}
}

// Line points validate's message at the definition flagd reads, the last
// one: pointing at the first sends the operator to edit a definition that
// changes nothing.
func TestLineIsTheDefinitionInForce(t *testing.T) {
	t.Parallel()
	f, err := Load(writeFlags(t, t.TempDir(), `{"flags": {
  "orders": {"state": "ENABLED", "variants": {"on": 10}, "defaultVariant": "on"},
  "app": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"},
  "orders": {"state": "ENABLED", "variants": {"on": 200}, "defaultVariant": "on"}
}}`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"orders": 4, "app": 3, "missing": 0} {
		if got := f.Line(name); got != want {
			t.Errorf("Line(%q) = %d, want %d", name, got, want)
		}
	}
}

// validate names the same variant, evaluator reference and missing flags
// on every run: a message that changes from one run to the next reads as
// a new problem, and breaks a diff of validate's output in CI.
func TestDiagnosticsAreTheSameOnEveryRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, want string
		message             func(*File, error) string
	}{
		{"the first bad variant, by name",
			`{"flags":{"p":{"state":"ENABLED","variants":{"d":200,"a":150,"c":-1,"b":"x"},"defaultVariant":"a"}}}`,
			`variant "a" is 150`,
			func(f *File, _ error) string { return f.CheckPercent("p").Error() }},
		{"the first reference, by key",
			`{"$evaluators":{"outer":{"or":[{"$ref":"y"}],"and":[{"$ref":"x"}]}},"flags":{}}`,
			`({"$ref": "x"})`,
			func(_ *File, err error) string { return err.Error() }},
		{"flags lost to a second flags object, sorted",
			"{\"flags\": {\"d\": {\"state\":\"ENABLED\",\"variants\":{\"on\":1},\"defaultVariant\":\"on\"}," +
				"\"b\": {\"state\":\"ENABLED\",\"variants\":{\"on\":1},\"defaultVariant\":\"on\"}," +
				"\"c\": {\"state\":\"ENABLED\",\"variants\":{\"on\":1},\"defaultVariant\":\"on\"}},\n" +
				"\"flags\": {\"a\": {\"state\":\"ENABLED\",\"variants\":{\"on\":1},\"defaultVariant\":\"on\"}}}",
			"3 flags defined only in the others are not read (b, c, d)",
			func(f *File, _ error) string { return f.Note() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), tt.content)
			for range 20 { // map order differs from one load to the next
				f, err := Load(path)
				if got := tt.message(f, err); !strings.Contains(got, tt.want) {
					t.Fatalf("message %q, want it to contain %q", got, tt.want)
				}
			}
		})
	}
}

// A key that matches "flags" but for case and holds no object (a note,
// "FLAGS": "see below") is not a second flags object: flagd reads every
// flag, so there is nothing to warn of, and a ramp must not be refused.
func TestAFlagsKeyThatIsNotAnObjectIsNoSecondObject(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"FLAGS": "see below", "flags": {"a": {"state": "ENABLED", "variants": {"on": 10}, "defaultVariant": "on"}}}`)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if note := f.Note(); note != "" {
		t.Errorf("Note() = %q, want none", note)
	}
	if old, _, err := Ramp(path, "a", 5); err != nil || old != 10 {
		t.Errorf("Ramp = %v, %v; want 10 and no error", old, err)
	}
}

// flagd refuses a file with an evaluator shorter than 3 bytes ("evaluator
// object is empty"). Load promises never to be looser than flagd: were it
// to pass such a file, validate would approve what the provider then
// refuses, at startup or, worse, as a reload silently not applied.
func TestLoadRefusesTheShortEvaluatorsFlagdRefuses(t *testing.T) {
	t.Parallel()
	st, err := store.NewStore(logger.NewLogger(nil, false), []string{"short"})
	if err != nil {
		t.Fatal(err)
	}
	ev := evaluator.NewJSON(logger.NewLogger(nil, false), st)
	for _, rule := range []string{`[]`, `1`, `42`, `""`, `{}`} {
		content := `{"$evaluators":{"e":` + rule + `},"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`
		if err := ev.SetState(isync.DataSync{FlagData: content, Source: "short"}); err == nil {
			t.Errorf("evaluator %s: flagd accepts it; this test's premise is gone", rule)
		}
		_, err := Load(writeFlags(t, t.TempDir(), content))
		if err == nil || !strings.Contains(err.Error(), `"$evaluators" "e" is empty`) {
			t.Errorf("evaluator %s: Load = %v, want it refused as empty", rule, err)
		}
	}
}

// flagd's store matches a flagSetId by prefix up to a NUL byte, so a set
// named "a\x00b" would serve, or be served, the flags of set "a".
func TestLoadRefusesANULInAFlagSetID(t *testing.T) {
	t.Parallel()
	for _, content := range []string{
		`{"metadata":{"flagSetId":"a\u0000b"},"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on"}}}`,
		`{"flags":{"a":{"state":"ENABLED","variants":{"on":1},"defaultVariant":"on","metadata":{"flagSetId":"a\u0000b"}}}}`,
	} {
		_, err := Load(writeFlags(t, t.TempDir(), content))
		if err == nil || !strings.Contains(err.Error(), `"flagSetId" must be non-empty and free of NUL bytes`) {
			t.Errorf("%s: Load = %v, want a NUL refused", content, err)
		}
	}
}

// "targeting": {} is no rule (flagd skips it): the ramp of such a flag
// must not tell the operator that a rule still pins users elsewhere.
func TestRampOfAnEmptyRuleSaysNothingOfARule(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"flags":{"a":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on","targeting":{}}}}`)
	if old, note, err := Ramp(path, "a", 5); err != nil || old != 10 || note != "" {
		t.Errorf("Ramp = %v, %q, %v; want 10, no note", old, note, err)
	}
}

// Without a default variant, where no rule can place a request on the
// service (an empty rule, or a DISABLED flag, whose rule flagd never
// runs), a ramp to 0 is a rollback already done: said, never refused.
func TestRampToZeroWhereNoRuleRuns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, flag, note string }{
		{"empty rule", `{"state":"ENABLED","variants":{"on":100},"defaultVariant":null,"targeting":{}}`, "nothing written"},
		{"disabled, with a rule", `{"state":"DISABLED","variants":{"on":100},"defaultVariant":null,
			"targeting":{"if":[{"==":[{"var":"method"},"GET"]},"on",null]}}`, "is DISABLED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			content := `{"flags":{"a":` + tt.flag + `}}`
			path := writeFlags(t, t.TempDir(), content)
			old, note, err := Ramp(path, "a", 0)
			if err != nil || old != 0 || !strings.Contains(note, tt.note) || !strings.Contains(note, "nothing written") {
				t.Errorf("Ramp = %v, %q, %v; want done, with a note containing %q", old, note, err, tt.note)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("the file changed:\n%s", b)
			}
		})
	}
}

// Where the text does not say plainly which value flagd reads, a ramp
// refuses and writes nothing, rather than report done:
//   - with "Flags", writing flags.a would add a second, lowercase "flags"
//     object holding only a, which flagd would then read: every other
//     flag of the file, gone;
//   - with a key repeated, the edit lands on the first and flagd reads the
//     last: a rollback reported done while the traffic keeps flowing.
func TestRampRefusesWhatItCannotEditAsWritten(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, content string }{
		{"differently cased flags key, null value",
			`{"Flags":{"a":{"state":"ENABLED","variants":{"on":null},"defaultVariant":"on"},"b":{"state":"ENABLED","variants":{"on":50},"defaultVariant":"on"}}}`},
		{"variant repeated, same value",
			`{"flags":{"a":{"state":"ENABLED","variants":{"on":10,"on":10},"defaultVariant":"on"}}}`},
		{"variants repeated, same values",
			`{"flags":{"a":{"state":"ENABLED","variants":{"on":10},"variants":{"on":10},"defaultVariant":"on"}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), tt.content)
			if old, note, err := Ramp(path, "a", 5); err == nil {
				t.Errorf("Ramp = %v, %q, nil; want it refused", old, note)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("a refused ramp changed the file:\n%s", b)
			}
		})
	}
}

// A flag the file lacks is added at the percentage asked, fractions
// included (2.5 % is a usual first step).
func TestRampAddsMissingFlagAtAFraction(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"flags": {}}`)
	if _, _, err := Ramp(path, "new", 2.5); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if fl := f.flags["new"]; fl.variants[fl.defaultVariant] != 2.5 {
		t.Errorf("new reads %v, want 2.5", fl.variants[fl.defaultVariant])
	}
}

// The ramp that adds a flag says, as any other, that the path was a
// symlink and which file it changed.
func TestRampAddingAFlagThroughASymlinkSaysSo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := writeFlags(t, dir, `{"flags": {}}`)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink("flags.json", link); err != nil {
		t.Fatal(err)
	}
	_, note, err := Ramp(link, "new", 25)
	if err != nil || !strings.Contains(note, "was not in") || !strings.Contains(note, "is a symlink: ramped the file it links to, "+target) {
		t.Errorf("Ramp = %q, %v; want the flag added, with notes that it was and that the path is a symlink", note, err)
	}
}

// A file replaced by a symlink while the ramp waited for its turn (another
// tool's deploy) is refused: writing the path would cut the link from the
// file it shares. Two checks refuse it (the symlink and the regular file
// one); this pins what they are for. Not parallel: it swaps lockDir.
func TestRampRefusesAFileThatBecameASymlink(t *testing.T) {
	saved := lockDir
	t.Cleanup(func() { lockDir = saved })
	dir := t.TempDir()
	path := writeFlags(t, dir, rampFile)
	shared := filepath.Join(dir, "shared.json")
	if err := os.WriteFile(shared, []byte(rampFile), 0o644); err != nil {
		t.Fatal(err)
	}
	lockDir = func(string) (func(), error) {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
		if err := os.Symlink("shared.json", path); err != nil {
			return nil, err
		}
		return func() {}, nil
	}
	if _, _, err := Ramp(path, "orders-percent", 20); err == nil {
		t.Error("Ramp wrote a file that became a symlink")
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("Ramp replaced the symlink with a file")
	}
	if b, _ := os.ReadFile(shared); string(b) != rampFile {
		t.Errorf("Ramp changed the shared file:\n%s", b)
	}
}

// The temporary file is made beside the flag file, never in $TMPDIR: the
// rename is atomic only within one file system, and $TMPDIR may be a tmpfs,
// or missing. Not parallel: it sets TMPDIR.
func TestRampWritesItsTemporaryFileBesideTheFlagFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	path := writeFlags(t, dir, rampFile)
	t.Setenv("TMPDIR", missing)
	if _, _, err := Ramp(path, "orders-percent", 20); err != nil {
		t.Fatalf("Ramp with TMPDIR missing: %v", err)
	}
}

// A replace that fails (here the rename, onto a directory) leaves no
// temporary file: each failed retry at 3 AM would leave one more hidden
// .flags.json.ramp-* beside the flags.
func TestFailedReplaceLeavesNoTemporaryFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	info, err := os.Stat(writeFlags(t, dir, plain))
	if err != nil {
		t.Fatal(err)
	}
	taken := filepath.Join(dir, "taken")
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := replaceFile(taken, []byte(plain), info); err == nil {
		t.Fatal("replaceFile over a directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "flags.json" && e.Name() != "taken" {
			t.Errorf("a failed replace left %s behind", e.Name())
		}
	}
}

// The new file keeps the old one's group as well as its owner, each its
// own: with a group other than the owner's (a proxy reading the file
// through its group, the usual 0640), giving it the owner's id for a
// group would lock the proxy out.
func TestRampKeepsAGroupOtherThanTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file to another user")
	}
	t.Parallel()
	const uid, gid = 65534, 65533
	_, _, st := rampOwnedFile(t, 0o755, 0, 0, 0o640, uid, gid)
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("after Ramp the file is %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

// ReadFile's bound is inclusive (at most max bytes), and holds for what is
// read, not only for the size the file system reports: a file that grows
// while read, or whose size is reported wrongly (procfs, some network and
// FUSE file systems report 0), must not come back cut short as if whole.
func TestReadFileBoundIsOnWhatIsRead(t *testing.T) {
	t.Parallel()
	exact := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(exact, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(exact, 2); err != nil || string(b) != "{}" {
		t.Errorf("a file of exactly the bound: %q, %v; want it read", b, err)
	}
	const lying = "/proc/self/status" // regular, reported as 0 bytes, holds more
	if fi, err := os.Stat(lying); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Skipf("no %s reported as an empty regular file", lying)
	}
	if b, err := ReadFile(lying, 16); err == nil || !strings.Contains(err.Error(), "more than the 16 bytes") {
		t.Errorf("a file holding more than its reported size: %q, %v; want it refused", b, err)
	}
}

// A reload is judged by the new file: a flag turned "disabled" (lowercase,
// which flagd serves as enabled) keeps its route on the monolith, and
// Check and Disabled answer for the flags now live, not those of Open.
func TestReloadIsJudgedByTheNewFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, r := open(t, writeFlags(t, dir, `{"flags":{
	  "orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
	  "users":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"}}}`))
	orders := s.Flag("orders")
	writeFlags(t, dir, `{"flags":{
	  "orders":{"state":"disabled","variants":{"on":20},"defaultVariant":"on"},
	  "users":{"state":"DISABLED","variants":{"on":10},"defaultVariant":"on"}}}`)
	eventually(t, "the reload", func() bool { return r.changeCount() == 1 })
	if v, err := orders.Percent(context.Background(), "k", Attrs{}); !errors.Is(err, ErrState) {
		t.Errorf("orders = %v, %v; want ErrState (flagd would send the route 20 %%)", v, err)
	}
	if err := s.Check("orders"); !errors.Is(err, ErrState) {
		t.Errorf("Check(orders) = %v, want ErrState", err)
	}
	if !s.Disabled("users") {
		t.Error("Disabled(users) = false after the reload that disabled it")
	}
}

// Disabled answers for a file as for a daemon: validate warns that a
// DISABLED route serves only the monolith.
func TestSourceDisabledWithAFile(t *testing.T) {
	t.Parallel()
	s, _ := open(t, writeFlags(t, t.TempDir(), `{"flags":{
	  "orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
	  "off":{"state":"DISABLED","variants":{"on":10},"defaultVariant":"on"}}}`))
	for name, want := range map[string]bool{"off": true, "orders": false, "missing": false} {
		if got := s.Disabled(name); got != want {
			t.Errorf("Disabled(%q) = %v, want %v", name, got, want)
		}
	}
	if err := s.Check("off"); err != nil {
		t.Errorf("Check(off) = %v; want nil (a DISABLED flag is valid)", err)
	}
}

// An event on the watched directory itself (removed, or renamed) may
// change what the flag file reads, and is looked at within a settle, not
// left to the poll.
func TestWatchConcernsTheDirectoryItself(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := &fileSync{path: filepath.Join(dir, "flags.json")}
	for _, name := range []string{dir, dir + "/"} {
		if !w.concerns(name) {
			t.Errorf("an event on %s: not a concern", name)
		}
	}
}

// TestCheckLooksTwiceAtEveryFailure steps the watcher's check through
// sequences that TestCheckWaitsOutAHalfWrittenFile does not: every failure
// is reported only when a settled look (never the poll) finds it a second
// time, whatever failed or succeeded before, and once, not every poll.
// An OnReloadError for a file that was fine a moment later pages the
// operator for nothing; one missing would hide a file left broken.
func TestCheckLooksTwiceAtEveryFailure(t *testing.T) {
	t.Parallel()
	const gone = "(removed)"
	type step struct {
		content  string
		poll     bool // a look by the poll, which never confirms a failure
		again    bool
		reloaded int
		rejected int
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a missing file: reported by a settled look, once", []step{
			{gone, true, true, 0, 0},
			{gone, true, true, 0, 0}, // the poll twice: not confirmed
			{gone, false, false, 0, 1},
			{gone, true, false, 0, 1}, // reported already: not every poll
			{gone, false, false, 0, 1},
		}},
		{"missing, then back empty", []step{
			{gone, false, true, 0, 0},
			{gone, false, false, 0, 1},
			{"", false, true, 0, 1}, // a new problem, looked at twice
			{gone, false, false, 0, 1},
			{"", false, true, 0, 1}, // the look before the known error does not count
			{"", false, false, 0, 2},
		}},
		{"each failure counts its own looks", []step{
			{"", true, true, 0, 0},
			{flagFile("10"), false, false, 0, 0}, // back as it was
			{"", false, true, 0, 0},              // so this is a first look
			{flagFile("20"), false, false, 1, 0},
			{"", false, true, 1, 0}, // and after a good version too
			{gone, false, true, 1, 0},
			{gone, false, false, 1, 1}, // missing is not empty: its own two looks
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), flagFile("10"))
			var reloaded, rejected int
			w := newFileSync(path, []byte(flagFile("10")), slog.New(slog.DiscardHandler),
				func(*File) { reloaded++ }, func(error) { rejected++ })
			ctx, out := providerReader(t)
			for i, s := range tc.steps {
				if s.content == gone {
					if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(path, []byte(s.content), 0o644); err != nil {
					t.Fatal(err)
				}
				again := w.check(ctx, out, !s.poll)
				if again != s.again || reloaded != s.reloaded || rejected != s.rejected {
					t.Fatalf("step %d (%q, poll %v): check again %v, %d reloads, %d rejections; want %v, %d, %d",
						i, s.content, s.poll, again, reloaded, rejected, s.again, s.reloaded, s.rejected)
				}
			}
		})
	}
}

// What ReSync hands the provider is the flag set now live, and IsReady
// says when the first was handed over (flagd's sync.ISync contract). The
// provider does not call them today; one that did, with the flags of Open,
// would undo every ramp since.
func TestReSyncHandsTheLiveFlags(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), flagFile("10"))
	w := newFileSync(path, []byte(flagFile("10")), slog.New(slog.DiscardHandler), func(*File) {}, func(error) {})
	ctx, out := providerReader(t)
	if w.IsReady() {
		t.Error("ready before the first flag set was handed over")
	}
	if !w.start(ctx, out) {
		t.Fatal("start")
	}
	if !w.IsReady() {
		t.Error("not ready after the first flag set was handed over")
	}
	if err := os.WriteFile(path, []byte(flagFile("20")), 0o644); err != nil {
		t.Fatal(err)
	}
	if w.check(ctx, out, true) {
		t.Fatal("the new file was not applied")
	}
	resync := make(chan isync.DataSync, 1)
	if err := w.ReSync(ctx, resync); err != nil {
		t.Fatal(err)
	}
	if got := (<-resync).FlagData; got != flagFile("20") {
		t.Errorf("ReSync handed %s, want the live %s", got, flagFile("20"))
	}
}
