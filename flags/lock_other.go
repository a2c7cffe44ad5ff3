//go:build !unix

package flags

// flockDir does nothing where flock(2) is not available: concurrent Ramps
// there are not serialized, and the last one wins.
func flockDir(string) (func(), error) { return func() {}, nil }
