package flags

import (
	"testing"
	"time"
)

// In rpc mode a refresh after a change asks the daemon once per handle.
// Those calls are made without the Source's lock: a reload compiles its
// routes through Flag, and with a slow daemon each waited for the whole
// refresh, handles × Timeout (10 s for 20 flags at the default 500 ms),
// though the README says the flag source's state does not block a reload.
func TestRPCRefreshDoesNotHoldUpFlag(t *testing.T) {
	t.Parallel()
	d := startFlakyEval(t, fleet(10, 5))
	opts := flagdOptions(ModeRPC, d.port)
	opts.Flagd.Timeout = time.Minute // the daemon answers when released, not before
	s, _ := openOptions(t, opts)
	orders := s.Flag("orders")
	s.Flag("vip")
	release := d.holdAnswers()
	t.Cleanup(release)
	d.push(fleet(20, 5)) // a change: the refresh asks for every handle, and waits
	deadline := time.Now().Add(10 * time.Second)
	for d.held.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the refresh never asked the daemon")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan *Flag, 1)
	go func() { done <- s.Flag("orders") }() // what a reload does for a route already there
	select {
	case f := <-done:
		if f != orders {
			t.Error("Flag returned another handle for the same flag")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Flag waited for the refresh's call to the daemon")
	}
	if d.held.Load() == 0 {
		t.Fatal("the daemon's answer was released before the check ran: the test proves nothing")
	}
	release()
	// The refresh then completes with the daemon's new answer.
	deadline = time.Now().Add(10 * time.Second)
	for {
		if v, err := orders.Current(); err == nil && v == 20 {
			break
		}
		if time.Now().After(deadline) {
			v, err := orders.Current()
			t.Fatalf("after the change, orders is %v, %v; want 20", v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
