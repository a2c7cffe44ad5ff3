package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	isync "github.com/open-feature/flagd/core/pkg/sync"
	flagd "github.com/open-feature/go-sdk-contrib/providers/flagd/pkg"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
)

// Errors from Percent, Current and File.CheckPercent wrap one of these, so
// the caller can count each kind of misconfiguration separately. In every
// case the caller should send the request to the monolith.
var (
	ErrNotFound = errors.New("flag not defined")
	ErrDisabled = errors.New("flag disabled")
	ErrType     = errors.New("flag value is not a number")
	ErrRange    = errors.New("flag value outside 0..100")
	ErrRule     = errors.New("flag targeting rule cannot be run")
	// ErrNoDefault: the flag has no defaultVariant, and no rule placed
	// the request.
	ErrNoDefault = errors.New("flag has no default variant")
	// ErrState: the flag's state is neither ENABLED nor DISABLED (flagd
	// serves it as enabled, whatever was meant).
	ErrState = errors.New("flag state is neither ENABLED nor DISABLED")
	// ErrDuplicate: the flag file defines the flag more than once (the
	// last definition counts). File.CheckPercent only: flagd serves it.
	ErrDuplicate = errors.New("flag defined more than once")
)

// Options configures a Source. Exactly one of File and Flagd names where
// the flags come from.
type Options struct {
	// File is the flag file. The caller passes it absolute; a relative
	// path is resolved against the working directory at Open.
	File string
	// Flagd takes the flags from a flagd daemon instead, so that one edit
	// ramps a whole fleet of proxies.
	Flagd *FlagdOptions
	// StartTimeout bounds how long Open waits for a flagd daemon: to reach
	// it and, in in-process mode, to receive a valid flag set. 0 means 5 s.
	// Unused with File.
	StartTimeout time.Duration
	// Logger receives reloads (Info), rejected flag sets and lost
	// connections (Warn). nil means slog.Default().
	Logger *slog.Logger
	// OnChange is called from the updating goroutine each time new flags
	// are live: Percent and Current already return the new values. It
	// fires for each valid change of the file or the daemon's flag set,
	// when they become valid again after an invalid version, when a lost
	// daemon is reached again, and (rpc mode) when a re-evaluation that
	// missed the daemon succeeds on a retry: after OnReloadError, the next
	// OnChange says the flags are current again. It must not block or
	// call Close.
	OnChange func()
	// OnReloadError is called from the updating goroutine when the file
	// became invalid, unreadable or was deleted, when a daemon sent an
	// invalid flag set, when the connection to the daemon was lost, or
	// when, in rpc mode, re-evaluating the flags after a change did not
	// reach the daemon. The last good flags stay live. It is called once
	// per bad version, per outage or per change, not on every poll,
	// reconnection attempt or retry.
	OnReloadError func(error)
}

// Source evaluates the flags of one flag file or flagd daemon through
// OpenFeature and the flagd provider, and keeps them current as they
// change. It is safe for concurrent use.
type Source struct {
	origin        string // the file or daemon, for logs
	log           *slog.Logger
	onChange      func()
	onReloadError func(error)

	api     *openfeature.EvaluationAPI // own instance, never the global singleton
	client  *openfeature.Client
	updates updater
	// remote: rpc mode, where an evaluation can fail to reach the daemon.
	// Such a failure says nothing about the flag, so it never replaces a
	// handle's last value; the daemon's own errors (see answered) do.
	remote bool

	// mu orders the writers of Flag.state (Flag and a reload), so a slow
	// evaluation cannot overwrite a newer one. Percent never takes it.
	// In rpc mode, where an evaluation is a call to the daemon, no call
	// is made under it (a slow daemon held up every reload's Flag for
	// handles × Timeout): gen, bumped by each refresh, tells a writer
	// whether a newer refresh began while it asked.
	mu      sync.Mutex
	handles map[string]*Flag
	file    *File // the flags the provider holds; nil in rpc mode
	gen     uint64

	closeMu  sync.Mutex
	closed   bool // the API was shut down
	closeErr error
}

// newSource holds what every kind of Source shares; Open fills in the
// rest.
func newSource(opts Options, origin string) *Source {
	s := &Source{
		origin:        origin,
		log:           opts.Logger,
		onChange:      opts.OnChange,
		onReloadError: opts.OnReloadError,
		api:           isolated.NewAPI(),
		handles:       map[string]*Flag{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	// Before the provider starts: its first reload may come before
	// SetProviderAndWait returns.
	s.client = s.api.NewClient()
	return s
}

// Open starts the provider on the flag file or the flagd daemon of opts,
// and the goroutine that keeps the flags current. It returns once every
// flag can be evaluated. A bad file, a daemon that cannot be reached within
// StartTimeout and a daemon whose flag set is invalid are errors that name
// the problem.
func Open(ctx context.Context, opts Options) (*Source, error) {
	switch {
	case opts.File != "" && opts.Flagd != nil:
		return nil, errors.New("flags: both a flag file and a flagd daemon given; use one")
	case opts.Flagd != nil:
		return openFlagd(ctx, opts)
	case opts.File == "":
		return nil, errors.New("flags: no flag file or flagd daemon given")
	}
	path, err := filepath.Abs(opts.File)
	if err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	raw, err := ReadFile(path, MaxFlagFile)
	if err != nil {
		return nil, fmt.Errorf("flag file: %w", err)
	}
	file, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("flag file %s: %w", path, err)
	}

	s := newSource(opts, path)
	s.file = file
	feed := newFileSync(path, raw, s.log, s.reloaded, s.rejected)
	s.updates = feed
	if err := s.startInProcess(ctx, feed, feed.uri); err != nil {
		return nil, fmt.Errorf("flags: flagd provider for %s: %w", path, err)
	}
	return s, nil
}

// startInProcess runs the flagd provider in in-process mode on our own
// sync.ISync and waits until it has applied the first flag set.
func (s *Source) startInProcess(ctx context.Context, feed isync.ISync, uri string) error {
	provider, err := flagd.NewProvider(
		flagd.WithInProcessResolver(),
		flagd.WithCustomSyncProviderAndUri(feed, uri),
		pinConfiguration,
	)
	if err != nil {
		return err
	}
	if err := s.api.SetProviderAndWait(ctx, provider); err != nil {
		_ = s.api.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// pinConfiguration makes the options above the whole configuration: flagd
// reads FLAGD_* environment variables first, and FLAGD_OFFLINE_FLAG_SOURCE_PATH
// would silently switch it to its own file watcher and bypass ours.
func pinConfiguration(c *flagd.ProviderConfiguration) {
	c.OfflineFlagSourcePath = ""
	c.Selector, c.ProviderId = "", "" // only meaningful to a flagd daemon
	// Time for the first sync to be applied. The same value becomes a
	// per-evaluation deadline, which in-process evaluation never reaches.
	c.DeadlineMs = 5000
}

// Close stops the goroutine that keeps the flags current and shuts down
// the OpenFeature API and provider. Handles keep answering from their
// cache; evaluations that need the provider fail. Close is idempotent,
// and a Close whose ctx ended while an update was still running may be
// called again: it waits again, and then shuts the provider down.
func (s *Source) Close(ctx context.Context) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return s.closeErr
	}
	// That goroutine must be gone before the API shuts down: shutdown
	// holds the API lock while it waits for the provider's goroutines,
	// and ours needs that lock to evaluate.
	s.updates.stop()
	select {
	case <-s.updates.stopped():
	case <-ctx.Done():
		return fmt.Errorf("flags: close: waiting for the updates to stop: %w", ctx.Err())
	}
	s.closed = true
	if err := s.api.Shutdown(ctx); err != nil {
		s.closeErr = fmt.Errorf("flags: close: %w", err)
	}
	return s.closeErr
}

// Flag returns the handle for the named flag; the same handle each time.
// A handle stays valid across reloads: a flag missing now (Percent returns
// ErrNotFound) becomes live on the same handle when the file gains it.
// It evaluates the flag once, so call it when compiling the route table,
// not per request.
func (s *Source) Flag(name string) *Flag {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.handles[name]; ok {
		return f
	}
	var st *flagState
	if s.remote {
		// Asked outside the lock. A refresh that began meanwhile did
		// not see this handle, and its change may be newer than this
		// answer: ask again (a third time, keep it; the next refresh
		// sees the handle).
		for try := 0; ; try++ {
			gen := s.gen
			s.mu.Unlock()
			st, _ = s.evaluateState(name)
			s.mu.Lock()
			if f, ok := s.handles[name]; ok {
				return f // another caller made it meanwhile
			}
			if s.gen == gen || try == 2 {
				break
			}
		}
	} else {
		st, _ = s.evaluateState(name)
	}
	f := &Flag{name: name, src: s}
	f.state.Store(st) // unreached: an error, asked again per request
	s.handles[name] = f
	return f
}

// reloaded runs on the updating goroutine once the provider holds a new
// flag set: it refreshes every handle, then tells the caller.
func (s *Source) reloaded(file *File) { s.update(file, true) }

// update refreshes every handle from the flag set the provider holds
// (file is nil in rpc mode, where we do not see the set), then, with
// announce, tells the caller. In rpc mode it returns the error of a
// handle whose evaluation did not reach the daemon; such a handle keeps
// its last answer.
func (s *Source) update(file *File, announce bool) (missed error) {
	if s.remote {
		missed = s.refreshRemote()
	} else {
		s.mu.Lock()
		s.file = file
		missed = s.refresh()
		s.mu.Unlock()
	}
	if note := file.Note(); announce && note != "" {
		s.log.Warn("flags reloaded, but "+note, "source", s.origin)
	}
	if announce {
		s.announce()
	}
	return missed
}

// announce tells the caller that new flags are live.
func (s *Source) announce() {
	s.log.Info("flags reloaded", "source", s.origin)
	if s.onChange != nil {
		s.onChange()
	}
}

// refresh re-evaluates every handle and returns the error of the first
// handle whose evaluation did not reach the daemon (rpc mode). s.mu must
// be held.
func (s *Source) refresh() (missed error) {
	for name, f := range s.handles {
		st, ok := s.evaluateState(name)
		if !ok {
			if missed == nil {
				missed = st.err
			}
			continue // keep the last answer; the caller asks again
		}
		f.state.Store(st)
	}
	return missed
}

// refreshRemote is refresh in rpc mode: each handle's call to the daemon
// is made without s.mu, and its answer is kept only while no newer
// refresh has begun.
func (s *Source) refreshRemote() (missed error) {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	handles := make([]*Flag, 0, len(s.handles))
	for _, f := range s.handles {
		handles = append(handles, f)
	}
	s.mu.Unlock()
	for _, f := range handles {
		st, ok := s.evaluateState(f.name)
		if !ok {
			if missed == nil {
				missed = st.err
			}
			continue // keep the last answer; the caller asks again
		}
		s.mu.Lock()
		if s.gen == gen {
			f.state.Store(st)
		}
		s.mu.Unlock()
	}
	return missed
}

// rejected runs on the updating goroutine when the source is not usable.
func (s *Source) rejected(err error) {
	s.log.Warn("flags not updated; keeping the last good flags", "source", s.origin, "error", err)
	if s.onReloadError != nil {
		s.onReloadError(err)
	}
}

// Check reports whether the flag can serve as a traffic percentage in the
// current flag set, for a validate step before deployment. With a file or
// an in-process daemon it checks what File.CheckPercent checks: the flag
// exists, every variant is a number within 0..100, and its targeting rule
// can be run. In rpc mode the daemon shows only the answer for an empty
// context, so only that variant is checked. A disabled flag passes, as
// with CheckPercent. The error wraps ErrNotFound, ErrRule, ErrType or
// ErrRange, or says why the daemon did not answer.
func (s *Source) Check(name string) error {
	if err := s.check(name); !errors.Is(err, ErrDisabled) {
		return err
	}
	return nil
}

// Disabled reports whether the flag is DISABLED (Check passes it: it is
// valid, but every evaluation fails).
func (s *Source) Disabled(name string) bool {
	return errors.Is(s.check(name), ErrDisabled)
}

// check is Check with a disabled flag reported as ErrDisabled.
func (s *Source) check(name string) error {
	if s.remote {
		// A call to the daemon, made without s.mu (see Source.mu).
		d, err := s.evaluate(context.Background(), name, openfeature.EvaluationContext{})
		_, err = percent(name, d, err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		if s.file.Disabled(name) {
			return fmt.Errorf("%w: %q", ErrDisabled, name)
		}
		return s.file.CheckPercent(name)
	}
	d, err := s.evaluate(context.Background(), name, openfeature.EvaluationContext{})
	_, err = percent(name, d, err)
	return err
}

// Attrs are the request attributes a targeting rule can read, as "route",
// "method" and "path" (the targeting key is passed separately).
type Attrs struct {
	Route  string // route name from the config, not the URL
	Method string
	Path   string
}

// Flag is a handle on one flag of a Source.
type Flag struct {
	name  string
	src   *Source
	state atomic.Pointer[flagState]
}

// flagState is a flag's evaluation with an empty context in the current
// flag set, and whether that answer holds for every request.
type flagState struct {
	value float64
	err   error
	// perRequest: the flag has a targeting rule, so the answer depends on
	// the key and attributes and Percent must ask the provider.
	perRequest bool
}

// Name returns the flag's name.
func (f *Flag) Name() string { return f.name }

// Percent returns the share of traffic (0..100) for a request with the
// given sticky key and attributes, or an error wrapping ErrNotFound,
// ErrDisabled, ErrNoDefault, ErrType or ErrRange (or a provider error).
//
// A flag without a targeting rule has one value per flag set, so Percent
// returns it from a cache filled at each reload: no allocation, a few
// nanoseconds. A flag with targeting is evaluated through OpenFeature with
// key as the targeting key (roughly 10 µs and 130 allocations: keep rules
// for the routes that need them).
func (f *Flag) Percent(ctx context.Context, key string, attrs Attrs) (float64, error) {
	st := f.state.Load()
	if !st.perRequest {
		return st.value, st.err
	}
	ec := openfeature.NewEvaluationContext(key, map[string]any{
		"route":  attrs.Route,
		"method": attrs.Method,
		"path":   attrs.Path,
	})
	d, err := f.src.evaluate(ctx, f.name, ec)
	return percent(f.name, d, err)
}

// Current returns the flag's value for an empty evaluation context (no key,
// no attributes) in the latest flag set, for status pages and gauges. For a
// flag with targeting this is the rule's fallback, not what every request
// gets. It never evaluates.
func (f *Flag) Current() (float64, error) {
	st := f.state.Load()
	return st.value, st.err
}

// Uniform reports whether every request gets Current(): the flag has no
// targeting rule.
func (f *Flag) Uniform() bool { return !f.state.Load().perRequest }

// evaluateState evaluates a flag with an empty context and decides whether
// the answer can be cached. ok is false in rpc mode when the evaluation
// did not reach the daemon (st then holds that error, for a new handle).
// An error the daemon answered is the flag's state like any other
// answer; one from a targeting rule cannot be cached, so the flag is then
// evaluated per request, as in in-process mode. s.mu must be held (it
// guards s.file), except in rpc mode, where there is no file.
func (s *Source) evaluateState(name string) (st *flagState, ok bool) {
	if s.file != nil {
		if err := s.file.flags[name].stateError(name); err != nil {
			return &flagState{err: err}, true // for every request
		}
	}
	d, err := s.evaluate(context.Background(), name, openfeature.EvaluationContext{})
	v, perr := percent(name, d, err)
	st = &flagState{value: v, err: perr, perRequest: !s.cacheable(name, d)}
	return st, !s.remote || err == nil || answered(d)
}

// cacheable reports whether an empty-context evaluation is the answer for
// every request. The reason comes from the same store read as the value,
// so it cannot disagree with it; the parsed file is only needed for a type
// mismatch and a missing variant, which flagd reports without saying
// whether a rule was involved.
func (s *Source) cacheable(name string, d openfeature.FloatEvaluationDetails) bool {
	switch {
	case d.ErrorCode == "" && d.Reason == openfeature.StaticReason:
		return true // no targeting rule in the provider's store
	case d.ErrorCode == "" && d.Reason == openfeature.DisabledReason:
		return true // flagd never runs the rule of a disabled flag
	case d.ErrorCode == openfeature.FlagNotFoundCode:
		return true
	case d.ErrorCode == openfeature.TypeMismatchCode && s.file != nil,
		// No variant: a flag without "defaultVariant". With no rule, no
		// request gets one either, so it is unusable for all alike (and
		// logged as such), not a rule's to decide per request.
		d.ErrorCode == "" && d.Variant == "" && s.file != nil:
		fl, ok := s.file.flags[name]
		return ok && !fl.targeted
	}
	return false
}

// evaluate asks the provider. A panic in a targeting rule (JsonLogic is
// third-party code fed with user input) becomes an error, because this
// runs on the request path.
func (s *Source) evaluate(ctx context.Context, name string, ec openfeature.EvaluationContext) (d openfeature.FloatEvaluationDetails, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("flag %q: evaluation panicked: %v", name, r)
		}
	}()
	return s.client.FloatValueDetails(ctx, name, 0, ec)
}

// percent turns an OpenFeature result into a percentage or a typed error.
// The flagd provider reports a disabled flag as a success with the default
// value, and does not check the range: both are checked here.
func percent(name string, d openfeature.FloatEvaluationDetails, err error) (float64, error) {
	if err != nil {
		switch d.ErrorCode {
		case openfeature.FlagNotFoundCode:
			return 0, fmt.Errorf("%w: %q", ErrNotFound, name)
		case openfeature.TypeMismatchCode:
			return 0, fmt.Errorf("%w: flag %q variant %q", ErrType, name, d.Variant)
		}
		return 0, fmt.Errorf("flag %q: %w", name, err)
	}
	if d.Reason == openfeature.DisabledReason {
		return 0, fmt.Errorf("%w: %q", ErrDisabled, name)
	}
	if d.Variant == "" {
		// flagd's fallback to the caller's default value.
		return 0, fmt.Errorf(`%w: flag %q: no "defaultVariant", and no targeting rule placed the request`, ErrNoDefault, name)
	}
	if !inRange(d.Value) {
		return 0, fmt.Errorf("%w: flag %q variant %q is %v", ErrRange, name, d.Variant, d.Value)
	}
	return d.Value, nil
}
