//go:build unix && !aix && !(linux && (amd64 || arm64))

package proxy

import "syscall"

// peekSocket reports whether a non-blocking peek at fd finds the
// connection open with nothing to read (see peeker).
func peekSocket(fd uintptr, b *[1]byte) bool {
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR
}
