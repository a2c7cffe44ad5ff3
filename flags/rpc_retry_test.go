package flags

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/open-feature/flagd/connectrpc/go/flagd/evaluation/v2/evaluationv2connect"
	evalv2 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/evaluation/v2"
	"connectrpc.com/connect"
)

// selectiveEval answers every flag but those named in failing, as a daemon
// that times out on some evaluations does.
type selectiveEval struct {
	*evalDaemon
	mu      sync.Mutex
	failing map[string]bool
	port    uint16
}

func startSelectiveEval(t *testing.T, flags string) *selectiveEval {
	d := &selectiveEval{evalDaemon: startEvalDaemon(t, flags)}
	ln := listenAgain(t, "")
	mux := http.NewServeMux()
	mux.Handle(evaluationv2connect.NewServiceHandler(d))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	d.port = uint16(ln.Addr().(*net.TCPAddr).Port)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return d
}

func (d *selectiveEval) fail(keys ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failing = map[string]bool{}
	for _, k := range keys {
		d.failing[k] = true
	}
}

func (d *selectiveEval) ResolveFloat(ctx context.Context, req *connect.Request[evalv2.ResolveFloatRequest]) (*connect.Response[evalv2.ResolveFloatResponse], error) {
	d.mu.Lock()
	f := d.failing[req.Msg.GetFlagKey()]
	d.mu.Unlock()
	if f {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("overloaded"))
	}
	return d.evalDaemon.ResolveFloat(ctx, req)
}

// After OnReloadError (a refresh that missed the daemon), the next
// OnChange means "the flags are current again" (the proxy sets
// strangler_flag_last_reload_successful to 1 on it). A retry that reaches
// the daemon for some flags, changing one, while another still misses,
// does not fire OnChange; the final success fires it once. (Each retry
// that changed an answer fired it, and the success a second time.)
func TestRPCRetryAnnouncesOnceCurrent(t *testing.T) {
	d := startSelectiveEval(t, fleet(10, 5))
	var stale []bool // per OnChange: was vip still stale then?
	var vip *Flag
	var mu sync.Mutex
	opts := flagdOptions(ModeRPC, d.port)
	opts.OnChange = func() {
		mu.Lock()
		defer mu.Unlock()
		if vip != nil {
			stale = append(stale, percentIs(vip, 0)() == false)
		}
	}
	s, r := openOptions(t, opts)
	orders := s.Flag("orders")
	v := s.Flag("vip")
	mu.Lock()
	vip = v
	mu.Unlock()
	eventually(t, "start", func() bool { return percentIs(orders, 10)() && percentIs(v, 5)() })

	d.fail("orders", "vip")
	d.push(fleet(0, 0))
	eventually(t, "OnReloadError", func() bool { return r.errorCount() == 1 })
	mu.Lock()
	stale = nil // what came before the miss was reported
	mu.Unlock()

	d.fail("vip") // orders answers (and changed), vip still misses
	eventually(t, "orders re-evaluated", percentIs(orders, 0))
	time.Sleep(300 * time.Millisecond) // a few retries
	d.fail()
	eventually(t, "vip re-evaluated", percentIs(v, 0))
	time.Sleep(300 * time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	for i, st := range stale {
		if st {
			t.Errorf("OnChange #%d after OnReloadError fired while flag vip was still stale (the proxy then reports strangler_flag_last_reload_successful 1)", i+1)
		}
	}
	if len(stale) != 1 {
		t.Errorf("OnChange fired %d times between the miss and the flags being current again (%v stale flags), want 1", len(stale), stale)
	}
}
