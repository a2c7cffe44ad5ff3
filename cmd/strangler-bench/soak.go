package main

import "errors"

// soak is where -soak DURATION belongs: Strangler alone, at the open-loop
// rate, for hours, sampling its RSS, goroutines (from /metrics), open file
// descriptors and latency percentiles once a minute, to show leaks and
// drift that a few seconds per run cannot. Its issue is separate and not
// done; the flag exists so that the mode has its place in the command line
// and refuses clearly until then. It can reuse startBackends, bench.start
// and loadTarget.openLoop as they are.
func soak(opt options) error {
	return errors.New("-soak " + opt.soak.String() + ": soak mode is not implemented yet (planned in its own issue); run without -soak")
}
