//go:build unix && !linux && !darwin

package proxy

import (
	"syscall"
	"testing"
)

// raiseOpenFiles skips the test unless n more descriptors fit under the
// soft limit: syscall.Rlimit's field types differ between these systems,
// and the tests that need many descriptors run on Linux in CI.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if uint64(lim.Cur) < n {
		t.Skipf("need %d open files, may have %d", n, lim.Cur)
	}
}
