package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/strangler-proxy/strangler/flags"
)

// Reload validates cfg completely, builds a new route table and swaps it
// in atomically: requests in flight finish on the table they started with,
// new ones use the new one. A config that fails changes nothing. Flag
// watching, the shadow pool, what routes learned (noise, samples,
// ejections) and metrics carry over.
//
// Some settings are bound to things that live as long as the process
// (listeners, the flag source, the pool, the HTTP server's limits); a
// change to them is logged as needing a restart, and the rest is applied.
// A change of flag source is refused: routes would read flags the running
// source does not watch.
func (s *Server) Reload(cfg *Config) error {
	// SIGHUP and the file watcher may reload at once: one at a time, so
	// that each table is installed whole.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if !cfg.validated {
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	// What is in force: the process's settings are the ones it started
	// with, whatever reloads asked for since.
	old := s.cfg
	if cfg.FlagFile() != old.FlagFile() || !reflect.DeepEqual(cfg.Flags.Flagd, old.Flags.Flagd) {
		return &ConfigError{Problems: []string{"flags: changing the flag source needs a restart"}}
	}
	// The admin API listens where the process started (admin_listen takes
	// a restart). Beyond loopback, a reload that drops its token would open
	// /api/* (response samples) at once to whoever reaches that address,
	// even if the new config moves it to loopback.
	if cur := s.table.Load().cfg; cur.AdminTokenFile != "" && cfg.AdminTokenFile == "" && !loopback(old.AdminListen) {
		return &ConfigError{Problems: []string{fmt.Sprintf(
			"admin_token_file: the admin API listens on %s until a restart, beyond loopback, and would lose its token; restart with the new config instead", old.AdminListen)}}
	}
	// limits stay as the process started: a sticky header the running
	// limits drop is refused even if the new file would allow it.
	var ce ConfigError
	for i, r := range cfg.Routes {
		if kind, name, err := parseSticky(r.Sticky); err == nil && kind == stickyHeader {
			checkStickyHeader(&ce, fmt.Sprintf("routes[%d].sticky", i), name, old.Limits.UnderscoreHeaders)
		}
	}
	if err := ce.err(); err != nil {
		return err
	}
	// The flag source is watched on its own and keeps its last good flags
	// when a change to it is refused, so its state does not block a config
	// reload: with flagd down or the flag file mid-edit, taking a route out
	// of the config may be the one way left to roll it back. What Check
	// finds is logged; a route whose flag is unusable stays on the
	// monolith, and the flag's errors are counted as they are met. Its
	// warnings are logged once the config is in force, as at startup: a
	// route added with a flag the file lacks stays on the monolith, and
	// the operator who sent SIGHUP is told so.
	warnings, err := check(cfg, old.AdminListen, nil)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				s.log.Warn("config reload: a flag is unusable; the config is applied, and routes whose flag cannot be read stay on the monolith", "problem", p)
			}
		}
	}
	for _, c := range []struct {
		key      string
		old, new any
	}{
		{"listen", old.Listen, cfg.Listen},
		{"admin_listen", old.AdminListen, cfg.AdminListen},
		{"limits", old.Limits, cfg.Limits},
		{"shadow_workers", old.ShadowWorkers, cfg.ShadowWorkers},
		{"shadow_queue", old.ShadowQueue, cfg.ShadowQueue},
		{"shadow_memory", old.ShadowMemory, cfg.ShadowMemory},
		{"shutdown_timeout", old.ShutdownTimeout, cfg.ShutdownTimeout},
	} {
		if !reflect.DeepEqual(c.old, c.new) {
			s.log.Warn("config reload: this change needs a restart; the old value stays in force", "key", c.key)
		}
	}
	t, err := s.compile(cfg)
	if err != nil {
		return err
	}
	s.install(t)
	for _, w := range warnings {
		s.log.Warn("config reload: applied with a warning", "warning", w)
	}
	return nil
}

// ReloadFile loads the config file and reloads it, recording the outcome
// in the reload metrics and the log.
func (s *Server) ReloadFile(path string) error {
	b, err := flags.ReadFile(path, flags.MaxConfigFile)
	if err != nil {
		return s.reloadOutcome(path, nil, nil, err, true)
	}
	return s.reloadFile(path, b)
}

// reloadFile is ReloadFile of b, read from path: for the watcher, the
// content it saw settle, not what the file holds a moment later.
func (s *Server) reloadFile(path string, b []byte) error {
	cfg, err := loadConfigBytes(path, b)
	if err == nil {
		err = s.Reload(cfg)
	}
	// The running config's own content, refused now (a file it names went
	// missing): the file going back to it says nothing.
	putBack := err == nil || !bytes.Equal(b, s.table.Load().cfg.raw)
	return s.reloadOutcome(path, b, cfg, err, putBack)
}

// reloadOutcome records a reload of cfg (read as raw) that ended with err
// in the reload metrics and the log, and returns err. After a refusal,
// putBack says whether the file going back to the running config clears
// the gauge.
func (s *Server) reloadOutcome(path string, raw []byte, cfg *Config, err error, putBack bool) error {
	s.reloadStateMu.Lock()
	defer s.reloadStateMu.Unlock()
	s.refusedRaw = nil
	if err != nil {
		s.refusedRaw = raw
		s.metrics.reloadErrors.Inc()
		s.metrics.reloadOK.Set(0)
		s.reloadFailed = putBack
		var ce *ConfigError
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				s.log.Error("config reload refused; the running config stays", "path", path, "problem", p)
			}
		} else {
			s.log.Error("config reload refused; the running config stays", "path", path, "error", err)
		}
		return err
	}
	s.metrics.reloadOK.Set(1)
	s.reloadFailed = false
	s.metrics.reloadTime.SetToCurrentTime()
	s.log.Info("config reloaded", "path", path, "routes", len(cfg.Routes))
	return nil
}

// clearFailedReload sets the reload gauge back to 1 when a refused change
// left it at 0 and the config file holds the running config again.
func (s *Server) clearFailedReload(path string) {
	s.reloadStateMu.Lock()
	defer s.reloadStateMu.Unlock()
	if s.reloadFailed {
		s.reloadFailed = false
		s.metrics.reloadOK.Set(1)
		s.log.Info("config file holds the running config again", "path", path)
	}
}

// refusedByReload reports whether b, just read from the file, is what the
// last reload refused; once the file holds anything else, that refusal is
// forgotten, as the watcher forgets its own: written again (whatever made
// it fail fixed meanwhile), the same content is tried again.
func (s *Server) refusedByReload(b []byte) bool {
	s.reloadStateMu.Lock()
	defer s.reloadStateMu.Unlock()
	if s.refusedRaw != nil && !bytes.Equal(b, s.refusedRaw) {
		s.refusedRaw = nil
	}
	return s.refusedRaw != nil
}

// WatchConfig reloads the config file whenever its content differs from
// the running config's, until ctx ends. It polls: a config file is small,
// and polling sees every way of changing it (in place, rename, a
// Kubernetes ConfigMap's symlink swap) without a watch that can be lost. A
// change is applied once the content has been the same for two polls, so a
// write in progress is not read as a broken config, and that content is
// what is reloaded. A refused content is not retried while the file keeps
// it (one error logged, not one a poll), but is once the file has held
// something else: refused, replaced, then written again once whatever
// made it fail (a missing admin_token_file) is fixed, it is applied.
func (s *Server) WatchConfig(ctx context.Context, path string, every time.Duration) {
	var pending, refused []byte
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		b, err := flags.ReadFile(path, flags.MaxConfigFile)
		if err == nil && refused != nil && !bytes.Equal(b, refused) {
			refused = nil
		}
		if err == nil && s.refusedByReload(b) {
			refused = b // refused already (SIGHUP): logged and counted once
		}
		if err == nil && bytes.Equal(b, s.table.Load().cfg.raw) {
			pending, refused = nil, nil
			// Put back as it was after a refused change: the file and
			// the proxy agree again, and the failed-reload alert clears.
			s.clearFailedReload(path)
			continue
		}
		if err != nil || refused != nil {
			pending = nil
			continue
		}
		if !bytes.Equal(b, pending) {
			pending = b
			continue
		}
		pending = nil
		if s.reloadFile(path, b) != nil { // logged and counted
			refused = b
		}
	}
}
