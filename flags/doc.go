// Package flags tells the proxy what share of a route's traffic goes to the
// new service. The share is an OpenFeature flag, evaluated by the flagd
// provider from a local flag file (Options.File) or, for a fleet of
// proxies that must ramp together, from a flagd daemon (Options.Flagd; see
// "A fleet on one flagd daemon" below). The flag format is the same.
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
// "$evaluators" and "metadata" work as in flagd, except that an evaluator
// may be neither empty ("{ }" included) nor refer to another evaluator:
// flagd would run the first as a rule that fails every evaluation, and
// resolve the second or not depending on Go's map order, at each load.
// Only the JSON form with "flags" as an object is accepted (not YAML, not
// a "flags" array).
//
// A disabled flag, a missing flag, a value that is not a number, a
// number outside 0..100 and a targeting rule that cannot be run (a
// {"$ref"} no evaluator replaces) are errors (ErrDisabled, ErrNotFound,
// ErrType, ErrRange, ErrRule): the proxy then sends the request to the
// monolith and counts the error. File.CheckPercent finds them before
// deployment.
//
// # Cost and caching
//
// One flagd evaluation costs 3 to 13 µs and 40 to 130 allocations, about
// as much as proxying the request. A flag without a targeting rule has one
// value per flag set, so a Source evaluates it once when a flag set is
// loaded and Percent returns that value (or error) from an atomic pointer:
// no lock, no allocation. A flag with a targeting rule is evaluated on
// every call. The cache is refreshed only after the provider has applied
// the new flag set, so it never runs ahead of, or falls behind, the
// provider. Source.Check (or File.CheckPercent) finds unusable flags
// before deployment.
//
// # Reloading the file
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
// A problem is reported only when a second look, 50 ms after the first
// with no change to the flag file (itself, what it links to, or
// Kubernetes' ..data) in between, finds the same: an edit in
// place is empty for a moment, and an editor that moves the original
// aside leaves no file for one. A write slower than that can still be
// caught half-done and reported once; prefer writing a temporary file and
// renaming it, as Ramp does.
//
// The flagd provider's in-process service logs to stderr through its own
// zap logger (JSON lines: a few at Open and Close, a schema warning when
// a file is valid for flagd but not by its schema, an error per evaluation
// whose targeting rule fails). It ignores the provider's WithLogger option
// in this mode, so those lines cannot be routed to slog or silenced. The
// same holds for a daemon in in-process mode; in rpc mode the provider
// logs to Options.Logger.
//
// # A fleet on one flagd daemon
//
// With Options.Flagd every proxy takes its flags from a flagd daemon, so
// one edit of the daemon's flags ramps them all, normally within
// milliseconds. There are two modes:
//
//   - "in-process" (the default; port 8015, flagd's sync service): the
//     daemon streams the whole flag set to each proxy on every change, and
//     the proxy evaluates locally exactly as with a file, caching included.
//     Each set is validated like a file; a bad one is not applied (the
//     last good flags stay, OnReloadError is called).
//   - "rpc" (port 8013, flagd's evaluation service): each evaluation that
//     cannot be cached is a call to the daemon, about 250 µs and 350
//     allocations on loopback (client and daemon counted together) plus
//     the network's round trip, bounded by FlagdOptions.Timeout; the
//     provider's HTTP/1.1 transport keeps only 2 idle connections, so
//     concurrent calls also open connections. Flags without targeting are
//     cached as above, re-evaluated after each configuration_change the
//     daemon announces on its event stream. If a re-evaluation does not
//     reach the daemon, the flags it missed keep their last values, it is
//     reported to OnReloadError once, and it is retried (waiting
//     RetryBackoff, doubling up to RetryBackoffMax) until the daemon
//     answers. An error that the daemon itself answers, such as a rule
//     that fails for the empty context, is not a miss: the flag is then
//     evaluated per request, as in in-process mode. Check can only see
//     the variant an empty context gets, not all of them.
//
// Open waits up to Options.StartTimeout (5 s) for the daemon and its first
// flag set, then fails with the cause ("not reachable within 5s: ...
// connection refused", or the flag set's problem): an edge proxy should
// not start without its flags. If the daemon goes away later, every proxy
// keeps its last flags (never the defaults), calls OnReloadError once per
// outage, and reconnects, waiting FlagdOptions.RetryBackoff, doubling up to
// RetryBackoffMax (1 s and 12 s); when the daemon is back its flags are
// applied and OnChange fires. While it is away, in-process mode still
// evaluates targeting rules; rpc mode answers cached flags but returns an
// error for flags with a targeting rule, which send their requests to the
// monolith. Prefer in-process for a fleet: it costs no network per
// request and survives an outage whole.
//
// A connection that dies without being closed (a vanished host) is
// noticed by TCP keepalive (probes after 15 s idle), within about 2.5
// minutes: there are no gRPC keepalive pings, which older flagd versions
// answer by closing the connection. Connections are plaintext and do not
// use an HTTP proxy from the environment.
//
// These modes were tested against small servers that implement flagd's
// sync and evaluation protocols from the provider's own generated
// packages, not against a flagd binary, which cannot be installed here.
//
// # Ramp
//
// Ramp changes one flag's percentage in the file: only the default
// variant's value changes (a flag the file lacks is added, ENABLED, with
// one variant "on"), every other byte stays, and the file is replaced
// atomically, with the old file's owner, group and mode. A flag with a
// targeting rule keeps it, and Ramp says so: the rule decides what each
// request it matches gets, and only requests it gives the default
// variant, or leaves to it, get the new value. A DISABLED flag is not
// ramped up (its route serves the monolith whatever the value); a ramp to
// 0 goes on, with a note. A symlinked file is followed, and the file it
// ends at is ramped, with a note, except a link into a ConfigMap volume
// (through ..data), which is refused: change the ConfigMap instead. It
// also refuses when
// it cannot give the new file the old one's owner and group (run it as
// that user or as root), rather than leave a file the proxy may not be
// able to read.
package flags
