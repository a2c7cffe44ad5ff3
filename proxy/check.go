package proxy

import (
	"fmt"

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
