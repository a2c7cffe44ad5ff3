package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strangler-proxy/strangler/flags"
)

// Check cross-checks a validated config against its flag source: the flag
// file must load (or the flagd daemon answer), and each route's flag, where
// present, must hold percentages. A route whose flag is not there yet is
// only a warning: its traffic stays on the monolith until the flag
// appears, which is how a route is usually introduced. A route's flag that
// is there but cannot be a percentage is a problem of the returned
// ConfigError, whose FlagsOnly then says that the source itself is fine.
func Check(cfg *Config) (warnings []string, err error) {
	return check(cfg, cfg.AdminListen, nil)
}

// CheckAlongside is Check of a config that LoadConfig refused with
// problems: the flags of the routes that have no problem of their own are
// checked too, so that one run of validate names every problem instead
// of the flag file's after the config's are fixed. Nothing is checked when
// a problem could change which flags are meant: one of the document as a
// whole, the flag source or the routes list. With no problems it is Check.
func CheckAlongside(cfg *Config, problems []string) (warnings []string, err error) {
	broken := map[int]bool{}
	for _, p := range problems {
		if whichFlagsProblem(p) {
			return nil, nil
		}
		if i, ok := routeOf(p); ok {
			broken[i] = true
		}
	}
	return check(cfg, cfg.AdminListen, broken)
}

// whichFlagsProblem reports whether a config problem could change which
// flags the routes mean: one of the document as a whole, the flag source
// or the routes list.
func whichFlagsProblem(p string) bool {
	return strings.HasPrefix(p, "config:") || strings.HasPrefix(p, "flags") ||
		strings.HasPrefix(p, "routes:") || strings.HasPrefix(p, "routes ")
}

// routeOf is the index of the route a problem is about: "routes[2].flag:
// ..." and "routes[2]: ..." are about routes[2].
func routeOf(problem string) (int, bool) {
	rest, ok := strings.CutPrefix(problem, "routes[")
	if !ok {
		return 0, false
	}
	n, rest, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || rest == "" || !strings.ContainsRune(":. ", rune(rest[0])) {
		return 0, false
	}
	return i, true
}

// check is Check with the admin API listening on adminListen (a reload
// judges the address the process listens on, which admin_listen changes
// only at a restart, not the one the new file names), passing over the
// routes skip holds.
func check(cfg *Config, adminListen string, skip map[int]bool) (warnings []string, err error) {
	lookup, note, done, err := flagLookup(cfg)
	if err != nil {
		return nil, &ConfigError{Problems: []string{err.Error()}}
	}
	defer done()
	if note != "" {
		// Not "flags.file: …", which would be given the config's line
		// (withLines) beside the flag file's.
		warnings = append(warnings, fmt.Sprintf("flag file %s: %s", cfg.FlagFile(), note))
	}
	if cfg.AdminTokenFile == "" && !loopback(adminListen) {
		where := adminListen
		if adminListen != cfg.AdminListen {
			where += " (where the admin API listens until a restart)"
		}
		warnings = append(warnings, fmt.Sprintf("admin_listen: %s is reachable from other hosts and admin_token_file is not set: anyone who reaches it can read /api/routes and /api/diffs (response samples)", where))
	}
	var ce ConfigError
	for i, r := range cfg.Routes {
		if skip[i] {
			continue
		}
		// The shadow flag is optional: without it, shadow.percent applies.
		switch present, err := lookup(r.Shadow.Flag); {
		case errors.Is(err, flags.ErrDisabled):
			warnings = append(warnings, fmt.Sprintf("routes[%d].shadow.flag: flag %q is DISABLED in %s: route %q compares nothing until it is enabled", i, r.Shadow.Flag, cfg.flagSource(), r.Name))
		case present && err != nil:
			ce.add("routes[%d].shadow.flag: %v", i, err)
		}
		present, err := lookup(r.Flag)
		if !present {
			warnings = append(warnings, fmt.Sprintf("routes[%d].flag: flag %q is not in %s: route %q stays on the monolith until it is", i, r.Flag, cfg.flagSource(), r.Name))
			continue
		}
		if errors.Is(err, flags.ErrDisabled) {
			warnings = append(warnings, fmt.Sprintf("routes[%d].flag: flag %q is DISABLED in %s: route %q stays on the monolith until it is enabled", i, r.Flag, cfg.flagSource(), r.Name))
			continue
		}
		if err != nil {
			ce.add("routes[%d].flag: %v", i, err)
		}
	}
	ce.flagsOnly = true
	ce.Problems = withLines(cfg.raw, ce.Problems)
	return withLines(cfg.raw, warnings), ce.err()
}

// flagLookup reports, for a flag name, whether the source has it and what
// is wrong with it as a percentage; flags.ErrDisabled for a DISABLED flag,
// which is valid but sends its route to the monolith (a warning).
func flagLookup(cfg *Config) (lookup func(string) (bool, error), note string, done func(), err error) {
	if cfg.Flags.Flagd == nil {
		f, err := flags.Load(cfg.FlagFile())
		if err != nil {
			return nil, "", nil, fmt.Errorf("flags.file: %w", err)
		}
		return func(name string) (bool, error) {
			if f.Disabled(name) {
				return true, flags.ErrDisabled
			}
			err := f.CheckPercent(name)
			if l := f.Line(name); err != nil && l > 0 && !errors.Is(err, flags.ErrDuplicate) {
				// The problem is in the flag file: its place there, before
				// the config's place that names the flag (withLines).
				err = fmt.Errorf("%w (%s line %d)", err, filepath.Base(cfg.FlagFile()), l)
			}
			return f.Has(name), err
		}, f.Note(), func() {}, nil
	}
	opts := cfg.flagOptions()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := flags.Open(context.Background(), opts)
	if err != nil {
		// The flags package's own "flags: " would say it twice.
		return nil, "", nil, errors.New("flags.flagd: " + strings.TrimPrefix(err.Error(), "flags: "))
	}
	lookup = func(name string) (bool, error) {
		if src.Disabled(name) {
			return true, flags.ErrDisabled
		}
		err := src.Check(name)
		return !errors.Is(err, flags.ErrNotFound), err
	}
	return lookup, "", func() { src.Close(context.Background()) }, nil
}

// loopback reports whether addr listens only on the loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
