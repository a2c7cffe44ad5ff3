package flags

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// fleet is the flag set the daemon tests serve: a plain flag, a flag
// with a targeting rule, and flags for Check.
func fleet(orders, vip float64) string {
	return fmt.Sprintf(`{"flags":{
	  "orders": {"state":"ENABLED","variants":{"on":%v},"defaultVariant":"on"},
	  "vip": {"state":"ENABLED","variants":{"all":100,"rest":%v},"defaultVariant":"rest",
	    "targeting":{"if":[{"in":[{"var":"targetingKey"},["vip-1","vip-2"]]},"all",null]}},
	  "high": {"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"},
	  "word": {"state":"ENABLED","variants":{"on":"ten"},"defaultVariant":"on"},
	  "off": {"state":"DISABLED","variants":{"on":10},"defaultVariant":"on"}
	}}`, orders, vip)
}

// daemon is a fake flagd in either mode.
type daemon interface {
	push(flags string)
	stop()
	restart()
	seenSelectors() []string
}

// startDaemon serves flags in the given mode and returns it with its port.
func startDaemon(t testing.TB, mode, flags string) (daemon, uint16) {
	t.Helper()
	if mode == ModeRPC {
		d := startEvalDaemon(t, flags)
		return d, d.port
	}
	d := startSyncDaemon(t, flags)
	return d, d.port
}

var modes = []string{ModeInProcess, ModeRPC}

// flagdOptions reaches a fake daemon on 127.0.0.1 with retries short
// enough for tests.
func flagdOptions(mode string, port uint16) Options {
	return Options{
		Flagd: &FlagdOptions{
			Host: "127.0.0.1", Port: port, Mode: mode,
			Timeout:      time.Second,
			RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: 100 * time.Millisecond,
		},
		StartTimeout: 2 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// openOptions opens a Source with opts, records its callbacks, and closes
// it when the test ends.
func openOptions(t testing.TB, opts Options) (*Source, *reloads) {
	t.Helper()
	r := &reloads{}
	change := opts.OnChange
	opts.OnChange = func() {
		r.mu.Lock()
		r.changes++
		r.mu.Unlock()
		if change != nil {
			change()
		}
	}
	opts.OnReloadError = func(err error) {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s, r
}

// targetIs reports whether the flag gives key the value want.
func targetIs(f *Flag, key string, want float64) func() bool {
	return func() bool {
		v, err := f.Percent(context.Background(), key, Attrs{})
		return err == nil && v == want
	}
}

// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
func TestFlagdEvaluatesPlainAndTargetedFlags(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			_, port := startDaemon(t, mode, fleet(10, 5))
			s, _ := openOptions(t, flagdOptions(mode, port))
			ctx := context.Background()
			orders, vip := s.Flag("orders"), s.Flag("vip")
			if v, err := orders.Percent(ctx, "user-1", Attrs{Method: "GET"}); v != 10 || err != nil {
				t.Errorf("orders = %v, %v; want 10", v, err)
			}
			if orders.state.Load().perRequest {
				t.Error("a flag without targeting is evaluated per request")
			}
			allocs := testing.AllocsPerRun(100, func() { _, _ = orders.Percent(ctx, "user-1", Attrs{}) })
			if allocs != 0 {
				t.Errorf("Percent on a flag without targeting allocates %v times per call, want 0", allocs)
			}
			for key, want := range map[string]float64{"vip-1": 100, "vip-2": 100, "someone": 5, "": 5} {
				if v, err := vip.Percent(ctx, key, Attrs{}); v != want || err != nil {
					t.Errorf("vip(%q) = %v, %v; want %v", key, v, err, want)
				}
			}
			if !vip.state.Load().perRequest {
				t.Error("a flag with targeting is cached")
			}
			if _, err := s.Flag("missing").Percent(ctx, "k", Attrs{}); !errors.Is(err, ErrNotFound) {
				t.Errorf("missing flag: %v, want ErrNotFound", err)
			}
			if _, err := s.Flag("off").Percent(ctx, "k", Attrs{}); !errors.Is(err, ErrDisabled) {
				t.Errorf("disabled flag: %v, want ErrDisabled", err)
			}
		})
	}
}

// A change pushed by the daemon is live within 2 s, for plain and targeted
// flags, and OnChange sees it.
func TestFlagdPushIsLiveWithin2s(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, mode, fleet(10, 5))
			var s *Source
			var seen atomic.Value // orders, as OnChange saw it
			opts := flagdOptions(mode, port)
			opts.OnChange = func() {
				v, _ := s.Flag("orders").Current()
				seen.Store(v)
			}
			s, r := openOptions(t, opts)
			orders, vip := s.Flag("orders"), s.Flag("vip")
			for i, v := range []float64{25, 60, 0} {
				start := time.Now()
				d.push(fleet(v, v/5))
				eventually(t, fmt.Sprint("orders at ", v), percentIs(orders, v))
				eventually(t, fmt.Sprint("vip at ", v/5), targetIs(vip, "someone", v/5))
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("push took %v to go live, want < 2s", took)
				}
				if !targetIs(vip, "vip-1", 100)() {
					t.Error("the targeting rule stopped matching")
				}
				eventually(t, "OnChange", func() bool { return r.changeCount() >= i+1 })
				eventually(t, "OnChange to see the new value", func() bool { return seen.Load() == v })
			}
			if n := r.errorCount(); n != 0 {
				t.Errorf("OnReloadError called %d times: %v", n, r.lastError())
			}
		})
	}
}

// When the daemon goes away the proxies keep the last flags and report it
// once; when it comes back they pick up its flags without a restart.
func TestFlagdKeepsLastFlagsWhileDaemonIsGone(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, mode, fleet(10, 5))
			s, r := openOptions(t, flagdOptions(mode, port))
			orders, vip := s.Flag("orders"), s.Flag("vip")

			d.stop()
			eventually(t, "OnReloadError for the lost daemon", func() bool { return r.errorCount() == 1 })
			if err := r.lastError(); !strings.Contains(err.Error(), fmt.Sprintf("flagd at 127.0.0.1:%d (%s): connection lost: ", port, mode)) {
				t.Errorf("OnReloadError(%q) does not name the daemon and the loss", err)
			}
			// Nothing to poll for: several reconnection attempts must pass
			// without another report.
			time.Sleep(300 * time.Millisecond)
			if n := r.errorCount(); n != 1 {
				t.Errorf("OnReloadError called %d times for one outage, want once", n)
			}
			for range 10 {
				if !percentIs(orders, 10)() {
					t.Fatal("the lost daemon dropped the cached flag")
				}
			}
			if v, err := orders.Current(); v != 10 || err != nil {
				t.Errorf("Current = %v, %v; want 10", v, err)
			}
			if mode == ModeInProcess {
				// The flag set is local: targeting still works.
				if !targetIs(vip, "vip-1", 100)() || !targetIs(vip, "someone", 5)() {
					t.Error("targeting failed while the daemon is gone")
				}
			} else if _, err := vip.Percent(context.Background(), "vip-1", Attrs{}); err == nil {
				// rpc: a targeted flag needs the daemon; the caller gets
				// an error (and sends the request to the monolith), not a
				// made-up value.
				t.Error("rpc mode evaluated a targeted flag without the daemon")
			}
			changes := r.changeCount()

			d.push(fleet(40, 8)) // while it is down
			d.restart()
			eventually(t, "the new flags from the daemon that came back", percentIs(orders, 40))
			eventually(t, "the targeted flag after the daemon came back", targetIs(vip, "someone", 8))
			eventually(t, "OnChange after the daemon came back", func() bool { return r.changeCount() > changes })

			d.push(fleet(50, 9)) // and changes flow again
			eventually(t, "a push after the daemon came back", percentIs(orders, 50))
			if n := r.errorCount(); n != 1 {
				t.Errorf("OnReloadError called %d times, want once", n)
			}
		})
	}
}

// The same daemon restarted many times: each outage is reported once and
// each return is picked up.
func TestFlagdSurvivesRepeatedRestarts(t *testing.T) {
	t.Parallel()
	d, port := startDaemon(t, ModeInProcess, fleet(10, 5))
	s, r := openOptions(t, flagdOptions(ModeInProcess, port))
	orders := s.Flag("orders")
	for i := 1; i <= 5; i++ {
		d.stop()
		eventually(t, fmt.Sprint("outage ", i), func() bool { return r.errorCount() == i })
		d.push(fleet(float64(10+i), 5))
		d.restart()
		eventually(t, fmt.Sprint("return ", i), percentIs(orders, float64(10+i)))
	}
}

func TestFlagdInProcessKeepsLastFlagsOnBadFlagSet(t *testing.T) {
	t.Parallel()
	d, port := startDaemon(t, ModeInProcess, fleet(10, 5))
	s, r := openOptions(t, flagdOptions(ModeInProcess, port))
	orders := s.Flag("orders")
	bad := []string{
		`{"flags":{"orders":{"state":"ENABLED","variants":{"on":20},"defaultVariant":"off"}}}`,
		`{"flags":`,
		`{"flags":[]}`,
	}
	for i, b := range bad {
		d.push(b)
		eventually(t, "OnReloadError", func() bool { return r.errorCount() == i+1 })
		if err := r.lastError(); !strings.Contains(err.Error(), fmt.Sprintf("flagd at 127.0.0.1:%d (in-process): flag set: ", port)) {
			t.Errorf("OnReloadError(%q) does not say where the set came from", err)
		}
		if !percentIs(orders, 10)() {
			t.Fatalf("bad flag set %q replaced the last good flags", b)
		}
	}
	if r.changeCount() != 0 {
		t.Error("OnChange called for an invalid flag set")
	}
	d.push(fleet(30, 5))
	eventually(t, "the next good set", percentIs(orders, 30))
	eventually(t, "OnChange", func() bool { return r.changeCount() == 1 })
	if err := s.Check("orders"); err != nil {
		t.Errorf("Check after the good set: %v", err)
	}
}

func TestFlagdOpenFailsClearly(t *testing.T) {
	t.Parallel()
	closed := freePort(t)
	bad := startSyncDaemon(t, `{"flags":{"orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"off"}}}`)
	// That daemon is up: the window must be long enough to reach it on a
	// loaded machine (300ms was not: Open then failed with "not
	// reachable"), and its set is refused at once, not after the window.
	invalid := flagdOptions(ModeInProcess, bad.port)
	invalid.StartTimeout = eventuallyWithin
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"in-process unreachable", flagdOptions(ModeInProcess, closed),
			[]string{fmt.Sprintf("flagd at 127.0.0.1:%d (in-process)", closed), "not reachable within 300ms", "connection refused"}},
		{"rpc unreachable", flagdOptions(ModeRPC, closed),
			[]string{fmt.Sprintf("flagd at 127.0.0.1:%d (rpc)", closed), "not reachable within 300ms", "connection refused"}},
		{"invalid first flag set", invalid,
			[]string{"(in-process)", `flag set: flag "orders": defaultVariant "off" is not one of its variants`}},
		{"file and daemon", Options{File: "flags.json", Flagd: &FlagdOptions{Host: "x"}}, []string{"use one"}},
		{"bad mode", Options{Flagd: &FlagdOptions{Host: "x", Mode: "grpc"}}, []string{`mode is "grpc"`}},
		{"no host", Options{Flagd: &FlagdOptions{}}, []string{"no host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bound := time.Second // about StartTimeout
			if tt.opts.StartTimeout == eventuallyWithin {
				bound = eventuallyWithin / 2 // the invalid set: refused at once
			} else {
				tt.opts.StartTimeout = 300 * time.Millisecond
			}
			start := time.Now()
			s, err := Open(context.Background(), tt.opts)
			if err == nil {
				_ = s.Close(context.Background())
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error %q does not contain %q", err, w)
				}
			}
			if took := time.Since(start); took > bound {
				t.Errorf("Open took %v to fail, want at most %v (StartTimeout %v)", took, bound, tt.opts.StartTimeout)
			}
		})
	}
}

// A daemon that starts a little after the proxy is waited for.
func TestFlagdOpenWaitsForAStartingDaemon(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, mode, fleet(10, 5))
			d.stop()
			type opened struct {
				s   *Source
				err error
			}
			done := make(chan opened, 1)
			go func() {
				s, err := Open(context.Background(), flagdOptions(mode, port))
				done <- opened{s, err}
			}()
			time.Sleep(200 * time.Millisecond) // the daemon is late
			d.restart()
			o := <-done
			if o.err != nil {
				t.Fatal(o.err)
			}
			defer o.s.Close(context.Background())
			if !percentIs(o.s.Flag("orders"), 10)() {
				t.Error("no flags after waiting for the daemon")
			}
		})
	}
}

func TestFlagdSendsSelector(t *testing.T) {
	t.Parallel()
	for mode, want := range map[string]string{ModeInProcess: "team-a|team-a", ModeRPC: "team-a"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, mode, fleet(10, 5))
			opts := flagdOptions(mode, port)
			opts.Flagd.Selector = "team-a"
			openOptions(t, opts)
			eventually(t, "the stream", func() bool { return len(d.seenSelectors()) > 0 })
			// rpc mode opens two event streams: ours and the provider's.
			got := d.seenSelectors()
			if slices.ContainsFunc(got, func(s string) bool { return s != want }) {
				t.Errorf("the daemon saw selectors %q, want only %q", got, want)
			}
		})
	}
}

func TestSourceCheck(t *testing.T) {
	t.Parallel()
	sources := map[string]func(t *testing.T) *Source{
		"file": func(t *testing.T) *Source {
			s, _ := open(t, writeFlags(t, t.TempDir(), fleet(10, 5)))
			return s
		},
	}
	for _, mode := range modes {
		sources[mode] = func(t *testing.T) *Source {
			_, port := startDaemon(t, mode, fleet(10, 5))
			s, _ := openOptions(t, flagdOptions(mode, port))
			return s
		}
	}
	for name, openSource := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := openSource(t)
			for flag, want := range map[string]error{
				"orders": nil, "vip": nil, "off": nil,
				"missing": ErrNotFound, "high": ErrRange, "word": ErrType,
			} {
				if err := s.Check(flag); !errors.Is(err, want) || (want == nil) != (err == nil) {
					t.Errorf("Check(%q) = %v, want %v", flag, err, want)
				}
			}
		})
	}
}

func TestFlagdCloseStopsUpdates(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, mode, fleet(10, 5))
			s, r := openOptions(t, flagdOptions(mode, port))
			f := s.Flag("orders")
			d.stop() // Close must not wait for a daemon that is gone
			eventually(t, "OnReloadError", func() bool { return r.errorCount() == 1 })
			start := time.Now()
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("Close took %v", took)
			}
			d.push(fleet(20, 5))
			d.restart()
			time.Sleep(200 * time.Millisecond) // time for an update that must not come
			if v, err := f.Percent(context.Background(), "k", Attrs{}); v != 10 || err != nil {
				t.Errorf("after Close: Percent = %v, %v; want the cached 10", v, err)
			}
		})
	}
}

// BenchmarkPercentRPCTargeting measures a per-request evaluation in rpc
// mode: one call to the daemon over loopback, the best case.
func BenchmarkPercentRPCTargeting(b *testing.B) {
	_, port := startDaemon(b, ModeRPC, fleet(10, 5))
	s, _ := openOptions(b, flagdOptions(ModeRPC, port))
	f := s.Flag("vip")
	ctx := context.Background()
	attrs := Attrs{Route: "orders", Method: "GET", Path: "/api/orders/1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Percent(ctx, "user-42", attrs); err != nil {
			b.Fatal(err)
		}
	}
}

// keepaliveTimers reads /proc/net/tcp for the established connections from
// this host to 127.0.0.1:port: for each, the kernel's pending timer ("tr":
// 0 none, 1 retransmit, 2 keepalive) and the seconds left on it.
func keepaliveTimers(t *testing.T, port uint16) (timers []int, secs []float64) {
	t.Helper()
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp to read TCP timers from: %v", err)
	}
	remote := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 6 || f[2] != remote || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		kind, when, _ := strings.Cut(f[5], ":") // "02:000AFC7F"
		tr, _ := strconv.ParseInt(kind, 16, 64)
		ticks, _ := strconv.ParseInt(when, 16, 64)
		timers = append(timers, int(tr))
		secs = append(secs, float64(ticks)/100) // USER_HZ
	}
	return timers, secs
}

// The package doc promises that a daemon that vanishes without closing the
// connection (host gone, network cut, blackholed pod IP) is noticed by TCP
// keepalive within about 2.5 minutes: probes after 15 s idle. grpc-go's
// own dialer leaves that to the kernel, 2 hours on Linux.
func TestFlagdStreamKeepaliveIs15s(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			_, port := startDaemon(t, mode, fleet(10, 5))
			s, _ := openOptions(t, flagdOptions(mode, port))
			_ = s.Flag("orders")
			var timers []int
			var secs []float64
			// A connection shows its keepalive timer once nothing is in
			// flight on it.
			eventually(t, "idle connections to the daemon", func() bool {
				timers, secs = keepaliveTimers(t, port)
				return len(timers) > 0 && !slices.ContainsFunc(timers, func(tr int) bool { return tr != 2 })
			})
			for i := range timers {
				if secs[i] > tcpKeepAlive.Seconds()+1 {
					t.Errorf("connection %d to the daemon: first keepalive probe in %.0f s, want within %v", i, secs[i], tcpKeepAlive)
				}
			}
		})
	}
}

// A change can give a cached flag a targeting rule that fails for the
// empty context the cache is filled with: the daemon answers with an error
// (GENERAL when the rule names no variant, PARSE_ERROR when JsonLogic
// cannot run it). That is the daemon's answer, not an outage: the rule
// must be evaluated per request from then on, in rpc mode as in
// in-process mode, and the old cached value must not stay.
func TestFlagdRuleFailingForEmptyContextIsEvaluatedPerRequest(t *testing.T) {
	t.Parallel()
	rules := []struct {
		name   string
		rule   string
		get    float64 // 0 with err: an error
		delete float64
		err    bool
	}{
		// The variant comes from the method: with none there is "v-".
		{"GENERAL", `{"cat":["v-",{"var":"method"}]}`, 5, 0, false},
		{"PARSE_ERROR", `{"if":[{"nosuchop":[1]},"v-GET",null]}`, 0, 0, true},
	}
	for _, mode := range modes {
		for _, r := range rules {
			t.Run(mode+"/"+r.name, func(t *testing.T) {
				t.Parallel()
				d, port := startDaemon(t, mode, `{"flags":{"orders":{"state":"ENABLED","variants":{"on":50},"defaultVariant":"on"}}}`)
				s, rec := openOptions(t, flagdOptions(mode, port))
				orders := s.Flag("orders")
				if !percentIs(orders, 50)() {
					t.Fatal("orders is not 50 at start")
				}
				d.push(`{"flags":{"orders":{"state":"ENABLED","variants":{"v-GET":5,"v-DELETE":0},"defaultVariant":"v-GET",
				  "targeting":` + r.rule + `}}}`)
				eventually(t, "OnChange for the new rule", func() bool { return rec.changeCount() >= 1 })
				want := func(method string, v float64) func() bool {
					return func() bool {
						got, err := orders.Percent(context.Background(), "k", Attrs{Method: method})
						if r.err {
							return err != nil
						}
						return err == nil && got == v
					}
				}
				eventually(t, "GET to follow the rule", want("GET", r.get))
				eventually(t, "DELETE to follow the rule", want("DELETE", r.delete))
				if !orders.state.Load().perRequest {
					t.Error("the flag with the new rule is still served from the cache")
				}
				if n := rec.errorCount(); n != 0 {
					t.Errorf("OnReloadError called %d times for a daemon that answered: %v", n, rec.lastError())
				}
			})
		}
	}
}

// In rpc mode a refresh whose evaluation does not reach the daemon keeps
// the handle's last answer. Nothing else would ask again before the
// daemon's next change, so one failed call at the moment of a rollback
// would leave this proxy on the old percentage for good: the refresh is
// retried until the daemon answers, and the miss is reported once.
func TestFlagdRPCRetriesAFailedRefresh(t *testing.T) {
	t.Parallel()
	failures := map[string]connect.Code{
		"unreachable": connect.CodeUnavailable,
		"too slow":    connect.CodeDeadlineExceeded,
	}
	for name, code := range failures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := startFlakyEval(t, fleet(10, 5))
			s, r := openOptions(t, flagdOptions(ModeRPC, d.port))
			orders := s.Flag("orders")
			if !percentIs(orders, 10)() {
				t.Fatal("orders is not 10 at start")
			}

			d.fail(&code)
			d.push(fleet(0, 5)) // the 3 AM rollback
			eventually(t, "OnReloadError for the refresh the daemon did not answer", func() bool { return r.errorCount() == 1 })
			if err := r.lastError(); !strings.Contains(err.Error(), fmt.Sprintf("flagd at 127.0.0.1:%d (rpc): re-evaluating the flags after a change", d.port)) {
				t.Errorf("OnReloadError(%q) does not say what failed where", err)
			}
			if !percentIs(orders, 10)() {
				t.Error("a refresh that did not reach the daemon dropped the last answer")
			}
			changes := r.changeCount()

			d.fail(nil) // the daemon answers again
			eventually(t, "the rollback after the daemon answers again", percentIs(orders, 0))
			eventually(t, "OnChange for the rollback", func() bool { return r.changeCount() > changes })
			if n := r.errorCount(); n != 1 {
				t.Errorf("OnReloadError called %d times for one change, want once", n)
			}
		})
	}
}
