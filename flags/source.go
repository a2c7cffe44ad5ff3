package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

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
)

// Options configures a Source.
type Options struct {
	// File is the flag file. The caller passes it absolute; a relative
	// path is resolved against the working directory at Open.
	File string
	// Logger receives reloads (Info) and rejected files (Warn).
	// nil means slog.Default().
	Logger *slog.Logger
	// OnChange is called from the watcher goroutine each time the file
	// changed to valid content and the new flags are live: Percent and
	// Current already return the new values. It also fires when the file
	// returns to valid content after an invalid one. It must not block
	// or call Close.
	OnChange func()
	// OnReloadError is called from the watcher goroutine when the file
	// became invalid, unreadable or was deleted. The last good flags stay
	// live. It is called once per bad version, not on every poll.
	OnReloadError func(error)
}

// Source evaluates the flags of one flag file through OpenFeature and the
// flagd provider in in-process mode, and keeps them current as the file
// changes. It is safe for concurrent use.
type Source struct {
	path          string
	log           *slog.Logger
	onChange      func()
	onReloadError func(error)

	api    *openfeature.EvaluationAPI // own instance, never the global singleton
	client *openfeature.Client
	feed   *fileSync

	// mu orders the writers of Flag.state (Flag and a reload), so a slow
	// evaluation cannot overwrite a newer one. Percent never takes it.
	mu      sync.Mutex
	handles map[string]*Flag
	file    *File // the flags the provider holds

	closeOnce sync.Once
	closeErr  error
}

// Open loads and validates the flag file, starts the provider and the
// watcher, and returns once every flag in the file can be evaluated. A bad
// file is an error that names the problem.
func Open(ctx context.Context, opts Options) (*Source, error) {
	if opts.File == "" {
		return nil, errors.New("flags: no flag file given")
	}
	path, err := filepath.Abs(opts.File)
	if err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("flag file: %w", err)
	}
	file, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("flag file %s: %w", path, err)
	}

	s := &Source{
		path:          path,
		log:           opts.Logger,
		onChange:      opts.OnChange,
		onReloadError: opts.OnReloadError,
		api:           isolated.NewAPI(),
		handles:       map[string]*Flag{},
		file:          file,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.feed = newFileSync(path, raw, s.log, s.reloaded, s.rejected)
	// Before the provider starts: its first reload may come before
	// SetProviderAndWait returns.
	s.client = s.api.NewClient()

	provider, err := flagd.NewProvider(
		flagd.WithInProcessResolver(),
		flagd.WithCustomSyncProviderAndUri(s.feed, s.feed.uri),
		pinConfiguration,
	)
	if err != nil {
		return nil, fmt.Errorf("flags: flagd provider: %w", err)
	}
	if err := s.api.SetProviderAndWait(ctx, provider); err != nil {
		_ = s.api.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("flags: flagd provider for %s: %w", path, err)
	}
	return s, nil
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

// Close stops the watcher and shuts down the OpenFeature API and provider.
// Handles keep answering from their cache; evaluations that need the
// provider fail. Close is idempotent.
func (s *Source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		// The watcher must be gone before the API shuts down: shutdown
		// holds the API lock while it waits for the watcher, and the
		// watcher needs that lock to evaluate.
		close(s.feed.stop)
		select {
		case <-s.feed.done:
		case <-ctx.Done():
			s.closeErr = fmt.Errorf("flags: close: waiting for the watcher: %w", ctx.Err())
			return
		}
		if err := s.api.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("flags: close: %w", err)
		}
	})
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
	f := &Flag{name: name, src: s}
	f.state.Store(s.evaluateState(name))
	s.handles[name] = f
	return f
}

// reloaded runs on the watcher goroutine once the provider's store holds
// the new file: it refreshes every handle, then tells the caller.
func (s *Source) reloaded(file *File) {
	s.mu.Lock()
	s.file = file
	for name, f := range s.handles {
		f.state.Store(s.evaluateState(name))
	}
	s.mu.Unlock()
	s.log.Info("flag file reloaded", "path", s.path)
	if s.onChange != nil {
		s.onChange()
	}
}

// rejected runs on the watcher goroutine when the file is not usable.
func (s *Source) rejected(err error) {
	s.log.Warn("flag file not applied; keeping the last good flags", "path", s.path, "error", err)
	if s.onReloadError != nil {
		s.onReloadError(err)
	}
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
// ErrDisabled, ErrType or ErrRange (or a provider error).
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

// evaluateState evaluates a flag with an empty context and decides whether
// the answer can be cached. s.mu must be held (it guards s.file).
func (s *Source) evaluateState(name string) *flagState {
	d, err := s.evaluate(context.Background(), name, openfeature.EvaluationContext{})
	v, err := percent(name, d, err)
	return &flagState{value: v, err: err, perRequest: !s.cacheable(name, d)}
}

// cacheable reports whether an empty-context evaluation is the answer for
// every request. The reason comes from the same store read as the value,
// so it cannot disagree with it; the parsed file is only needed for a type
// mismatch, which flagd reports without saying whether a rule was involved.
func (s *Source) cacheable(name string, d openfeature.FloatEvaluationDetails) bool {
	switch {
	case d.ErrorCode == "" && d.Reason == openfeature.StaticReason:
		return true // no targeting rule in the provider's store
	case d.ErrorCode == "" && d.Reason == openfeature.DisabledReason:
		return true // flagd never runs the rule of a disabled flag
	case d.ErrorCode == openfeature.FlagNotFoundCode:
		return true
	case d.ErrorCode == openfeature.TypeMismatchCode:
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
		// flagd's fallback to the caller's default value; Load rejects
		// flags that could produce it.
		return 0, fmt.Errorf("flag %q: no variant selected", name)
	}
	if !inRange(d.Value) {
		return 0, fmt.Errorf("%w: flag %q variant %q is %v", ErrRange, name, d.Variant, d.Value)
	}
	return d.Value, nil
}
