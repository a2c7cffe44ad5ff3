//go:build linux || darwin

package proxy

import (
	"syscall"
	"testing"
)

// raiseOpenFiles makes room for n more descriptors, raising the soft limit
// as far as the hard one allows.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n {
		t.Skipf("need %d open files, may have %d (%v)", n, lim.Cur, err)
	}
}
