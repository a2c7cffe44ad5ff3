package flags

import (
	"context"
	"testing"
	"time"
)

// A flagd sidecar that starts a few seconds after the proxy, within the
// 5 s start window, is reached, with the default retry settings: the waits
// of 1, 2 and 4 s put the attempts at 0, 1 and 3 s and the next past the
// window, and in in-process mode gRPC's own reconnect schedule answered
// the attempts with its last dial's error. Up at 3.5 s, both modes failed
// and the Pod restarted.
func TestDaemonUpLateInTheStartWindowIsReached(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, mode, fleet(10, 5))
			d.stop()
			opts := flagdOptions(mode, port)
			opts.Flagd.RetryBackoff, opts.Flagd.RetryBackoffMax = 0, 0 // the defaults
			opts.StartTimeout = 0                                      // the default, 5 s
			type opened struct {
				s   *Source
				err error
			}
			done := make(chan opened, 1)
			start := time.Now()
			go func() {
				s, err := Open(context.Background(), opts)
				done <- opened{s, err}
			}()
			time.Sleep(3500 * time.Millisecond) // the daemon's late start, not a wait for an outcome
			d.restart()
			o := <-done
			if o.err != nil {
				t.Fatalf("daemon up 3.5 s after the start, Open failed after %v: %v", time.Since(start).Round(time.Millisecond), o.err)
			}
			if v, err := o.s.Flag("orders").Current(); err != nil || v != 10 {
				t.Errorf("orders: %v, %v; want 10", v, err)
			}
			o.s.Close(context.Background())
		})
	}
}
