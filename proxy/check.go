package proxy

import (
	"fmt"
	"net"

	"github.com/strangler-proxy/strangler/flags"
)

// Check cross-checks a validated config against its flag file: the file
// must load, and each route's flag, where present, must hold percentages.
// A route whose flag is not in the file yet is only a warning: its traffic
// stays on the monolith until the flag appears, which is how a route is
// usually introduced.
func Check(cfg *Config) (warnings []string, err error) {
	f, err := flags.Load(cfg.FlagFile())
	if err != nil {
		return nil, &ConfigError{Problems: []string{fmt.Sprintf("flags.file: %v", err)}}
	}
	if cfg.AdminTokenFile == "" && !loopback(cfg.AdminListen) {
		warnings = append(warnings, fmt.Sprintf("admin_listen: %s is reachable from other hosts and admin_token_file is not set: anyone who reaches it can read /api/routes and /api/diffs (response samples)", cfg.AdminListen))
	}
	var ce ConfigError
	for i, r := range cfg.Routes {
		// The shadow flag is optional: without it, shadow.percent applies.
		if f.Has(r.Shadow.Flag) {
			if err := f.CheckPercent(r.Shadow.Flag); err != nil {
				ce.add("routes[%d].shadow.flag: %v", i, err)
			}
		}
		if !f.Has(r.Flag) {
			warnings = append(warnings, fmt.Sprintf("routes[%d].flag: flag %q is not in %s: route %q stays on the monolith until it is", i, r.Flag, cfg.Flags.File, r.Name))
			continue
		}
		if err := f.CheckPercent(r.Flag); err != nil {
			ce.add("routes[%d].flag: %v", i, err)
		}
	}
	return warnings, ce.err()
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
