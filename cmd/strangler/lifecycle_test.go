package main

// The serve process's lifecycle: the real command in a child
// process (TestMain re-executes the test binary), real listeners, signals.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/proxy"
)

// serveProc is one `strangler serve` child.
type serveProc struct {
	cmd           *exec.Cmd
	logs, out     *lockedBuffer // stderr, stdout
	quiet         bool          // its log level leaves out "serving"
	done          chan struct{}
	waitErr       error
	listen, admin string
	cfgPath       string
	signalled     time.Time
}

// startServe writes a config (extra appended to listen/admin/monolith/
// flags) and starts `strangler serve` on it, waiting until /readyz is 200.
//
// The ports come from freeAddrs, which closes its listeners: until the
// child binds them, any other process on the machine (the proxy package's
// tests run beside these, each listening on port 0 thousands of times)
// can be handed the same port, and the child exits with "address already
// in use". That is no failure of serve: it is started again on new ports.
func startServe(t *testing.T, monolith, extra, flagsJSON string, env ...string) *serveProc {
	t.Helper()
	return startServeArgs(t, monolith, extra, flagsJSON, nil, env...)
}

// startServeArgs is startServe with args after serve's --config FILE.
func startServeArgs(t *testing.T, monolith, extra, flagsJSON string, args []string, env ...string) *serveProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p := tryServe(t, monolith, extra, flagsJSON, args, env...)
		err := p.waitReady(t)
		if err == nil {
			return p
		}
		if attempt < 5 && errors.Is(err, errPortTaken) {
			t.Logf("attempt %d: %v; again on other ports", attempt, err)
			continue
		}
		t.Fatal(err)
	}
}

func tryServe(t *testing.T, monolith, extra, flagsJSON string, args []string, env ...string) *serveProc {
	t.Helper()
	dir := t.TempDir()
	addrs := freeAddrs(t, 2)
	p := &serveProc{listen: addrs[0], admin: addrs[1], logs: &lockedBuffer{}, out: &lockedBuffer{}, done: make(chan struct{})}
	if i := slices.Index(args, "--log-level"); i >= 0 && i+1 < len(args) {
		p.quiet = args[i+1] == "warn" || args[i+1] == "error"
	}
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nmonolith: %s\nflags: {file: flags.json}\n%s", p.listen, p.admin, monolith, extra)
	p.cfgPath = filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flags.json"), []byte(flagsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd = command(t, append([]string{"serve", "--config", p.cfgPath}, args...)...)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill() // by PID: only the child this test started
			<-p.done
		}
	})
	return p
}

// errPortTaken: serve exited because a port freeAddrs chose was taken
// before serve could bind it.
var errPortTaken = errors.New("a port was taken between freeAddrs and serve's listen")

// waitReady waits for /readyz, for as long as a race-built process may
// take to start on a loaded 2-core machine (a CI run waited 10 s in vain,
// with the proxy package's tests beside it), and returns at once, with the
// process's log, if it exits first (wrapping errPortTaken when a port
// was taken since freeAddrs).
func (p *serveProc) waitReady(t *testing.T) error {
	t.Helper()
	url := "http://" + p.admin + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			// Ready, and bound by this process: another test's serve
			// holding the same port freeAddrs drew answers 200 too,
			// while this one failed to bind and exits. (A quiet one
			// does not say it serves: alive is the most it shows.)
			if logs := p.logs.String(); resp.StatusCode == http.StatusOK &&
				(strings.Contains(logs, `"msg":"serving"`) || strings.Contains(logs, "msg=serving") || p.quiet && !p.exited(0)) {
				return nil
			}
		}
		select {
		case <-p.done:
			logs := p.logs.String()
			// Taken by another process since freeAddrs drew it.
			if strings.Contains(logs, "address already in use") {
				return fmt.Errorf("%w: serve exited (%v); its log:\n%s", errPortTaken, p.waitErr, logs)
			}
			return fmt.Errorf("serve exited before it was ready (%v); its log:\n%s", p.waitErr, logs)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 in time (last: %v); serve's log:\n%s", url, err, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *serveProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if sig == syscall.SIGTERM || sig == syscall.SIGINT {
		if p.signalled.IsZero() {
			p.signalled = time.Now()
		}
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// stop sends SIGTERM and wants exit 0.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if !p.exited(30 * time.Second) {
		t.Fatalf("serve still running after SIGTERM:\n%s", p.logs.String())
	}
	if p.waitErr != nil {
		t.Fatalf("serve exit: %v\n%s", p.waitErr, p.logs.String())
	}
}

// waitLog polls the log until it has want.
func (p *serveProc) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q:\n%s", want, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exited waits up to d for the process to end.
func (p *serveProc) exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// refusing polls until a new TCP connection to addr is refused.
func refusing(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func plainBackend(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// A WebSocket tunnel is an in-flight request: on SIGTERM the proxy lets
// it run for up to shutdown_timeout, then closes it and exits 0.
// net/http's Shutdown does not track hijacked connections: Serve returned
// at once and the process exited, cutting every tunnel at the signal.
func TestServeWebSocketTunnelDrainsAtSIGTERM(t *testing.T) {
	t.Parallel()
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			fmt.Fprint(w, "monolith")
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		io.Copy(c, rw) // echo
	}))
	p := startServe(t, mono, "shutdown_timeout: 3s\nroutes: []\n", `{"flags":{}}`)

	c, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo := func(msg string) error {
		if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line != msg+"\n" {
			return fmt.Errorf("echo %q, want %q", line, msg)
		}
		return nil
	}
	if err := echo("before"); err != nil {
		t.Fatalf("tunnel before SIGTERM: %v", err)
	}
	p.signal(t, syscall.SIGTERM)
	refusing(t, p.listen, 2*time.Second)
	if err := echo("after"); err != nil {
		t.Fatalf("tunnel after SIGTERM, within shutdown_timeout: %v", err)
	}
	if !p.exited(3*time.Second + proxy.ExitGrace + 3*time.Second) {
		t.Fatal("serve still running well past shutdown_timeout with a tunnel open")
	}
	if p.waitErr != nil {
		t.Errorf("exit: %v, want 0", p.waitErr)
	}
	if took := time.Since(p.signalled); took < 2*time.Second {
		t.Errorf("serve exited %v after SIGTERM: the tunnel got no grace period", took.Round(time.Millisecond))
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("the tunnel is still open after the process exited")
	}
}

// A Server-Sent Events stream that never ends is cut at shutdown_timeout,
// and the process then exits 0. (Coverage: nothing else runs the forced
// close path.)
func TestServeSSECutAtShutdownTimeout(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			fmt.Fprint(w, "data: tick\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	p := startServe(t, mono, "shutdown_timeout: 1s\nroutes: []\n", `{"flags":{}}`)
	resp, err := http.Get("http://" + p.listen + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: tick\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		ended <- err
	}()
	p.signal(t, syscall.SIGTERM)
	if !p.exited(8 * time.Second) {
		t.Fatalf("serve still running 8s after SIGTERM with shutdown_timeout 1s\n%s", p.logs.String())
	}
	took := time.Since(p.signalled)
	if p.waitErr != nil {
		t.Errorf("exit: %v\n%s", p.waitErr, p.logs.String())
	}
	if took < 900*time.Millisecond {
		t.Errorf("exited %v after SIGTERM: the stream got less than shutdown_timeout", took)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Errorf("the SSE client's stream did not end")
	}
	if !strings.Contains(p.logs.String(), "in-flight requests did not finish in time") {
		t.Errorf("no forced-close warning in the log:\n%s", p.logs.String())
	}
}

// shadowHangSetup: the client is served by the monolith (0 %), the shadow
// copy goes to a service that never answers, with a long shadow timeout.
func shadowHangSetup(t *testing.T) *serveProc {
	t.Helper()
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "monolith") }))
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	svc := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	extra := fmt.Sprintf(`shutdown_timeout: 1s
routes:
  - name: orders
    path: /api/orders/*
    service: %s
    shadow: {percent: 100, timeout: 20s}
`, svc)
	p := startServe(t, mono, extra, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":0},"defaultVariant":"on"}}}`)
	resp, err := http.Get("http://" + p.listen + "/api/orders/1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "monolith" {
		t.Fatalf("client got %q", b)
	}
	select {
	case <-arrived: // the shadow copy is in flight, hanging
	case <-time.After(10 * time.Second):
		t.Fatalf("the shadow copy never reached the service\n%s", p.logs.String())
	}
	return p
}

// shutdown_timeout bounds the drain, and proxy.ExitGrace what follows:
// Server.Close waited for every shadow call in flight with no deadline,
// so the process outlived shutdown_timeout by up to the shadow timeout
// (twice that with noise), past a Kubernetes grace period.
func TestServeExitBoundedDespiteHangingShadow(t *testing.T) {
	t.Parallel()
	p := shadowHangSetup(t)
	p.signal(t, syscall.SIGTERM)
	if !p.exited(5 * time.Second) {
		t.Errorf("serve still running 5s after SIGTERM with shutdown_timeout 1s and no client request in flight: "+
			"it waits for a hanging shadow copy (shadow timeout 20s)\nlogs:\n%s", p.logs.String())
		return
	}
	if p.waitErr != nil {
		t.Errorf("exit: %v", p.waitErr)
	}
}

// drainedWithHangingCopy is shadowHangSetup's serve after a SIGTERM, once
// both listeners are closed: Serve has returned, and the exit waits for
// the hanging comparison.
func drainedWithHangingCopy(t *testing.T) *serveProc {
	t.Helper()
	p := shadowHangSetup(t)
	p.signal(t, syscall.SIGTERM)
	refusing(t, p.listen, 5*time.Second)
	refusing(t, p.admin, 5*time.Second)
	return p
}

// A second signal after the drain, while the exit waits for comparisons
// in flight, ends that wait too: it was not shortened, so Ctrl-C twice
// left a shadowed proxy running for proxy.ExitGrace (3 s) more.
func TestServeSecondSignalEndsExitWait(t *testing.T) {
	t.Parallel()
	p := drainedWithHangingCopy(t)
	p.signal(t, syscall.SIGINT)
	// Well under what was left of the wait (about 3 s), which the
	// process would otherwise spend.
	if !p.exited(proxy.ExitGrace * 2 / 3) {
		t.Fatalf("serve still running %v after a second signal during the exit's wait for a hanging comparison\nlogs:\n%s",
			proxy.ExitGrace*2/3, p.logs.String())
	}
	if p.waitErr != nil {
		t.Errorf("exit: %v", p.waitErr)
	}
	if !strings.Contains(p.logs.String(), `"in_flight_abandoned":1`) {
		t.Errorf("the abandoned comparison is not logged:\n%s", p.logs.String())
	}
}

// A SIGHUP after the drain (while the comparisons in flight and the
// flush run) does not kill the process: serve catches SIGHUP until it
// returns. The deferred signal.Stop(hup) restored its default action
// (terminate) while Server.Close still ran.
func TestServeSIGHUPAfterDrainDoesNotKill(t *testing.T) {
	t.Parallel()
	p := drainedWithHangingCopy(t)
	if p.exited(0) {
		t.Skip("exited before the window could be hit")
	}
	p.signal(t, syscall.SIGHUP)
	if !p.exited(30 * time.Second) {
		t.Fatal("no exit")
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Errorf("a SIGHUP during shutdown killed the process (%v) instead of exit 0", ws.Signal())
			return
		}
	}
	if p.waitErr != nil {
		t.Errorf("exit: %v", p.waitErr)
	}
}

// SIGHUPs that keep coming while serve exits never kill it: serve must not
// give SIGHUP back its default action (terminate) on its way out. Under
// the race detector, whose exit is slow, a stream of them hit that
// window on every run.
func TestServeSIGHUPStormAtExitDoesNotKill(t *testing.T) {
	t.Parallel()
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "monolith") }))
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			p := startServe(t, mono, "routes: []\n", `{"flags":{}}`)
			storm := make(chan struct{})
			go func() {
				defer close(storm)
				for {
					select {
					case <-p.done:
						return
					default:
					}
					p.cmd.Process.Signal(syscall.SIGHUP)
					time.Sleep(200 * time.Microsecond)
				}
			}()
			time.Sleep(100 * time.Millisecond)
			p.signal(t, syscall.SIGTERM)
			if !p.exited(30 * time.Second) {
				t.Fatal("no exit")
			}
			<-storm
			var ee *exec.ExitError
			if errors.As(p.waitErr, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					t.Fatalf("killed by %v instead of exit 0", ws.Signal())
				}
			}
			if p.waitErr != nil {
				t.Errorf("exit: %v", p.waitErr)
			}
		})
	}
}

// A second SIGINT/SIGTERM during a long drain stops it at once, as
// operators (and Docker, systemd, kubectl users pressing Ctrl-C twice)
// expect; signal.NotifyContext swallowed it until serve returned.
func TestServeSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, "monolith")
	}))
	p := startServe(t, mono, "shutdown_timeout: 30s\nroutes: []\n", `{"flags":{}}`)
	go func() {
		resp, err := http.Get("http://" + p.listen + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	p.signal(t, syscall.SIGINT)
	waitHTTP(t, "http://"+p.admin+"/readyz", http.StatusServiceUnavailable)
	p.signal(t, syscall.SIGINT)
	if !p.exited(5 * time.Second) {
		t.Errorf("a second SIGINT did not stop serve within 5s (shutdown_timeout 30s, one request in flight)")
	}
}

// Unknown flags are usage errors: exit 2, as unknown commands are (and as
// Go's flag.ExitOnError does), with the problem printed once. They exited
// 1, the code for a bad config, and printed it twice.
func TestUnknownFlagExitsTwo(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "--bogus"},
		{"validate", "--bogus"},
		{"ramp", "--bogus", "orders", "5"},
		{"demo", "--bogus"},
	} {
		code, _, errOut := runCmd(args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage error); stderr:\n%s", args, code, errOut)
		}
	}
}

// Arguments a command refuses itself are usage errors too (the README:
// "a bad flag or argument exits 2 with the usage"): the problem once,
// then the usage. They exited 1 with no usage, like a bad config.
func TestBadArgumentsExitTwo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		problem string
	}{
		{[]string{"serve", "extra", "--config", "x.yaml"}, `serve: unexpected argument "extra"`},
		{[]string{"validate", "--config", "x.yaml", "extra"}, `validate: unexpected argument "extra"`},
		{[]string{"ramp", "--config", "x.yaml", "orders"}, "ramp: want ROUTE PERCENT"},
		{[]string{"ramp", "--config", "x.yaml", "orders", "150"}, `ramp: percent "150": want a number from 0 to 100`},
		{[]string{"ramp", "--config", "x.yaml", "orders", "abc"}, `ramp: percent "abc"`},
		{[]string{"serve", "--config", "x.yaml", "--log-format", "xml"}, `--log-format: "xml": want json or text`},
		{[]string{"serve", "--config", "x.yaml", "--log-level", "loud"}, `--log-level: "loud"`},
		{[]string{"demo", "--percent", "abc"}, `demo: --percent "abc": want a number from 0 to 100`},
		{[]string{"demo", "extra"}, `demo: unexpected argument "extra"`},
		{[]string{"demo", "--requests", "-1"}, `demo: --requests -1: want 0 or more`},
		{[]string{"demo", "--listen", "nonsense"}, `demo: --listen "nonsense": want host:port`},
		{[]string{"demo", "--admin", "127.0.0.1"}, `demo: --admin "127.0.0.1": want host:port`},
		{[]string{"demo", "--listen", "127.0.0.1:99999"}, `demo: --listen "127.0.0.1:99999": want host:port`},
		{[]string{"demo", "--admin", "127.0.0.1:-1"}, `demo: --admin "127.0.0.1:-1": want host:port`},
		{[]string{"version", "extra"}, `version: unexpected argument "extra"`},
	} {
		code, _, errOut := runCmd(tc.args...)
		if code != 2 || strings.Count(errOut, tc.problem) != 1 || !strings.Contains(errOut, "Usage") && !strings.Contains(errOut, "usage") {
			t.Errorf("%q: exit %d, want 2 with %q once and the usage; stderr:\n%s", tc.args, code, tc.problem, errOut)
		}
	}
}

// During the drain: new connections are refused, SIGHUP (good or bad
// config) neither kills nor reloads, the config watcher is stopped, the
// in-flight request completes, exit 0. (Coverage.)
func TestServeReloadDuringDrain(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		fmt.Fprint(w, "monolith")
	}))
	p := startServe(t, mono, "shutdown_timeout: 20s\nroutes: []\n", `{"flags":{}}`)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + p.listen + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-arrived
	p.signal(t, syscall.SIGTERM)
	waitHTTP(t, "http://"+p.admin+"/readyz", http.StatusServiceUnavailable)
	refusing(t, p.listen, 5*time.Second)
	b, _ := os.ReadFile(p.cfgPath)
	os.WriteFile(p.cfgPath, append(b, []byte("bogus: 1\n")...), 0o644)
	p.signal(t, syscall.SIGHUP)
	os.WriteFile(p.cfgPath, b, 0o644)
	p.signal(t, syscall.SIGHUP)
	// The admin listener still answers during the drain: one round trip
	// after the signals shows the process alive and still draining.
	waitHTTP(t, "http://"+p.admin+"/readyz", http.StatusServiceUnavailable)
	if p.exited(0) {
		t.Fatalf("SIGHUP during the drain ended the process: %v", p.waitErr)
	}
	close(release)
	if s := <-got; s != "monolith" {
		t.Errorf("in-flight request got %q", s)
	}
	if !p.exited(10 * time.Second) {
		t.Fatal("no exit after the drain")
	}
	if p.waitErr != nil {
		t.Errorf("exit: %v\n%s", p.waitErr, p.logs.String())
	}
	if strings.Contains(p.logs.String(), "config reload") {
		t.Errorf("reloaded during the drain:\n%s", p.logs.String())
	}
}

// With tracing on, the last spans are flushed within proxy.ExitGrace: an
// OTLP collector that accepts and never answers held the exit for the
// batch processor's export timeout (30 s), far past shutdown_timeout. The
// export error goes to the log, not as otel's plain line, and so does
// the SDK's complaint about an OTEL_* setting it cannot use, which it
// makes while the provider is built.
func TestServeTracingFlushBounded(t *testing.T) {
	t.Parallel()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	var held []net.Conn
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "monolith") }))
	p := startServe(t, mono, "shutdown_timeout: 1s\nroutes: []\n", `{"flags":{}}`,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+hole.Addr().String(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_TRACES_EXPORTER=",
		"OTEL_TRACES_SAMPLER=bogus")
	resp, err := http.Get("http://" + p.listen + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.signal(t, syscall.SIGTERM)
	if !p.exited(1*time.Second + proxy.ExitGrace + 2*time.Second) {
		t.Fatalf("serve still running well after SIGTERM (shutdown_timeout 1s, nothing in flight): the span flush to an unresponsive collector has no deadline\n%s", p.logs.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("a line that is not JSON in the log: %q", line)
		}
	}
	if !strings.Contains(p.logs.String(), "unsupported sampler: bogus") {
		t.Errorf("the log does not name the sampler the SDK could not use:\n%s", p.logs.String())
	}
}

// A route's flag whose value cannot be a percentage does not stop serve
// (validate refuses it): a Pod restarted during a bad edit of a fleet's
// flag file starts with that route on the monolith, as the running ones
// have it, and takes the route to the service once the flag is fixed.
func TestServeStartsWithUnusableFlag(t *testing.T) {
	t.Parallel()
	monolith := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "monolith") }))
	service := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "service") }))
	routes := "routes:\n  - {name: orders, path: /api/orders/*, service: " + service + "}\n  - {name: users, path: /api/users/*, service: " + service + "}\n" +
		"  - {name: search, path: /api/search/*, service: " + service + "}\n"
	const bad = `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":"100"},"defaultVariant":"on"},
	  "users-percent":{"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"},
	  "search-percent":{"state":"ENABLED","variants":{"on":100},"defaultVariant":"on","targeting":{"$ref":"nope"}}}}`
	p := startServe(t, monolith, routes, bad)
	if code, _, errOut := runCmd("validate", "--config", p.cfgPath); code != 1 || !strings.Contains(errOut, "routes[0].flag") ||
		!strings.Contains(errOut, "routes[1].flag") || !strings.Contains(errOut, `routes[2].flag: flag targeting rule cannot be run`) {
		t.Errorf("validate: code %d, stderr %q; want 1 naming the three flags", code, errOut)
	}
	answer := func(path string) string {
		resp, err := http.Get("http://" + p.listen + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, path := range []string{"/api/orders/1", "/api/users/1", "/api/search/1"} {
		if got := answer(path); got != "monolith" {
			t.Errorf("%s answered by %q with its flag unusable, want the monolith", path, got)
		}
	}
	logs := p.logs.String()
	for _, want := range []string{`routes[0].flag`, `routes[1].flag`, `routes[2].flag`, "stays on the monolith until the flag is fixed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	good := strings.NewReplacer(`"100"`, `100`, `150`, `100`, `{"$ref":"nope"}`, `{"if":[true,"on",null]}`).Replace(bad)
	if err := os.WriteFile(filepath.Join(filepath.Dir(p.cfgPath), "flags.json"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for answer("/api/orders/1") != "service" || answer("/api/users/1") != "service" || answer("/api/search/1") != "service" {
		if time.Now().After(deadline) {
			t.Fatal("the fixed flags did not take the routes to the service")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
