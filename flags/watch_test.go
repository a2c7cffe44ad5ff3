package flags

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	isync "github.com/open-feature/flagd/core/pkg/sync"
)

// Not parallel, like TestReloadSeesRamp: it measures latency, which
// parallel tests hammering the CPU would distort.
func TestReloadEditInPlace(t *testing.T) {
	dir := t.TempDir()
	s, r := open(t, writeFlags(t, dir, flagFile("10")))
	f := s.Flag("orders")
	start := time.Now()
	writeFlags(t, dir, flagFile("20"))
	eventually(t, "the in-place edit", percentIs(f, 20))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("edit took %v to go live, want < 2s", d)
	}
	eventually(t, "OnChange", func() bool { return r.changeCount() == 1 })
	if n := r.errorCount(); n != 0 {
		t.Errorf("OnReloadError called %d times for a clean edit: %v", n, r.lastError())
	}
}

// TestCheckWaitsOutAHalfWrittenFile steps the watcher's check through an
// in-place edit read at its worst moments: truncated, then half-written.
// Neither is reported, the finished file goes live, and a file that stays
// invalid for a second look is reported once.
func TestCheckWaitsOutAHalfWrittenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	var rejected []error
	var reloaded []*File
	w := newFileSync(path, []byte(flagFile("10")), slog.New(slog.DiscardHandler),
		func(f *File) { reloaded = append(reloaded, f) }, func(err error) { rejected = append(rejected, err) })
	ctx, out := providerReader(t)
	next := flagFile("20")
	const gone = "(removed)"
	for i, step := range []struct {
		content  string
		poll     bool // a look by the poll, which never confirms a failure
		again    bool
		reloaded int
		rejected int
	}{
		{"", false, true, 0, 0},                  // truncated: look again
		{next[:len(next)/2], false, true, 0, 0},  // half-written, and changed: again
		{next, false, false, 1, 0},               // whole: live
		{next, false, false, 1, 0},               // unchanged
		{"", false, true, 1, 0},                  // truncated again
		{"", false, false, 1, 1},                 // still empty a settle later: reported
		{"", false, false, 1, 1},                 // and only once
		{next[:len(next)/2], false, true, 1, 1},  // a new bad version: looked at twice too
		{next[:len(next)/2], false, false, 1, 2}, // reported
		{flagFile("30"), false, false, 2, 2},     // and a good one goes live at once
		{gone, false, true, 2, 2},                // missing (an editor moved it aside): look again
		{flagFile("30"), false, false, 2, 2},     // back, unchanged: nothing to report
		{"", true, true, 2, 2},                   // the poll finds it empty
		{"", true, true, 2, 2},                   // and again: only a settled look confirms
		{"", false, false, 2, 3},                 // which does
		{gone, false, true, 2, 3},                // gone
		{gone, false, false, 2, 4},               // and still gone a settle later: reported
	} {
		if step.content == gone {
			os.Remove(path)
		} else if err := os.WriteFile(path, []byte(step.content), 0o644); err != nil {
			t.Fatal(err)
		}
		again := w.check(ctx, out, !step.poll)
		if again != step.again || len(reloaded) != step.reloaded || len(rejected) != step.rejected {
			t.Fatalf("step %d (%q): check again %v, %d reloads, %d rejections (%v); want %v, %d, %d",
				i, step.content, again, len(reloaded), len(rejected), rejected, step.again, step.reloaded, step.rejected)
		}
	}
	if !strings.Contains(rejected[0].Error(), "file is empty") {
		t.Errorf("first rejection %q, want it to name the empty file", rejected[0])
	}
	if v := reloaded[1].flags["orders"].variants["on"]; fmt.Sprint(v) != "30" {
		t.Errorf("live flags after the last step: %v, want 30", v)
	}
}

func TestReloadRenameOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	s, _ := open(t, path)
	f := s.Flag("orders")
	for _, v := range []float64{20, 30} { // the watch survives the first rename
		tmp := filepath.Join(dir, "flags.json.tmp")
		if err := os.WriteFile(tmp, []byte(flagFile(fmt.Sprint(v))), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		eventually(t, fmt.Sprintf("rename to %v", v), percentIs(f, v))
	}
}

func TestReloadDeleteThenRecreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	s, r := open(t, path)
	f := s.Flag("orders")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "OnReloadError for the deleted file", func() bool { return r.errorCount() == 1 })
	if err := r.lastError(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OnReloadError(%v), want a not-exist error", err)
	}
	if !percentIs(f, 10)() {
		t.Error("deleting the file dropped the last good flags")
	}
	writeFlags(t, dir, flagFile("40"))
	eventually(t, "the recreated file", percentIs(f, 40))
	if n := r.errorCount(); n != 1 {
		t.Errorf("OnReloadError called %d times, want once per bad version", n)
	}
}

// When the directory itself is removed and recreated, the poll finds the
// file again and the watch is restored for the edits after it.
func TestReloadDirectoryRecreated(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, r := open(t, writeFlags(t, dir, flagFile("10")))
	f := s.Flag("orders")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "OnReloadError for the missing file", func() bool { return r.errorCount() == 1 })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFlags(t, dir, flagFile("20"))
	eventually(t, "the file in the new directory", percentIs(f, 20))
	eventually(t, "the watch on the new directory", func() bool { return len(s.updates.(*fileSync).watcher.WatchList()) == 1 })
	writeFlags(t, dir, flagFile("30"))
	eventually(t, "an edit in the new directory", percentIs(f, 30))
}

// TestReloadKubeletSymlinkSwap lays out a ConfigMap volume as kubelet does
// (AtomicWriter): the file is a symlink into ..data, ..data a symlink to a
// timestamped directory, and an update writes a new directory and renames a
// new ..data link over the old one. No event names flags.json.
func TestReloadKubeletSymlinkSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	publish := func(ts, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "flags.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish("..2026_11_25_10_00_00.123456789", flagFile("10"))
	path := filepath.Join(dir, "flags.json")
	if err := os.Symlink(filepath.Join("..data", "flags.json"), path); err != nil {
		t.Fatal(err)
	}

	s, _ := open(t, path)
	f := s.Flag("orders")
	if !percentIs(f, 10)() {
		t.Fatal("initial value not read through the symlinks")
	}
	publish("..2026_11_25_10_05_00.987654321", flagFile("55"))
	if err := os.RemoveAll(filepath.Join(dir, "..2026_11_25_10_00_00.123456789")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ConfigMap update", percentIs(f, 55))

	if _, _, err := Ramp(path, "orders", 60); err == nil || !strings.Contains(err.Error(), "edit the ConfigMap") {
		t.Errorf("Ramp on a ConfigMap file = %v, want a refusal", err)
	}
}

func TestReloadKeepsLastGoodFlags(t *testing.T) {
	t.Parallel()
	bad := []struct{ name, content string }{
		{"empty", ""},
		{"open brace", "{"},
		{"empty object", "{}"},
		{"flags is a number", `{"flags":5}`},
		{"truncated", flagFile("20")[:40]},
		{"bad defaultVariant", `{"flags":{"orders":{"state":"ENABLED","variants":{"on":20},"defaultVariant":"off"}}}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, r := open(t, writeFlags(t, dir, flagFile("10")))
			f := s.Flag("orders")
			writeFlags(t, dir, tt.content)
			eventually(t, "OnReloadError", func() bool { return r.errorCount() >= 1 })
			if err := r.lastError(); !strings.Contains(err.Error(), filepath.Join(dir, "flags.json")) {
				t.Errorf("OnReloadError(%q) does not name the file", err)
			}
			if !percentIs(f, 10)() {
				t.Fatal("the invalid file replaced the last good flags")
			}
			if r.changeCount() != 0 {
				t.Error("OnChange called for an invalid file")
			}
			writeFlags(t, dir, flagFile("30"))
			eventually(t, "the next good file", percentIs(f, 30))
			eventually(t, "OnChange", func() bool { return r.changeCount() == 1 })
		})
	}
}

// TestReloadOnChangeSeesTheNewFlags checks the ordering promise: by the
// time OnChange runs, the provider has the new flags and the cache of every
// handle is refreshed, including handles on flags with targeting (which
// ask the provider) and on flags that appear only now.
func TestReloadOnChangeSeesTheNewFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	var s *Source
	var seen atomic.Value // string: what OnChange observed
	s, err := Open(context.Background(), Options{
		File:   path,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnChange: func() {
			plainV, err1 := s.Flag("orders").Current()
			ruled, err2 := s.Flag("ruled").Percent(context.Background(), "vip", Attrs{})
			seen.Store(fmt.Sprint(plainV, err1, ruled, err2))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.Flag("ruled").Current(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ruled before it exists: %v", err)
	}
	for i := range 20 {
		v := float64(11 + i)
		writeFlags(t, dir, `{"flags":{
		  "orders":{"state":"ENABLED","variants":{"on":`+fmt.Sprint(v)+`},"defaultVariant":"on"},
		  "ruled":{"state":"ENABLED","variants":{"all":100,"x":`+fmt.Sprint(v)+`},"defaultVariant":"all",
		    "targeting":{"if":[{"==":[{"var":"targetingKey"},"vip"]},"x",null]}}}}`)
		want := fmt.Sprint(v, nil, v, nil)
		eventually(t, "OnChange with "+want, func() bool { return seen.Load() == want })
	}
}

// A flag can gain or lose its targeting rule in a reload; the same handle
// switches between cached and per-request answers.
func TestReloadTargetingComesAndGoes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, writeFlags(t, dir, flagFile("10")))
	f := s.Flag("orders")
	writeFlags(t, dir, `{"flags":{"orders":{"state":"ENABLED","variants":{"on":10,"all":100},"defaultVariant":"on",
	  "targeting":{"if":[{"==":[{"var":"method"},"POST"]},"all",null]}}}}`)
	eventually(t, "the rule", func() bool {
		v, err := f.Percent(context.Background(), "k", Attrs{Method: "POST"})
		return v == 100 && err == nil
	})
	writeFlags(t, dir, flagFile("15"))
	eventually(t, "the rule to go", func() bool {
		v, err := f.Percent(context.Background(), "k", Attrs{Method: "POST"})
		return v == 15 && err == nil && !f.state.Load().perRequest
	})
}

func TestReloadSeesRamp(t *testing.T) {
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	s, _ := open(t, path)
	f := s.Flag("orders")
	start := time.Now()
	if _, _, err := Ramp(path, "orders", 25); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ramp", percentIs(f, 25))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ramp took %v to go live, want < 2s", d)
	}
}

// TestReloadUnderLoad evaluates from 4 goroutines while the file is edited
// 50 times, half in place (truncate and write, so the watcher can catch a
// partial file) and half by Ramp. No evaluation may fail or see a value
// that was never written.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, `{"flags":{
	  "orders":{"state":"ENABLED","variants":{"on":0},"defaultVariant":"on"},
	  "ruled":{"state":"ENABLED","variants":{"on":0,"all":100},"defaultVariant":"on",
	    "targeting":{"if":[{"==":[{"var":"targetingKey"},"vip"]},"all",null]}}}}`)
	s, _ := open(t, path)
	flags := []*Flag{s.Flag("orders"), s.Flag("ruled")}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for i := 0; !stop.Load(); i++ {
				f := flags[(g+i)%2]
				v, err := f.Percent(ctx, fmt.Sprint("user-", i), Attrs{Method: "GET"})
				if err == nil && (v < 0 || v > 50 || v != float64(int(v))) {
					err = fmt.Errorf("%s = %v, never written", f.Name(), v)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := 1; i <= 50; i++ {
		if i%2 == 0 {
			if _, _, err := Ramp(path, "orders", float64(i)); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFlags(t, dir, `{"flags":{
			  "orders":{"state":"ENABLED","variants":{"on":`+fmt.Sprint(i)+`},"defaultVariant":"on"},
			  "ruled":{"state":"ENABLED","variants":{"on":`+fmt.Sprint(i)+`,"all":100},"defaultVariant":"on",
			    "targeting":{"if":[{"==":[{"var":"targetingKey"},"vip"]},"all",null]}}}}`)
		}
		// One reload per edit, each under load.
		eventually(t, fmt.Sprint("edit ", i), percentIs(flags[0], float64(i)))
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Close whose context ends while an update runs (a slow OnChange) can
// be called again, and then shuts the provider down (a review found the
// first error returned for good, and the provider left running).
func TestCloseAfterATimeoutCanBeRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	block := make(chan struct{})
	var blocked atomic.Bool
	s, err := Open(context.Background(), Options{File: path, Logger: slog.New(slog.DiscardHandler),
		OnChange: func() {
			if blocked.CompareAndSwap(false, true) {
				<-block
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	writeFlags(t, dir, flagFile("20"))
	eventually(t, "OnChange running", blocked.Load)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = s.Close(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Close: %v, want it to time out", err)
	}
	close(block)
	// The second Close shuts the provider down (TestMain's goleak sees
	// its goroutines gone); before, it returned the first one's error.
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseIsIdempotentAndStopsReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, writeFlags(t, dir, flagFile("10")))
	f := s.Flag("orders")
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	writeFlags(t, dir, flagFile("20"))
	if v, err := f.Percent(context.Background(), "k", Attrs{}); v != 10 || err != nil {
		t.Errorf("after Close: Percent = %v, %v; want the cached 10", v, err)
	}
}

// A bad flag file is reported while another file of its directory is
// written every 20 ms (a log, a shared tmp): before, each of those writes
// put off the settled look that confirms a failure, for as long as they
// went on (a review).
func TestBadFileReportedInABusyDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	var rejected atomic.Int32
	s, err := Open(context.Background(), Options{File: path, Logger: slog.New(slog.DiscardHandler),
		OnReloadError: func(error) { rejected.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		log := filepath.Join(dir, "app.log")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				f, _ := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				f.WriteString("line\n")
				f.Close()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad file reported while the directory is busy", func() bool { return rejected.Load() > 0 })
}

// Which entries of the flag file's directory may change what it reads:
// itself, Kubernetes' ..data, and what it links to there, through a
// chain of links or a swapped directory (a review found the last two
// picked up by the 1 s poll only).
func TestWatchConcerns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, d := range []string{"releases/v1"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFlags(t, filepath.Join(dir, "releases/v1"), flagFile("10"))
	writeFile := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(flagFile("10")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("v1.json")
	writeFile("..v2.json")
	for _, l := range [][2]string{{"releases/v1", "current"}, {"current/flags.json", "deployed.json"}, {"v1.json", "cur.json"}, {"cur.json", "chained.json"}, {"..v2.json", "dotted.json"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file, event string
		want        bool
	}{
		{"flags.json", "flags.json", true},
		{"flags.json", "..data", true},
		{"flags.json", "..data_tmp", true},
		{"flags.json", "app.log", false},
		{"flags.json", ".flags.json.ramp-123", false},
		{"deployed.json", "current", true},
		{"deployed.json", "releases", false},
		{"chained.json", "cur.json", true},
		{"chained.json", "v1.json", true},
		{"chained.json", "app.log", false},
		{"dotted.json", "..v2.json", true}, // an entry of its own whose name starts with ".."
	} {
		w := &fileSync{path: filepath.Join(dir, tc.file)}
		if got := w.concerns(filepath.Join(dir, tc.event)); got != tc.want {
			t.Errorf("%s, an event on %s: concerns %v, want %v", tc.file, tc.event, got, tc.want)
		}
	}
}

// providerReader is a context and a channel read as the provider reads
// a sync's flag sets, until the test ends.
func providerReader(t *testing.T) (context.Context, chan isync.DataSync) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out := make(chan isync.DataSync, 1)
	go func() {
		for {
			select {
			case <-out:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, out
}
