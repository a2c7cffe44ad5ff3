//go:build !(linux && (amd64 || arm64))

package proxy

import "net"

// rawIO returns c: raw reads and writes (rawio_linux.go) are built for
// Linux on amd64 and arm64 only, where their system calls are direct.
func rawIO(c net.Conn) net.Conn { return c }

// wakeMonitor does nothing: without raw I/O every read and write wakes
// Go's monitor thread (see rawio_linux.go).
func wakeMonitor() {}
