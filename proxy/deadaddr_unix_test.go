//go:build linux

package proxy

import (
	"fmt"
	"syscall"
	"testing"
)

// deadURL is an address where a connection is refused, for as long as the
// test runs: a socket bound to it without listening, and without
// SO_REUSEADDR, so no listener of another parallel test can take the
// port. (A closed listener's port was sometimes taken by another test's
// server, which answered in the dead upstream's place.)
func deadURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
