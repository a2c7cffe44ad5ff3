// Package flags tells the proxy what share of a route's traffic goes to the
// new service. The share is an OpenFeature flag, evaluated by the flagd
// provider in in-process mode from a local flag file, so the targeting
// rules below work here and the same file can later be served to a fleet
// by a flagd daemon.
//
// # The flag file
//
// The file is flagd's flag-definition JSON. Each flag is a number from 0
// to 100, the percentage of requests sent to the new service:
//
//	{
//	  "flags": {
//	    "orders-percent": {
//	      "state": "ENABLED",
//	      "variants": {"on": 10},
//	      "defaultVariant": "on"
//	    },
//	    "payments-percent": {
//	      "state": "ENABLED",
//	      "variants": {"all": 100, "some": 25, "none": 0},
//	      "defaultVariant": "some",
//	      "targeting": {"if": [
//	        {"in": [{"var": "targetingKey"}, ["qa-user-1", "qa-user-2"]]}, "all",
//	        {"==": [{"var": "method"}, "DELETE"]}, "none",
//	        null
//	      ]}
//	    }
//	  }
//	}
//
// "state" is "ENABLED" or "DISABLED"; "defaultVariant" must name one of
// "variants". "targeting" is an optional JsonLogic rule that returns a
// variant name, or null for the default. A rule reads the request's sticky
// key as "targetingKey" and the attributes "route" (the route's name),
// "method" and "path". flagd's "fractional" operator splits keys into
// stable buckets, for example
//
//	{"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
//	  ["all", 10], ["none", 90]]}
//
// "$evaluators" and "metadata" work as in flagd. Only the JSON form with
// "flags" as an object is accepted (not YAML, not a "flags" array).
//
// A disabled flag, a missing flag, a value that is not a number and a
// number outside 0..100 are errors (ErrDisabled, ErrNotFound, ErrType,
// ErrRange): the proxy then sends the request to the monolith and counts
// the error. File.CheckPercent finds them before deployment.
//
// # Cost and caching
//
// One flagd evaluation costs 3 to 13 µs and 40 to 130 allocations, about
// as much as proxying the request. A flag without a targeting rule has one
// value per flag set, so a Source evaluates it once when the file is
// loaded and Percent returns that value (or error) from an atomic pointer:
// no lock, no allocation. A flag with a targeting rule is evaluated on
// every call. The cache is refreshed only after the provider has applied
// the new file, so it never runs ahead of, or falls behind, the provider.
//
// # Reloading
//
// A Source watches the file's directory, so an edit in place, a rename
// over the file (what Ramp and most editors do), a delete and recreate,
// and a Kubernetes ConfigMap update (kubelet swaps the ..data symlink) are
// all picked up, normally within 100 ms (the watcher waits for 50 ms of
// quiet, then reads). A poll every second catches anything the watch
// misses, such as a symlink into some other directory. A file that is
// empty, half-written, not valid, or gone is not passed to the provider:
// the last good flags stay live, the problem is logged and reported to
// Options.OnReloadError, and the file is applied once it is valid again.
// A slow in-place write can still be caught half-done and reported once;
// prefer writing a temporary file and renaming it, as Ramp does.
//
// The flagd provider's in-process service logs to stderr through its own
// zap logger (JSON lines: a few at Open and Close, a schema warning when
// a file is valid for flagd but not by its schema, an error per evaluation
// whose targeting rule fails). It ignores the provider's WithLogger option
// in this mode, so those lines cannot be routed to slog or silenced.
//
// # Ramp
//
// Ramp changes one flag's percentage in the file: only the default
// variant's number changes, every other byte stays, and the file is
// replaced atomically. It refuses a symlinked file, which is how a
// ConfigMap is mounted; change the ConfigMap instead.
package flags
