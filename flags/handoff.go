package flags

import (
	"context"
	"sync/atomic"

	isync "github.com/open-feature/flagd/core/pkg/sync"
)

// updater is the goroutine that keeps a Source's flags current: fileSync
// or daemonSync feeding the in-process provider, or rpcWatch following a
// daemon's events. Close stops it before it shuts the provider down.
type updater interface {
	stop()                    // idempotent
	stopped() <-chan struct{} // closed once the goroutine has returned
}

// handoff is what fileSync and daemonSync share: both are flagd sync.ISync
// implementations that validate a flag set before flagd's in-process
// evaluator sees it, hand it over, and tell the Source once it is live.
// The embedding type supplies Init and Sync.
type handoff struct {
	uri      string      // flagd's name for our source
	reloaded func(*File) // the provider's store holds the new flag set
	rejected func(error) // a flag set or the source itself is not usable

	quit   context.Context    // canceled by stop
	cancel context.CancelFunc // cancels quit
	done   chan struct{}      // closed when Sync returns
	ready  atomic.Bool
	live   atomic.Pointer[string] // what the provider holds, for ReSync
}

// init prepares h to hand over first, a flag set already validated; first
// may also be stored later, before Sync starts.
func (h *handoff) init(uri, first string, reloaded func(*File), rejected func(error)) {
	h.uri, h.reloaded, h.rejected = uri, reloaded, rejected
	h.quit, h.cancel = context.WithCancel(context.Background())
	h.done = make(chan struct{})
	h.live.Store(&first)
}

func (h *handoff) stop()                    { h.cancel() }
func (h *handoff) stopped() <-chan struct{} { return h.done }

// IsReady reports whether the first flag set has been handed over.
func (h *handoff) IsReady() bool { return h.ready.Load() }

// ReSync hands the provider the flags it already has.
func (h *handoff) ReSync(ctx context.Context, out chan<- isync.DataSync) error {
	select {
	case out <- isync.DataSync{FlagData: *h.live.Load(), Source: h.uri}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start hands over the flag set Open validated; the provider's Init waits
// for it. It reports false on shutdown.
func (h *handoff) start(ctx context.Context, out chan<- isync.DataSync) bool {
	if !h.send(ctx, out, *h.live.Load(), 1) {
		return false
	}
	h.ready.Store(true)
	return true
}

// apply hands over a validated flag set and, once the provider has applied
// it, refreshes the Source. It reports false on shutdown.
func (h *handoff) apply(ctx context.Context, out chan<- isync.DataSync, data string, file *File) bool {
	if !h.send(ctx, out, data, cap(out)+2) {
		return false
	}
	h.live.Store(&data)
	h.reloaded(file)
	return true
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
// they emit no events. The cost is parsing a small flag set twice more per
// reload.
func (h *handoff) send(ctx context.Context, out chan<- isync.DataSync, data string, n int) bool {
	msg := isync.DataSync{FlagData: data, Source: h.uri}
	for range n {
		select {
		case out <- msg:
		case <-ctx.Done():
			return false
		case <-h.quit.Done():
			return false
		}
	}
	return true
}
