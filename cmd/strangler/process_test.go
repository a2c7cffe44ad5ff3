package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run the real command in a child process: the test
// binary re-executes itself with STRANGLER_MAIN=1, so signals and exit
// codes are those of the shipped program.
func TestMain(m *testing.M) {
	if os.Getenv("STRANGLER_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// command is the shipped program, run as a child with args. The child
// starts with SIGHUP's default action: once an in-process serve
// (runCmd("serve", ...)) has returned, this process ignores SIGHUP
// (serve's deferred signal.Ignore), exec passes that on, and a serve that
// did not catch SIGHUP would pass the SIGHUP tests.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	argv := append(append(slices.Clone(defaultHUP()), os.Args[0]), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "STRANGLER_MAIN=1")
	return cmd
}

// defaultHUP is the command that starts another with SIGHUP's default
// action (GNU env 8.31 or later), or nil where there is none.
var defaultHUP = sync.OnceValue(func() []string {
	wrap := []string{"env", "--default-signal=HUP"}
	if exec.Command(wrap[0], wrap[1], "true").Run() != nil {
		return nil
	}
	return wrap
})

// freeAddrs returns n loopback addresses free a moment ago, all
// different: each is held until the last is drawn, since the kernel may
// hand a port just closed to the next bind (a CI run drew one port for
// serve's listen and admin_listen five times in a row).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d in time (last: %v)", url, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeRunsAndExitsZeroOnSIGTERM(t *testing.T) {
	t.Parallel()
	release, arrived := make(chan struct{}), make(chan struct{})
	mono := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		fmt.Fprint(w, "monolith")
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go mono.Serve(ln)
	t.Cleanup(func() { mono.Close() })

	p := startServe(t, "http://"+ln.Addr().String(), "routes: []\n", `{"flags":{}}`)
	listen, admin, logs := p.listen, p.admin, p.logs

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-arrived // the request is in flight through the proxy
	p.cmd.Process.Signal(syscall.SIGTERM)
	// Shutting down while the request still runs: not ready any more, so a
	// load balancer stops sending.
	waitHTTP(t, "http://"+admin+"/readyz", http.StatusServiceUnavailable)
	close(release)
	if got := <-slow; got != "monolith" {
		t.Errorf("in-flight request got %q", got)
	}
	<-p.done
	if err := p.waitErr; err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Errorf("logs are not JSON or lack the shutdown line:\n%s", logs.String())
	}
}

func TestServeReloadsOnSIGHUP(t *testing.T) {
	t.Parallel()
	backend := func(name string) string {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) })}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return "http://" + ln.Addr().String()
	}
	mono, svc := backend("monolith"), backend("service")
	p := startServe(t, mono, "routes: []\n", `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":100},"defaultVariant":"on"}}}`)
	listen, cfgPath, logs, cmd := p.listen, p.cfgPath, p.logs, p.cmd
	base := fmt.Sprintf("listen: %s\nadmin_listen: %s\nmonolith: %s\nflags: {file: flags.json}\n", p.listen, p.admin, mono)
	get := func() string {
		resp, err := http.Get("http://" + listen + "/api/orders/1")
		if err != nil {
			return err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	if got := get(); got != "monolith" {
		t.Fatalf("before reload: %q", got)
	}
	os.WriteFile(cfgPath, []byte(base+"routes:\n  - {name: orders, path: /api/orders/*, service: \""+svc+"\"}\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for get() != "service" {
		if time.Now().After(deadline) {
			t.Fatalf("reloaded config not applied:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The new routes serve before the reload is logged, and the log
	// reaches us through a pipe: wait for it too.
	for !strings.Contains(logs.String(), `"msg":"config reloaded"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload in the log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A refused reload names the file, as a refused start does: an
	// operator may be editing several.
	os.WriteFile(cfgPath, []byte(base+"routes:\n  - {name: orders, path: /api/orders/*, service: \"htp:/x\"}\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	want := `"msg":"config reload refused; the running config stays","path":` + strconv.Quote(cfgPath) + `,"problem":"routes[0].service: invalid URL`
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal naming the file in the log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := get(); got != "service" {
		t.Errorf("after a refused reload: %q", got)
	}
}

func TestDemoRunsAndStopsOnCtrlC(t *testing.T) {
	t.Parallel()
	cmd, got, stderr := startDemo(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--requests", "100")
	m := regexp.MustCompile(`proxy:\s+(http://\S+)`).FindStringSubmatch(got)
	a := regexp.MustCompile(`admin:\s+(http://\S+)/api/routes`).FindStringSubmatch(got)
	if m == nil || a == nil {
		t.Fatalf("demo output lacks URLs:\n%s\nstderr:\n%s", got, stderr.String())
	}
	split := regexp.MustCompile(`(\d+) served by the service, (\d+) by the monolith`).FindStringSubmatch(got)
	if split == nil || split[1] == "0" || split[2] == "0" {
		t.Errorf("demo traffic summary: %q", got)
	}
	if !strings.Contains(got, "Shadow comparison found: GET /api/orders/") || !strings.Contains(got, `body /total`) {
		t.Errorf("demo did not show the deliberate divergence:\n%s", got)
	}
	waitHTTP(t, a[1]+"/readyz", 200)
	resp, err := http.Get(a[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `strangler_route_percent{route="orders"} 10`) {
		t.Errorf("demo metrics lack the 10%% route")
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exit: %v\n%s", err, stderr.String())
	}
}

// startDemo starts `strangler demo args...` and returns its stdout up to
// and with the line that says it is ready ("Press Ctrl-C"), and its
// stderr as it comes.
func startDemo(t *testing.T, args ...string) (*exec.Cmd, string, *lockedBuffer) {
	t.Helper()
	cmd := command(t, append([]string{"demo"}, args...)...)
	// A pipe of its own, not StdoutPipe: what the demo prints after that
	// line is read (and dropped) while the test goes on, and Wait does
	// not wait for that read.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdout.Close() })
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = w, stderr
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A demo that never gets to that line is killed, which ends the
	// read below.
	killer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	t.Cleanup(func() { killer.Stop(); cmd.Process.Kill() })
	var text strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		text.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	return cmd, text.String(), stderr
}

// exitCode starts cmd and returns its exit code, failing the test (with
// why, and what the child wrote to output) unless it exits on its own
// within d.
func exitCode(t *testing.T, cmd *exec.Cmd, d time.Duration, why string, output *lockedBuffer) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(d):
		cmd.Process.Kill() // by PID: only the child this test started
		<-done
		t.Fatalf("%s:\n%s", why, output.String())
		return 0
	}
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
