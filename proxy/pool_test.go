package proxy

// The direct path's pool and I/O (h1.go, h1read.go, direct.go,
// probe_unix.go) under concurrency and failure, on real sockets.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// openFDs counts the process's open file descriptors (Linux only).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	return len(ents)
}

// panicOnWriteHeader stands for any bug that panics between the upstream
// call and the body's Close (in forward: u.answered, the recorder's
// WriteHeader or tee, the Flush); Server.recoverPanic turns such a panic
// into a 500 and the process goes on (doc.go, "A panic while serving a
// request answers it 500 ... the process goes on").
type panicOnWriteHeader struct{ http.ResponseWriter }

func (w panicOnWriteHeader) WriteHeader(int) { panic("boom in WriteHeader") }

// A panic while the direct path holds a response body: the handler
// recovers (as Server.recoverPanic does), and the upstream connection is
// closed, as net/http's Transport closes it when the request's context
// ends with its body unread. The socket stayed open until a garbage
// collection ran the netFD's finalizer (the context's AfterFunc only sets
// a past deadline); forward now closes the body on every way out.
func TestPoolPanicWhileHoldingABodyClosesTheConnection(t *testing.T) {
	for _, way := range []via{viaDirect, viaNetHTTP} {
		t.Run(string(way), func(t *testing.T) {
			// No collection during the test: the leak must not be hidden
			// by a finalizer that would run at some unknown later time.
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			upstreamClosed := make(chan struct{})
			var once sync.Once
			addr := acceptEach(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
				io.Copy(io.Discard, br) // until the proxy closes its side
				once.Do(func() { close(upstreamClosed) })
			})
			var ts transports
			tr := ts.get(testTimeouts)
			t.Cleanup(tr.CloseIdleConnections)
			var rt http.RoundTripper = tr
			if way == viaNetHTTP {
				rt = tr.std
			}
			tu, _ := url.Parse("http://" + addr)
			m := NewMetrics(prometheus.NewRegistry())
			u := newUpstream(upstreamOptions{route: "r", backend: backendMonolith, target: tu, transport: rt,
				buffers: newBufferPool(), metrics: m.bindBackend("r", backendMonolith), log: slog.New(slog.DiscardHandler)})
			if (u.direct != nil) != (way == viaDirect) {
				t.Fatalf("direct path %v for %s", u.direct != nil, way)
			}
			var panicked atomic.Int32
			ln := listen(t)
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() {
					if v := recover(); v != nil {
						panicked.Add(1)
						http.Error(w, "internal error", http.StatusInternalServerError)
					}
				}()
				u.serve(panicOnWriteHeader{w}, r)
			}), ErrorLog: log.New(io.Discard, "", 0)}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })

			status, _, err := getOnce(t, ln.Addr().String(), "GET", "/")
			if err != nil || status != 500 || panicked.Load() != 1 {
				t.Fatalf("status %d, err %v, panics %d; want the panic answered 500", status, err, panicked.Load())
			}
			select {
			case <-upstreamClosed:
			case <-time.After(3 * time.Second):
				t.Errorf("%s: the upstream connection is still open 3s after the handler panicked and its request ended (fd leaked until a GC finalizer closes it)", way)
				// Show that only the collector frees it.
				debug.SetGCPercent(100)
				runtime.GC()
				runtime.GC()
				select {
				case <-upstreamClosed:
					t.Logf("after runtime.GC(): closed (by the netFD finalizer)")
				case <-time.After(3 * time.Second):
					t.Logf("after runtime.GC(): still open")
				}
			}
		})
	}
}

// A burst of 2,000 concurrent requests through the proxy on the direct
// path: each needs a connection of its own (the upstream holds its answers
// until all arrived), then the pool keeps at most 512 (README: "up to 512
// idle per host"), closes the rest, and nothing else (goroutines,
// descriptors) stays behind.
func TestPoolBurstOf2000IsBoundedAfterwards(t *testing.T) {
	const n = 2000
	var arrived atomic.Int32
	all := make(chan struct{})
	var allOnce sync.Once
	var open atomic.Int32
	addr := acceptEach(t, func(c net.Conn) {
		open.Add(1)
		defer open.Add(-1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if arrived.Add(1) == n {
				allOnce.Do(func() { close(all) })
			}
			select {
			case <-all:
			case <-time.After(20 * time.Second):
			}
			if !echoPathAnswer(c, req.URL.Path) {
				return
			}
		}
	})
	// 2,000 connects at once on a busy machine: an accept queue that
	// overflows costs a SYN retransmission (a second or more), past the
	// default connect timeout; the test is about the pool, not that.
	cfg := "timeouts: {connect: 20s}\n" + strings.Replace(basicConfig, "monolith: {{monolith}}", "monolith: http://"+addr, 1)
	e := newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil)
	g0 := runtime.NumGoroutine()
	fd0 := openFDs(t)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}, Timeout: 60 * time.Second}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	var wg sync.WaitGroup
	var bad atomic.Int32
	var firstErr atomic.Value
	for i := range n {
		wg.Go(func() {
			path := fmt.Sprintf("/burst/%d", i)
			resp, err := client.Get(e.proxyURL + path)
			if err != nil {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != path {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q", resp.StatusCode, b))
			}
		})
	}
	wg.Wait()
	if b := bad.Load(); b != 0 {
		t.Fatalf("%d of %d requests failed; first: %v", b, n, firstErr.Load())
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	eventually(t, 10*time.Second, "the upstream holds at most 512 connections after the burst", func() bool { return open.Load() <= 512 })
	t.Logf("upstream connections open after the burst: %d", open.Load())
	var pooled int
	for _, tr := range e.srv.ts.m {
		tr.pools.Range(func(_, v any) bool {
			p := v.(*h1Pool)
			p.mu.Lock()
			pooled += len(p.idle)
			p.mu.Unlock()
			return true
		})
	}
	if pooled > 512 {
		t.Fatalf("the pools hold %d idle connections, want at most 512", pooled)
	}
	e.srv.ts.closeIdle()
	eventually(t, 10*time.Second, "the upstream sees every connection closed", func() bool { return open.Load() == 0 })
	eventually(t, 10*time.Second, "descriptors back to where they were", func() bool { return openFDs(t) <= fd0+2 })
	eventually(t, 10*time.Second, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= g0+5 })
}

// Idle connections put at different times are each closed once they have
// waited the idle timeout, with no request to take them: the reaper
// re-arms for the next oldest and stops once the pool is empty.
func TestPoolStaggeredIdleEviction(t *testing.T) {
	t.Parallel()
	const idle = 150 * time.Millisecond
	u := startCanned(t, func(n int, _ *http.Request) (string, bool) {
		return okResponse, false
	})
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(5 * time.Second), Idle: Duration(idle)})
	// Two connections at once, then a third a little later.
	var wg sync.WaitGroup
	hold := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			resp, err := tr.RoundTrip(newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/"))
			if err != nil {
				t.Error(err)
				return
			}
			<-hold // both connections in use at once
			io.ReadAll(resp.Body)
			resp.Body.Close()
		})
	}
	eventually(t, 5*time.Second, "two connections", func() bool { return u.accepts.Load() == 2 })
	close(hold)
	wg.Wait()
	put := time.Now()
	eventually(t, 5*time.Second, "the first two are evicted", func() bool { return u.clientClosed.Load() == 2 })
	if d := time.Since(put); d < idle-20*time.Millisecond {
		t.Fatalf("evicted after %v, before the idle timeout %v", d, idle)
	}
	if f := fetch(tr, newRequest(t, t.Context(), http.MethodGet, "http://"+u.addr+"/")); f.err != nil {
		t.Fatal(f.err)
	}
	eventually(t, 5*time.Second, "the third is evicted too", func() bool { return u.clientClosed.Load() == 3 })
	p := tr.pool(u.addr)
	eventually(t, 5*time.Second, "the reaper stops with the pool empty", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 0 && !p.ready
	})
}

// A request head larger than the socket buffers, to an upstream that
// reads nothing: sendAndAwait's write blocks inside the raw read's
// callback. A client that goes away must end the call promptly, close the
// connection, and leave no goroutine behind.
func TestPoolHugeHeadBlockedWriteIsCancelable(t *testing.T) {
	t.Parallel()
	accepted := make(chan net.Conn, 1)
	addr := acceptEach(t, func(c net.Conn) {
		accepted <- c
		<-t.Context().Done() // reads nothing; the test reads c after the cancel

	})
	tr := newH1(t, Timeouts{Connect: Duration(time.Second), ResponseHeader: Duration(30 * time.Second), Idle: Duration(time.Minute)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := newRequest(t, ctx, http.MethodGet, "http://"+addr+"/")
	req.Header.Set("X-Big", strings.Repeat("a", 16<<20))
	done := make(chan fetched, 1)
	go func() { done <- fetch(tr, req) }()
	up := <-accepted
	// 16 MiB cannot all sit in the socket buffers of a reader that reads
	// nothing: once bytes arrived and the call has not returned, its
	// write is blocked in sendAndAwait's callback.
	eventually(t, 5*time.Second, "the head's first bytes reach the upstream", func() bool { return socketHasBytes(up) })
	select {
	case f := <-done:
		t.Fatalf("returned before the cancel, with 16 MiB unread: %v", f.err)
	default:
	}
	cancel()
	select {
	case f := <-done:
		if !errors.Is(f.err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", f.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the call is still blocked in its write 3s after the cancel")
	}
	// The proxy closed its side: the upstream, now reading, meets the end.
	up.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, up)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("upstream side: %v, want the proxy's close", err)
	}
}

// The classic keep-alive race through the proxy: the upstream reads the
// request that arrives on a pooled connection, then closes it without a
// byte (its keep-alive timer fired as the request came). A body-less GET,
// or a POST with an Idempotency-Key, is replayed on a fresh connection; a
// plain POST must not be (502, the upstream saw it once).
func TestPoolKeepAliveRaceThroughTheProxy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method, key string
		replays     bool
	}{{"GET", "", true}, {"POST", "", false}, {"POST", "k1", true}} {
		t.Run(tt.method+tt.key, func(t *testing.T) {
			t.Parallel()
			var reqs, conns atomic.Int32
			addr := acceptEach(t, func(c net.Conn) {
				conns.Add(1)
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if reqs.Add(1) == 2 {
						return // read, then close without answering
					}
					if !echoPathAnswer(c, req.Method) {
						return
					}
				}
			})
			px := proxyInFrontOf(t, addr, "")
			c, err := net.Dial("tcp", px)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			send := func(method, key string) (int, string) {
				h := ""
				if key != "" {
					h = "Idempotency-Key: " + key + "\r\n"
				}
				fmt.Fprintf(c, "%s /ka HTTP/1.1\r\nHost: x\r\n%s\r\n", method, h)
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if st, b := send("GET", ""); st != 200 || b != "GET" {
				t.Fatalf("first: %d %q", st, b)
			}
			st, b := send(tt.method, tt.key)
			if tt.replays {
				if st != 200 || b != tt.method || reqs.Load() != 3 || conns.Load() != 2 {
					t.Fatalf("%s: %d %q, upstream read %d requests on %d connections; want it replayed once on a new one", tt.method, st, b, reqs.Load(), conns.Load())
				}
				return
			}
			if st != http.StatusBadGateway || reqs.Load() != 2 {
				t.Fatalf("%s: %d %q, upstream read %d requests; want 502 and no replay", tt.method, st, b, reqs.Load())
			}
		})
	}
}

// An upstream whose keep-alive timeout is far shorter than the proxy's
// (net/http server, IdleTimeout 20ms), with requests arriving around that
// timeout: every GET is answered (the peek drops connections it closed;
// a close that races the request is replayed), and the connections the
// upstream closed do not pile up on the proxy's side.
func TestPoolShortUpstreamKeepAliveChurn(t *testing.T) {
	t.Parallel()
	up := &http.Server{Handler: whoAmI("monolith"), IdleTimeout: 20 * time.Millisecond, ErrorLog: log.New(io.Discard, "", 0)}
	ln := listen(t)
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })
	px := proxyInFrontOf(t, ln.Addr().String(), "")
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 120 {
		// Spread the gaps over the upstream's timeout, on both sides of it.
		time.Sleep(time.Duration(10+i%25) * time.Millisecond)
		resp, err := client.Get("http://" + px + "/churn")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "monolith" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
}

// The package builds for every GOOS a user might run a proxy on:
// probe_unix.go uses syscall.MSG_DONTWAIT, which aix does not define, so
// aix takes probe_other.go (it did not build there).
func TestBuildsOnEveryUnix(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cross-compiles")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH")
	}
	for _, target := range []string{"darwin/arm64", "freebsd/amd64", "openbsd/amd64", "netbsd/amd64", "solaris/amd64", "aix/ppc64", "windows/amd64"} {
		goos, goarch, _ := strings.Cut(target, "/")
		cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", os.DevNull, ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s GOARCH=%s go build ./proxy: %v\n%s", goos, goarch, err, out)
		}
	}
}
