//go:build race && linux && (amd64 || arm64)

package proxy

import (
	"runtime"
	"unsafe"
)

// ioSync gives raw reads and writes the race detector's view of I/O that
// the syscall package gives its own: a write happens before any raw read
// after it, and the kernel's access to the buffers is seen. The syscall
// package's own ioSync cannot be reached, so a hand-over from ordinary
// I/O (a test's client, say) to a raw read is not an edge: memory handed
// over that way alone would be reported as a race. The tests hand over
// through channels and locks, and run the raw path itself under -race.
var ioSync int64

func raceBeforeWrite() {
	runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync))
}

func raceWriteDone(p []byte, n int) {
	if n > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&p[0]), n)
	}
}

func raceReadDone(p []byte, n int, ok bool) {
	if n > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&p[0]), n)
	}
	if ok {
		runtime.RaceAcquire(unsafe.Pointer(&ioSync))
	}
}
