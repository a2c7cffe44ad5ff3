//go:build linux

package main

import (
	"context"
	"testing"
	"time"
)

// A caller that comes late learns how many intervals it missed, so the
// pacer can send their requests (late, and timed from their due times)
// instead of losing them.
func TestTickerCountsMissedIntervals(t *testing.T) {
	t.Parallel()
	tk := startTicker(t, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	n, err := tk.wait()
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Errorf("after 20 ms of a 1 ms ticker, wait returned %d intervals, want at least 20", n)
	}
}

// stop ends a wait in progress: the pacer must not outlive its phase.
func TestTickerStopEndsWait(t *testing.T) {
	t.Parallel()
	tk := startTicker(t, time.Hour)
	errc := make(chan error, 1)
	go func() { _, err := tk.wait(); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	tk.stop()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("wait returned no error after stop")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait still blocked 10 s after stop")
	}
}

// The pacer hands out every due time of the schedule, in order, one
// interval apart; with nobody to take them it stops when its context
// ends and says how many went out.
func TestPaceFollowsTheSchedule(t *testing.T) {
	t.Parallel()
	tk := startTicker(t, 100*time.Microsecond)
	start := time.Now()
	due := make(chan time.Time, 1000)
	sent, err := pace(context.Background(), tk, start, 100*time.Microsecond, 500, due)
	if err != nil || sent != 500 {
		t.Fatalf("pace = %d, %v; want 500, nil", sent, err)
	}
	close(due)
	i := 1
	for at := range due {
		if want := start.Add(time.Duration(i) * 100 * time.Microsecond); !at.Equal(want) {
			t.Fatalf("due time %d = +%v, want +%v", i, at.Sub(start), want.Sub(start))
		}
		i++
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	full := make(chan time.Time, 3) // nobody takes them
	sent, err = pace(ctx, startTicker(t, 100*time.Microsecond), time.Now(), 100*time.Microsecond, 1000, full)
	if err != nil || sent != 3 {
		t.Errorf("pace with nobody to send = %d, %v; want 3 (the channel's room), nil", sent, err)
	}
}

// startTicker starts a ticker closed when the test ends.
func startTicker(t *testing.T, interval time.Duration) *ticker {
	t.Helper()
	tk, err := newTicker(interval)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tk.close)
	return tk
}
