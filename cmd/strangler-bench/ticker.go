//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ticker fires every interval on a timerfd that Go's network poller
// waits on, so that a goroutine waiting for it wakes within microseconds
// of each expiry, without spinning: the kernel's timer makes the poller's
// epoll_wait return. (time.Ticker and time.Sleep fire on the runtime's
// own timers, which an idle process checks only when its poller's
// millisecond timeout ends.)
type ticker struct {
	f *os.File
}

// newTicker starts a ticker whose first expiry is one interval from now.
func newTicker(interval time.Duration) (*ticker, error) {
	if interval <= 0 {
		interval = 1
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	spec := unix.NsecToTimespec(int64(interval))
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: spec, Value: spec}, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("timerfd_settime: %w", err)
	}
	// Non-blocking, so os.NewFile puts it in the network poller.
	return &ticker{f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

// wait blocks until the ticker fires and returns how many intervals
// ended since the last wait (more than one when the caller came late).
func (t *ticker) wait() (uint64, error) {
	var b [8]byte
	if _, err := t.f.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// stop makes a wait in progress, and every later one, return an error.
func (t *ticker) stop() { t.f.SetReadDeadline(time.Now()) }

func (t *ticker) close() { t.f.Close() }
