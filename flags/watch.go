package flags

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	isync "github.com/open-feature/flagd/core/pkg/sync"
)

const (
	// settle is how long the flag file's entries (concerns) must be quiet
	// before the file is read, so an in-place write is read whole, not
	// truncated.
	settle = 50 * time.Millisecond
	// pollEvery is the safety net for lost events (a replaced directory,
	// an inotify queue overflow, filesystems without events).
	pollEvery = time.Second
)

// fileSync feeds the flag file to flagd's in-process evaluator. It
// implements flagd's sync.ISync instead of using flagd's file sync, which
// hands an empty or half-written file to the evaluator, loses the file for
// good after delete and recreate, and misses Kubernetes ConfigMap updates.
//
// It watches the directory, not the file: a rename over the file, a delete
// and recreate, and kubelet's swap of the ..data symlink all show up as
// events in the directory. Each change is read (through symlinks),
// validated, and only a valid file is passed on; anything else keeps the
// last good flags and is reported.
type fileSync struct {
	handoff
	path string
	log  *slog.Logger

	// Owned by the Sync goroutine after Init.
	watcher *fsnotify.Watcher // nil: poll only
	seen    []byte            // last content read, good or bad
	seenErr string            // last read error, reported once
	suspect *failure          // a failure seen once, not yet reported
}

func newFileSync(path string, raw []byte, log *slog.Logger, reloaded func(*File), rejected func(error)) *fileSync {
	w := &fileSync{path: path, log: log, seen: raw}
	w.init("file:"+path, string(raw), reloaded, rejected)
	return w
}

var _ isync.ISync = (*fileSync)(nil)

// Init starts watching the file's directory. Without inotify (for example
// when the per-user instance limit is reached) the poll still sees every
// change, only later, so that is a warning, not a failure.
func (w *fileSync) Init(context.Context) error {
	watcher, err := fsnotify.NewWatcher()
	if err == nil {
		err = watcher.Add(filepath.Dir(w.path))
		if err != nil {
			_ = watcher.Close()
		}
	}
	if err != nil {
		w.log.Warn("cannot watch the flag file's directory; polling it every second instead",
			"path", w.path, "error", err)
		return nil
	}
	w.watcher = watcher
	return nil
}

// Sync is the watcher goroutine. flagd starts it after Init and cancels ctx
// on shutdown; Source.Close stops it earlier through stop.
func (w *fileSync) Sync(ctx context.Context, out chan<- isync.DataSync) error {
	defer close(w.done)
	if w.watcher != nil {
		defer w.watcher.Close()
	}
	// The provider waits for this first flag set, which Open validated.
	if !w.start(ctx, out) {
		return nil
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.watcher != nil {
		events, errs = w.watcher.Events, w.watcher.Errors
	}
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	quiet := time.NewTimer(settle)
	quiet.Stop()
	defer quiet.Stop()
	// Only a look a settle after the last event, with none since, may
	// confirm a failure: the poll lands anywhere, and may find the same
	// empty file twice in two different saves.
	check := func(confirm bool) {
		if w.check(ctx, out, confirm) {
			quiet.Reset(settle) // failed once: look again before reporting it
		}
	}
	// The file may have changed between Open's read and the watch.
	check(false)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.quit.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !w.concerns(ev.Name) {
				// Another file of a busy directory (a log, a shared tmp):
				// its writes must not put off, for ever, the look that
				// confirms a failure of ours.
				continue
			}
			w.suspect = nil // a new write: what failed before may be done
			quiet.Reset(settle)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.log.Warn("watching the flag file's directory", "path", w.path, "error", err)
			quiet.Reset(settle) // an overflow may have eaten our event
		case <-quiet.C:
			check(true)
		case <-poll.C:
			w.rewatch()
			check(false)
		}
	}
}

// concerns reports whether an event on the named entry of the watched
// directory may change what the flag file reads: the file itself, what it
// links to there (through any number of links), or Kubernetes' ..data
// swap (..data and ..data_tmp; a ConfigMap's file links through it).
// Anything else, the poll catches.
func (w *fileSync) concerns(name string) bool {
	base, dir := filepath.Base(name), filepath.Dir(w.path)
	if base == filepath.Base(w.path) || strings.HasPrefix(base, "..data") || filepath.Clean(name) == dir {
		return true
	}
	// What the file links to, hop by hop: an entry of this directory a
	// target names, or the first step of one (a "current" directory
	// swapped by a deploy tool).
	p := w.path
	for range 8 {
		to, err := os.Readlink(p)
		if err != nil {
			return false
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(p), to)
		}
		if rel, err := filepath.Rel(dir, to); err == nil && !outside(rel) {
			if first, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); first == base {
				return true
			}
		}
		p = to
	}
	return false
}

// outside reports whether a path relative to a directory leaves it: ".."
// or "../…", not an entry of its own named "..v2.json".
func outside(rel string) bool {
	rel = filepath.ToSlash(rel)
	return rel == ".." || strings.HasPrefix(rel, "../")
}

// rewatch restores the watch after the directory itself was removed
// (inotify drops the watch with it) and has come back.
func (w *fileSync) rewatch() {
	if w.watcher != nil && len(w.watcher.WatchList()) == 0 {
		_ = w.watcher.Add(filepath.Dir(w.path)) // still gone: the next poll retries
	}
}

// check reads the file and, if it changed, validates it and hands it to
// the provider.
//
// A failure (content that is not valid, a file that cannot be read) is
// reported only when a second look, settle later with no event since
// (confirm), finds the same: a file edited in place is empty between its
// truncation and the write, and half-written during it; one replaced by
// an editor that moves the original aside is missing for a moment; and
// the poll or a slow writer can land a read there. check then returns
// true, and the caller looks again after settle; the last good flags stay
// meanwhile.
func (w *fileSync) check(ctx context.Context, out chan<- isync.DataSync, confirm bool) (again bool) {
	raw, err := ReadFile(w.path, MaxFlagFile)
	if err != nil {
		if err.Error() == w.seenErr {
			w.suspect = nil
			return false // reported already; the poll would repeat it every second
		}
		f := &failure{err: err.Error()}
		if !confirm || !w.suspect.same(f) {
			w.suspect = f
			return true
		}
		w.suspect = nil
		w.seen, w.seenErr = nil, err.Error()
		w.rejected(fmt.Errorf("flag file: %w", err))
		return false
	}
	if w.seenErr == "" && bytes.Equal(raw, w.seen) {
		w.suspect = nil
		return false
	}
	file, err := parse(raw)
	if err != nil {
		f := &failure{raw: raw}
		if !confirm || !w.suspect.same(f) {
			w.suspect = f
			return true
		}
		w.suspect = nil
		w.seen, w.seenErr = raw, ""
		w.rejected(fmt.Errorf("flag file %s: %w", w.path, err))
		return false
	}
	w.suspect = nil
	w.seen, w.seenErr = raw, ""
	w.apply(ctx, out, string(raw), file)
	return false
}

// failure is what a look at the file found wrong: content that is not
// valid, or the error of a read.
type failure struct {
	raw []byte
	err string
}

func (f *failure) same(g *failure) bool {
	return f != nil && g != nil && f.err == g.err && bytes.Equal(f.raw, g.raw)
}
