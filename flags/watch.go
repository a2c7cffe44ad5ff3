package flags

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	isync "github.com/open-feature/flagd/core/pkg/sync"
)

const (
	// settle is how long the directory must be quiet before the file is
	// read, so an in-place write is read whole, not truncated.
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
	path     string
	uri      string // flagd's source name for our data
	log      *slog.Logger
	reloaded func(*File) // the provider's store holds the new file
	rejected func(error) // the file changed and is not usable

	stop  chan struct{} // closed by Source.Close
	done  chan struct{} // closed when Sync returns
	ready atomic.Bool
	live  atomic.Pointer[string] // what the provider holds, for ReSync

	// Owned by the Sync goroutine after Init.
	watcher *fsnotify.Watcher // nil: poll only
	seen    []byte            // last content read, good or bad
	seenErr string            // last read error, reported once
}

func newFileSync(path string, raw []byte, log *slog.Logger, reloaded func(*File), rejected func(error)) *fileSync {
	w := &fileSync{
		path:     path,
		uri:      "file:" + path,
		log:      log,
		reloaded: reloaded,
		rejected: rejected,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		seen:     raw,
	}
	live := string(raw)
	w.live.Store(&live)
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

// IsReady reports whether the first flag set has been handed over.
func (w *fileSync) IsReady() bool { return w.ready.Load() }

// ReSync hands the provider the flags it already has.
func (w *fileSync) ReSync(ctx context.Context, out chan<- isync.DataSync) error {
	select {
	case out <- isync.DataSync{FlagData: *w.live.Load(), Source: w.uri}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sync is the watcher goroutine. flagd starts it after Init and cancels ctx
// on shutdown; Source.Close stops it earlier through w.stop.
func (w *fileSync) Sync(ctx context.Context, out chan<- isync.DataSync) error {
	defer close(w.done)
	if w.watcher != nil {
		defer w.watcher.Close()
	}
	// The provider waits for this first flag set, which Open validated.
	if !w.send(ctx, out, *w.live.Load(), 1) {
		return nil
	}
	w.ready.Store(true)
	// The file may have changed between Open's read and the watch.
	w.check(ctx, out)

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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.stop:
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// Any entry: kubelet's update touches ..data, not the file.
			quiet.Reset(settle)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.log.Warn("watching the flag file's directory", "path", w.path, "error", err)
			quiet.Reset(settle) // an overflow may have eaten our event
		case <-quiet.C:
			w.check(ctx, out)
		case <-poll.C:
			w.rewatch()
			w.check(ctx, out)
		}
	}
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
func (w *fileSync) check(ctx context.Context, out chan<- isync.DataSync) {
	raw, err := os.ReadFile(w.path)
	if err != nil {
		if err.Error() == w.seenErr {
			return // reported already; the poll would repeat it every second
		}
		w.seen, w.seenErr = nil, err.Error()
		w.rejected(fmt.Errorf("flag file: %w", err))
		return
	}
	if w.seenErr == "" && bytes.Equal(raw, w.seen) {
		return
	}
	w.seen, w.seenErr = raw, ""
	file, err := parse(raw)
	if err != nil {
		w.rejected(fmt.Errorf("flag file %s: %w", w.path, err))
		return
	}
	data := string(raw)
	if !w.send(ctx, out, data, cap(out)+2) {
		return
	}
	w.live.Store(&data)
	w.reloaded(file)
}

// send hands data to the provider n times and reports whether it got
// through before shutdown.
//
// Sending cap(out)+2 copies is how the caller learns the first copy has
// been applied, which the provider does not report when no flag changed:
// flagd's listener (runDataSyncListener in the provider's
// service/in_process/service.go) is the only reader of out and applies
// syncs one at a time. Once cap(out)+2 sends have completed, at most
// cap(out) sit in the buffer, so the listener has taken the second copy,
// so it has finished applying the first. The copies change nothing, so
// they emit no events. The cost is parsing a small file twice more per
// reload.
func (w *fileSync) send(ctx context.Context, out chan<- isync.DataSync, data string, n int) bool {
	msg := isync.DataSync{FlagData: data, Source: w.uri}
	for range n {
		select {
		case out <- msg:
		case <-ctx.Done():
			return false
		case <-w.stop:
			return false
		}
	}
	return true
}
