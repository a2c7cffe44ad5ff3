//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// alive tells whether an idle upstream connection is still open: a
// non-blocking peek finds nothing to read. End of stream (the upstream
// closed it), an error, or bytes nobody asked for all mean it must not be
// used.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	open := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR
		return true // never wait for readability
	})
	return err == nil && open
}
