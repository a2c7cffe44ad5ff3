//go:build unix

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// headOf builds a request head of exactly size bytes (when size allows)
// with count header lines.
func headOf(path string, size, count int) string {
	fixed := "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	var extra strings.Builder
	for i := 3; i < count; i++ {
		fmt.Fprintf(&extra, "X-H%d: v\r\n", i)
	}
	pad := size - len(fixed) - extra.Len() - len("X-Pad: \r\n\r\n")
	return fixed + extra.String() + "X-Pad: " + strings.Repeat("p", max(pad, 0)) + "\r\n\r\n"
}

func TestRequestHeadOverLimitsIs431(t *testing.T) {
	t.Parallel()
	cfg := basicConfig + "limits: {max_header_bytes: 2KiB, max_header_count: 10}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil)
	cases := []struct {
		name        string
		size, count int
		status      int
		body        string
	}{
		{"at max_header_bytes", 2048, 3, 200, "monolith"},
		{"a byte over", 2049, 3, 431, "Request Header Fields Too Large: route orders: request headers over max_header_bytes (2048 bytes)\n"},
		{"far over (net/http's own limit)", 20 << 10, 3, 431, "431 Request Header Fields Too Large"},
		{"at max_header_count", 1024, 10, 200, "monolith"},
		{"a header over", 1024, 11, 431, "Request Header Fields Too Large: route orders: more request headers than max_header_count (10)\n"},
	}
	for _, c := range cases {
		head := headOf("/api/orders/1", c.size, c.count)
		if c.size < 10<<10 && len(head) != c.size {
			t.Fatalf("%s: head is %d bytes", c.name, len(head))
		}
		resps, closed := exchange(t, e.proxyAddr(), head, 5*time.Second)
		if len(resps) != 1 || resps[0].status != c.status || resps[0].body != c.body || !closed {
			t.Errorf("%s: got %+v (closed %v), want %d %q", c.name, resps, closed, c.status, c.body)
		}
	}
}

func TestUnderscoreHeaders(t *testing.T) {
	t.Parallel()
	const raw = "GET /api/orders/1 HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 10.0.0.1\r\nX-Kept: yes\r\nConnection: close\r\n\r\n"
	for _, c := range []struct {
		mode    string
		status  int
		dropped bool
	}{{"", 200, true}, {"drop", 200, true}, {"reject", 400, true}, {"allow", 200, false}} {
		var log upstreamLog
		cfg := basicConfig
		if c.mode != "" {
			cfg += "limits: {underscore_headers: " + c.mode + "}\n"
		}
		e := newEnv(t, cfg, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
		resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
		if got := statuses(resps); !slices.Equal(got, []int{c.status}) {
			t.Errorf("%q: answers %v, want %d", c.mode, got, c.status)
			continue
		}
		if c.status != 200 {
			if want := "route orders: header name with an underscore"; !strings.Contains(resps[0].body, want) {
				t.Errorf("%q: answer %q does not say %q", c.mode, resps[0].body, want)
			}
			if seen := log.requests(t, "x", 0); len(seen) != 0 {
				t.Errorf("%q: refused request reached the upstream", c.mode)
			}
			continue
		}
		seen := log.requests(t, "x", 1)
		if len(seen) != 1 {
			t.Fatalf("%q: upstream received %v", c.mode, seen)
		}
		h := seen[0].header
		if got := h.Get("X_Forwarded_For") != ""; got == c.dropped || h.Get("X-Kept") != "yes" {
			t.Errorf("%q: upstream headers %v", c.mode, h)
		}
		if xff := h.Get("X-Forwarded-For"); xff != "127.0.0.1" {
			t.Errorf("%q: X-Forwarded-For %q", c.mode, xff)
		}
	}
}

func TestBodyDeclaredOverMaxBodyIs413BeforeUpstream(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	// The orders route allows 4 KiB; everything else inherits 1 KiB.
	cfg := basicConfig + "    max_body: 4KiB\nlimits: {max_body: 1KiB}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	cases := []struct {
		name, raw string
		status    []int
		body      string
	}{
		{"inherited limit", "POST /home HTTP/1.1\r\nHost: b1\r\nContent-Length: 2000\r\n\r\n", []int{413},
			"Request Entity Too Large: route _default: request body over max_body (1024 bytes)\n"},
		{"waits for 100 Continue", "POST /home HTTP/1.1\r\nHost: b2\r\nExpect: 100-continue\r\nContent-Length: 1025\r\n\r\n", []int{413},
			"Request Entity Too Large: route _default: request body over max_body (1024 bytes)\n"},
		{"route's own limit", "POST /api/orders/1 HTTP/1.1\r\nHost: b3\r\nContent-Length: 5000\r\n\r\n", []int{413},
			"Request Entity Too Large: route orders: request body over max_body (4096 bytes)\n"},
		{"within the route's limit", "POST /api/orders/1 HTTP/1.1\r\nHost: b4\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("b", 2000), []int{200},
			"POST /api/orders/1 2000"},
		{"at the limit", "POST /home HTTP/1.1\r\nHost: b5\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("b", 1024), []int{200},
			"POST /home 1024"},
	}
	for _, c := range cases {
		host := strings.Split(strings.Split(c.raw, "Host: ")[1], "\r")[0]
		// The client sends no body when it is refused: the answer must not
		// wait for one.
		resps, closed := exchange(t, e.proxyAddr(), c.raw, 5*time.Second)
		if got := statuses(resps); !slices.Equal(got, c.status) || resps[0].body != c.body || !closed {
			t.Errorf("%s: got %+v (closed %v), want %v %q", c.name, resps, closed, c.status, c.body)
		}
		want := 0
		if c.status[0] == 200 {
			want = 1
		}
		if seen := log.requests(t, host, want); len(seen) != want {
			t.Errorf("%s: upstream received %v", c.name, seen)
		}
	}
}

func TestChunkedBodyOverMaxBodyIsCutThere(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	cfg := basicConfig + "limits: {max_body: 1KiB}\n"
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 600, strings.Repeat("c", 600))
	exact := fmt.Sprintf("%x\r\n%s\r\n", 424, strings.Repeat("c", 424))
	head := "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nHost: "

	resps, _ := exchange(t, e.proxyAddr(), head+"at-limit\r\n\r\n"+chunk+exact+"0\r\n\r\n", 5*time.Second)
	if got := statuses(resps); !slices.Equal(got, []int{200}) {
		t.Errorf("1024 bytes: answers %v", got)
	}
	if seen := log.requests(t, "at-limit", 1); len(seen) != 1 || len(seen[0].body) != 1024 || seen[0].bodyErr != nil {
		t.Errorf("1024 bytes: upstream received %v", seen)
	}

	resps, closed := exchange(t, e.proxyAddr(), head+"over\r\n\r\n"+chunk+chunk+chunk+"0\r\n\r\n", 5*time.Second)
	want := "Request Entity Too Large: route _default: request body over max_body (1024 bytes)\n"
	if len(resps) != 1 || resps[0].status != 413 || resps[0].body != want || !closed {
		t.Errorf("1800 bytes: got %+v (closed %v), want 413 %q", resps, closed, want)
	}
	seen := log.requests(t, "over", 1)
	if len(seen) != 1 || len(seen[0].body) > 1024 || seen[0].bodyErr == nil {
		t.Errorf("1800 bytes: upstream received %d request(s), want one whose body broke off within 1024 bytes", len(seen))
	}
}

func TestSlowlorisConnectionsDoNotDelayOthers(t *testing.T) {
	// Not parallel: it holds 2,000 sockets and measures latency.
	const n = 1000
	const timeout = time.Second
	raiseOpenFiles(t, 2*n+512)
	cfg := basicConfig + "limits: {read_header_timeout: 1s}\n"
	var served atomic.Int32
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			served.Add(1)
		}
	}), nil)

	var closed atomic.Int32
	early := make(chan time.Duration, n)
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { close(stop) })
	start := time.Now()
	for i := range n {
		c, err := net.Dial("tcp", e.proxyAddr())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		sent := time.Now()
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		wg.Add(1)
		go func() { // wait for the proxy to hang up
			defer wg.Done()
			io.Copy(io.Discard, c)
			if d := time.Since(sent); d < timeout*9/10 {
				early <- d
			}
			closed.Add(1)
		}()
		if i%2 == 0 { // half of them trickle a byte now and then, which must not buy time
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := io.WriteString(c, "a"); err != nil {
							return
						}
					}
				}
			}()
		}
	}
	opened := time.Since(start)

	// While they are held, others are served at once.
	for range 5 {
		t0 := time.Now()
		resp, body := e.get("/api/orders/1")
		if d := time.Since(t0); resp.StatusCode != 200 || d > 500*time.Millisecond {
			t.Errorf("request among %d slow connections: %d %q in %v", n, resp.StatusCode, body, d)
		}
	}
	if time.Since(start) < timeout*9/10 && closed.Load() != 0 {
		t.Errorf("%d slow connections closed before read_header_timeout", closed.Load())
	}
	// And every one of them is hung up on once the timeout passes.
	eventually(t, 10*time.Second, "all slow connections closed", func() bool { return closed.Load() == n })
	close(early)
	for d := range early {
		t.Errorf("a slow connection was closed after %v, before read_header_timeout", d)
		break
	}
	if served.Load() != 0 {
		t.Errorf("%d slow requests were served", served.Load())
	}
	t.Logf("%d connections opened in %v, all closed %v after the first", n, opened, time.Since(start))
}

// waitGoroutines polls until no more goroutines run than baseline, and
// prints them if that does not happen.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var b bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStalledRequestBodyIsDisconnectedAndUpstreamCancelled(t *testing.T) {
	// Not parallel: counts goroutines.
	cfg := basicConfig + "limits: {stall_timeout: 300ms}\n"
	upstreamErr := make(chan error, 2)
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		upstreamErr <- err
	}), nil)
	// Warm up the connection pools, so that the baseline counts them.
	exchange(t, e.proxyAddr(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 5*time.Second)
	if err := <-upstreamErr; err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("s", 100))
	start := time.Now()
	select {
	case err := <-upstreamErr:
		if err == nil {
			t.Fatal("upstream read a whole body the client never sent")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream call not cancelled")
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("upstream call cancelled after %v, want about stall_timeout (300ms)", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("client got %v, %v; want 408", resp, err)
	} else if _, err := io.Copy(io.Discard, br); isTimeout(err) {
		t.Error("connection left open")
	}
	c.Close()
	waitGoroutines(t, baseline)
}

func TestStalledResponseReaderIsDisconnectedAndUpstreamCancelled(t *testing.T) {
	// Not parallel: counts goroutines.
	cfg := basicConfig + "limits: {stall_timeout: 300ms}\n"
	stopped := make(chan error, 2)
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		buf := make([]byte, 32<<10)
		for { // an endless download
			if _, err := w.Write(buf); err != nil {
				stopped <- err
				return
			}
		}
	}), nil)
	exchange(t, e.proxyAddr(), "GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	baseline := runtime.NumGoroutine()

	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReaderSize(c, 1024)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	// Stop reading.
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream call not cancelled")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, br); isTimeout(err) {
		t.Error("connection left open")
	}
	c.Close()
	waitGoroutines(t, baseline)
}

// panicking swaps in a route table whose default route forwards with rp
// (which panics), and returns a function that swaps the good one back.
func panicking(t *testing.T, s *Server, rp *httputil.ReverseProxy) (restore func()) {
	t.Helper()
	good := s.table.Load()
	bad, err := s.compile(good.cfg)
	if err != nil {
		t.Fatal(err)
	}
	boom := *bad.fallback.monolith
	boom.rp, boom.direct = rp, nil // every request through rp
	bad.fallback.monolith = &boom
	s.table.Store(bad)
	return func() { s.table.Store(good) }
}

func panicInRewrite(v any) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{Rewrite: func(*httputil.ProxyRequest) { panic(v) }}
}

// panicMidBody is a forwarder whose response body panics after its first
// bytes reached the client.
func panicMidBody() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) {},
		FlushInterval: -1,
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: &panicBody{}, Request: r, ContentLength: -1}, nil
		}),
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type panicBody struct{ read bool }

func (b *panicBody) Read(p []byte) (int, error) {
	if !b.read {
		b.read = true
		return copy(p, "partial "), nil
	}
	panic("boom mid-body")
}

func (b *panicBody) Close() error { return nil }

func TestPanicAfterResponseBeganCutsItInsteadOfSplicing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	defer panicking(t, e.srv, panicMidBody())()
	resps, closed := exchange(t, e.proxyAddr(), "GET /home HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].status != 200 || resps[0].body != "partial " || !closed {
		t.Errorf("got %+v (closed %v), want the 200 cut after %q", resps, closed, "partial ")
	}
	if v := e.waitMetric("strangler_panics_total", 1); v != 1 {
		t.Errorf("strangler_panics_total = %v", v)
	}
}

func TestPanicIsAnswered500LoggedCountedAndServingGoesOn(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnvWith(t, basicConfig, flagJSON("orders-percent", 0), nil, nil,
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	restore := panicking(t, e.srv, panicInRewrite("boom"))
	resps, closed := exchange(t, e.proxyAddr(), "GET /home HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	want := "Internal Server Error: route _default: internal error\n"
	if len(resps) != 1 || resps[0].status != 500 || resps[0].body != want || !closed {
		t.Errorf("got %+v (closed %v), want 500 %q", resps, closed, want)
	}
	if v := e.waitMetric("strangler_panics_total", 1); v != 1 {
		t.Errorf("strangler_panics_total = %v", v)
	}
	if l := logs.String(); !strings.Contains(l, "route=_default") || !strings.Contains(l, "panic=boom") || !strings.Contains(l, "limits_test.go") {
		t.Errorf("log does not name the route, the panic and where it was:\n%s", l)
	}
	restore()
	if resp, body := e.get("/home"); resp.StatusCode != 200 || body != "monolith" {
		t.Errorf("after the panic: %d %q", resp.StatusCode, body)
	}
}

func TestAbortHandlerPanicIsPassedOnUncounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	restore := panicking(t, e.srv, panicInRewrite(http.ErrAbortHandler))
	defer restore()
	resps, closed := exchange(t, e.proxyAddr(), "GET /home HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if len(resps) != 0 || !closed {
		t.Errorf("got %+v (closed %v), want the connection cut without an answer", resps, closed)
	}
	if v := e.metric("strangler_panics_total"); v != 0 {
		t.Errorf("strangler_panics_total = %v", v)
	}
}

// pattern is an endless reader of a repeating block.
type pattern struct{ off int }

var patternBlock = bytes.Repeat([]byte("0123456789abcdef"), 4096)

func (p *pattern) Read(b []byte) (int, error) {
	n := copy(b, patternBlock[p.off:])
	p.off = (p.off + n) % len(patternBlock)
	return n, nil
}

// TestBigTransfersStreamInBoundedMemory sends 1 GiB up and 1 GiB down
// through the built binary, and reports the proxy process's peak RSS.
// Opt-in: STRANGLER_BIG=1 go test -run BigTransfers -v ./proxy/
func TestBigTransfersStreamInBoundedMemory(t *testing.T) {
	if os.Getenv("STRANGLER_BIG") != "1" {
		t.Skip("set STRANGLER_BIG=1 to stream 1 GiB each way through the built binary")
	}
	const size = 1 << 30
	bin := filepath.Join(t.TempDir(), "strangler")
	build := exec.Command("go", "build", "-o", bin, "../cmd/strangler")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, io.LimitReader(&pattern{}, size))
	})
	mono := newRawListener(t, backend)
	dir := t.TempDir()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	writeFile(t, filepath.Join(dir, "flags.json"), flagJSON())
	writeFile(t, filepath.Join(dir, "strangler.yaml"), fmt.Sprintf(
		"listen: %s\nadmin_listen: %s\nmonolith: %s\nflags: {file: flags.json}\n", proxyAddr, adminAddr, mono))
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "strangler.yaml"), "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	eventually(t, 10*time.Second, "proxy ready", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, chunked := range []bool{false, true} {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+proxyAddr+"/upload", io.LimitReader(&pattern{}, size))
		if !chunked {
			req.ContentLength = size
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != strconv.Itoa(size) {
			t.Fatalf("upload (chunked %v): %d %q", chunked, resp.StatusCode, b)
		}
		t.Logf("1 GiB upload (chunked %v) in %v", chunked, time.Since(t0))
	}
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+proxyAddr+"/download", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	t.Logf("1 GiB download in %v", time.Since(t0))
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") || strings.HasPrefix(line, "VmRSS:") {
			t.Log(line)
		}
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
			if v > 64<<10 {
				t.Errorf("peak RSS %d KiB, over 64 MiB", v)
			}
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	defer ln.Close()
	return ln.Addr().String()
}

// newRawListener serves h on a loopback listener and returns its URL.
func newRawListener(t *testing.T, h http.Handler) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// browserHead is a typical browser request head (~500 bytes).
const browserHead = "GET /api/orders/7?expand=items HTTP/1.1\r\nHost: shop.example\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: application/json, text/plain, */*\r\nAccept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\nReferer: https://shop.example/orders\r\n" +
	"Cookie: session=3f2a9c1e8b7d4a6f9e0c1b2a3d4e5f60; theme=dark; consent=1\r\n" +
	"X-User-Id: user-4711\r\nConnection: keep-alive\r\nSec-Fetch-Mode: cors\r\n\r\n"

// BenchmarkGuardHead is the guard's work on one request head: the framer
// over its bytes, the verdict queued, and admit's look-up of it.
func BenchmarkGuardHead(b *testing.B) {
	a, c := net.Pipe()
	defer a.Close()
	defer c.Close()
	g := &guardConn{Conn: a, f: framer{maxHead: 72 << 10}}
	head := []byte(browserHead)
	uri := "/api/orders/7?expand=items"
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, cut := g.follow(head); cut {
			b.Fatal("cut")
		}
		if v := g.pop(uri); v.reason != reasonOK {
			b.Fatal(reasonText[v.reason])
		}
	}
}

// BenchmarkGuardedRequest is one keep-alive request through a real socket,
// served by Serve (guarded) and, for comparison, by a plain http.Server on
// the same handler.
func BenchmarkGuardedRequest(b *testing.B) {
	body := strings.Repeat("x", 1024)
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	e := newEnv(b, basicConfig+"limits: {max_header_count: 100}\n", flagJSON("orders-percent", 10), backend, backend)
	plain := &http.Server{Handler: e.srv}
	ln := listen(b)
	go plain.Serve(ln)
	b.Cleanup(func() { plain.Close() })
	for _, bc := range []struct{ name, addr string }{{"guarded", e.proxyAddr()}, {"plain", ln.Addr().String()}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", bc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := io.WriteString(c, browserHead); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// Requests the proxy answers itself, without calling an upstream (a
// refusal before routing or after, OPTIONS *), are counted and logged as
// backend "proxy", never as the monolith's answers; and a route's codes
// of an outage exist at 0 from its first request on.
func TestProxysOwnAnswersAreCountedAsSuch(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	var monolith atomic.Int32
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { monolith.Add(1) })
	e := newEnvWith(t, basicConfig+"access_log: true\nlimits: {max_header_count: 10, max_body: 1KiB}\n", flagJSON("orders-percent", 0), mono, nil,
		Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	many := []string{"X-User-Id", "u"}
	for i := range 12 {
		many = append(many, fmt.Sprint("X-H", i), "v")
	}
	if resp, _ := e.get("/api/orders/1", many...); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("too many header lines: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(strings.Repeat("x", 2048)))
	if resp, _ := e.do(req); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over max_body: %d", resp.StatusCode)
	}
	for _, raw := range []string{"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.proxyURL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
	}
	if monolith.Load() != 0 {
		t.Fatalf("the monolith was called %d times", monolith.Load())
	}
	for series, want := range map[string]float64{
		`strangler_requests_total{backend="proxy",code="431",route="orders"}`:                     1,
		`strangler_requests_total{backend="proxy",code="413",route="orders"}`:                     1,
		`strangler_requests_total{backend="proxy",code="405",route="_default"}`:                   1,
		`strangler_requests_total{backend="proxy",code="200",route="_default"}`:                   1,
		`strangler_request_duration_seconds_count{backend="proxy",role="primary",route="orders"}`: 2,
		`strangler_requests_total{backend="monolith",code="413",route="orders"}`:                  -1,
	} {
		if got := e.waitMetric(series, want); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	eventually(t, 2*time.Second, "4 access lines", func() bool { return strings.Count(logs.String(), `"backend":"proxy"`) == 4 })

	e.get("/api/orders/1", "X-User-Id", "u")
	for _, code := range []string{"500", "502", "503", "504"} {
		if got := e.metric(`strangler_requests_total{backend="monolith",code="` + code + `",route="orders"}`); got != 0 {
			t.Errorf("after the route's first request, code %s = %v, want a series at 0", code, got)
		}
	}
}
