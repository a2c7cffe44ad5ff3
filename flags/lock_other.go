//go:build !unix

package flags

// lockDir does nothing where flock(2) is not available: concurrent Ramps
// there are not serialized, and the last one wins.
func lockDir(string) (func(), error) { return func() {}, nil }
