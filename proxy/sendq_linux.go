//go:build linux

package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// unacked returns how many bytes written to c's socket its peer has not
// acknowledged yet, sent or not (TIOCOUTQ), or -1 where that cannot be
// read.
func unacked(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := int32(-1)
	rc.Control(func(fd uintptr) {
		var q int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q))); e == 0 {
			n = q
		}
	})
	return int(n)
}
