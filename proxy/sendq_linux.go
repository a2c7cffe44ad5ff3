//go:build linux

package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// unacked returns how many bytes written to c's socket its peer has not
// acknowledged yet, sent or not (TIOCOUTQ), or -1 where that cannot be
// read or will never change: the connection is neither open both ways
// nor half-closed by the peer (after the peer's reset the queue still
// counts what it never took).
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
		// struct tcp_info begins with the state, one byte.
		var info [8]byte
		size := uint32(len(info))
		if _, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
			return
		}
		if state := info[0]; state != tcpEstablished && state != tcpCloseWait {
			return
		}
		var q int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q))); e == 0 {
			n = q
		}
	})
	return int(n)
}

// TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpCloseWait   = 8
)
