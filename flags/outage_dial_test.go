package flags

import (
	"sync/atomic"
	"testing"
	"time"
)

// During a long outage after start, in-process mode's reconnect loop
// leaves gRPC's reconnect backoff alone: resetting it (as the start window
// does, to reach a daemon up late) at every retry made gRPC dial at
// BaseDelay, 1.6×, 2.56×... after each one instead of settling at
// RetryBackoffMax, several dials per RetryBackoffMax from every Pod for as
// long as the outage lasted (a regression review: 25 dials in 6 s where
// the backoff allows 6).
func TestOutageKeepsGRPCBackoff(t *testing.T) {
	d := startSyncDaemon(t, fleet(10, 5))
	opts := flagdOptions(ModeInProcess, d.port)
	opts.Flagd.RetryBackoff, opts.Flagd.RetryBackoffMax = 20*time.Millisecond, 200*time.Millisecond
	openOptions(t, opts)
	addr := d.addr
	d.stop()
	// The daemon's port now takes connections and closes them at once (a
	// daemon that is not serving): each of gRPC's dials is counted.
	ln := listenAgain(t, addr)
	t.Cleanup(func() { ln.Close() })
	var dials atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	time.Sleep(time.Second) // both backoffs reach their maximum, 200 ms (a rate is measured, not an outcome awaited)
	before := dials.Load()
	time.Sleep(2 * time.Second)
	n := dials.Load() - before
	t.Logf("dials in 2 s: %d", n)
	// gRPC's backoff (at most 200 ms, jittered) alone: about 10; reset
	// at every retry, about 30.
	if n > 20 {
		t.Errorf("%d dials in 2 s with a backoff of at most 200 ms: the backoff is reset on every retry", n)
	}
}
