package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readTimeoutConfig routes orders to the service with the route's own
// timeouts.read at 1s.
var readTimeoutConfig = basicConfig + "    timeouts: {read: 1s}\n"

// An upstream that sends its head and part of its body and then stalls is
// cut after timeouts.read, on both forwarding paths and for every framing:
// the client gets what came and then the end of the connection, and the
// stall is counted as the upstream's timeout. Before, such an answer held
// the client and both connections until one of them gave up.
func TestReadTimeoutCutsAStalledBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request) // sends "part", then stalls until the proxy lets go
	}{{
		name: "content-length",
		answer: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
	}, {
		name: "chunked",
		answer: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
	}, {
		// net/http's reader of trailers drops the read's error (see
		// trailerStall): counted as a reset before.
		name:   "before the trailers",
		answer: hijackedAnswer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n4\r\npart\r\n0\r\n"),
	}, {
		name:   "in the trailers",
		answer: hijackedAnswer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n4\r\npart\r\n0\r\nX-T: v"),
	}, {
		name:   "until close",
		answer: hijackedAnswer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart"),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stalled := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				tc.answer(w, r)
			})
			e := newEnv(t, readTimeoutConfig, flagJSON("orders-percent", 100), nil, stalled)
			for i, method := range bothPaths {
				resp := sendOn(t, e, method)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: status %d", method, resp.StatusCode)
				}
				type read struct {
					b   string
					err error
				}
				got := make(chan read, 1)
				go func() {
					b, err := io.ReadAll(resp.Body)
					got <- read{string(b), err}
				}()
				select {
				case r := <-got:
					// The cut shows: an answer ended cleanly would pass
					// for a whole one.
					if r.b != "part" || r.err == nil {
						t.Errorf("%s: body %q, %v; want the part that came, then an error", method, r.b, r.err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("%s: the answer is still open 20s after its body stalled (timeouts.read: 1s)", method)
				}
				resp.Body.Close()
				if v := e.waitMetric(`strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`, float64(i+1)); v != float64(i+1) {
					t.Errorf("%s: timeouts counted %v, want %d", method, v, i+1)
				}
			}
		})
	}
}

// hijackedAnswer sends raw as the answer and holds the connection open
// until the proxy lets go.
func hijackedAnswer(raw string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		brw.WriteString(raw)
		brw.Flush()
		io.Copy(io.Discard, c)
	}
}

// timeouts.read bounds each wait for more of the body, not the body's
// whole transfer: a stream whose bytes keep coming within it (Server-Sent
// Events, a slow export) runs for longer, and a client that reads slowly
// (the body waits in the sockets meanwhile) is not the upstream's stall.
func TestReadTimeoutSparesBodiesThatMove(t *testing.T) {
	t.Parallel()
	const big = 32 << 20 // more than the sockets between upstream and client hold
	for _, tc := range []struct {
		name   string
		answer http.HandlerFunc
		client func(r io.Reader) (int64, error)
		want   int64
	}{{
		name: "a trickle",
		answer: func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			for range 25 { // 2.5 s in all, a byte each 100 ms
				io.WriteString(w, "x")
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		},
		client: func(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) },
		want:   25,
	}, {
		name: "a slow client",
		answer: func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", strconv.Itoa(big))
			chunk := make([]byte, 64<<10)
			for sent := 0; sent < big; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
		client: func(r io.Reader) (int64, error) {
			n, err := io.CopyN(io.Discard, r, 1<<10)
			if err != nil {
				return n, err
			}
			time.Sleep(2500 * time.Millisecond) // the client pauses: the stimulus, not a wait
			m, err := io.Copy(io.Discard, r)
			return n + m, err
		},
		want: big,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, readTimeoutConfig, flagJSON("orders-percent", 100), nil, tc.answer)
			for _, method := range bothPaths {
				resp := sendOn(t, e, method)
				n, err := tc.client(resp.Body)
				resp.Body.Close()
				if err != nil || n != tc.want {
					t.Errorf("%s: read %d bytes, %v; want %d whole", method, n, err, tc.want)
				}
			}
			if v := e.metric(`strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`); v != 0 {
				t.Errorf("timeouts counted %v, want 0", v)
			}
		})
	}
}

// The deadline a body's reads set does not stay on the connection once
// the answer ended: a connection pooled after such an answer serves the
// next request even when it idled longer than timeouts.read (else the
// direct path's liveness peek, or net/http's reader on an idle
// connection, meets the old deadline and the connection is dropped).
func TestReadTimeoutLeavesPooledConnections(t *testing.T) {
	t.Parallel()
	var conns connsSeen
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conns.note(r)
		// Three flushes apart: the proxy reads the body from the socket
		// more than once, with the deadline set.
		for range 3 {
			io.WriteString(w, "chunk")
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	e := newEnv(t, readTimeoutConfig, flagJSON("orders-percent", 100), nil, answer)
	for _, method := range bothPaths {
		for i := range 2 {
			if i == 1 {
				time.Sleep(1500 * time.Millisecond) // idle past timeouts.read: the stimulus
			}
			resp := sendOn(t, e, method)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != strings.Repeat("chunk", 3) {
				t.Fatalf("%s: %q %v", method, b, err)
			}
		}
		if n := conns.count(); n != 1 {
			t.Errorf("%s: the service saw %d connections, want 1 (the pooled one reused)", method, n)
		}
	}
}

// A WebSocket tunnel is no answer's body: timeouts.read does not cut it
// (limits.idle_timeout bounds a silent one).
func TestReadTimeoutLeavesTunnels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"timeouts: {read: 300ms}\nlimits: {idle_timeout: 20s}\n", flagJSON("orders-percent", 0),
		wsUpstream(func(c net.Conn) {
			br := bufio.NewReader(c)
			if _, err := br.ReadByte(); err != nil {
				return
			}
			time.Sleep(1200 * time.Millisecond) // silent for 4 read timeouts
			c.Write([]byte{'y'})
			io.Copy(io.Discard, br)
		}), nil)
	c, br := openTunnel(t, e)
	c.Write([]byte{'x'})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := br.ReadByte(); err != nil || b != 'y' {
		t.Fatalf("tunnel: %q %v, want the upstream's late byte", b, err)
	}
}

// An upstream that stops taking a request's body, and does not answer,
// is given up after timeouts.send: the client gets a 504 and the stall
// counts as the upstream's timeout. Before, net/http's response_header
// timer (which starts once the body is written) never started and the
// client's stall_timeout never fired (nobody read the client while the
// write waited): the call hung until the client gave up. An upstream
// that takes the body slowly, but without a wait of timeouts.send, is not
// cut; nor one that answers first, and streams its answer for longer
// than timeouts.send without reading the upload (as Go's server does
// when a handler writes before it reads).
func TestSendTimeoutBoundsAnUpstreamNotTakingTheBody(t *testing.T) {
	t.Parallel()
	const size = 24 << 20 // more than the sockets between client and upstream hold
	for _, tc := range []struct {
		name   string
		serve  func(w http.ResponseWriter, r *http.Request, release <-chan struct{})
		status int
		body   string
	}{{
		name: "not read",
		// (net/http's server does not notice a close while a body is
		// unread: the request's context is not canceled.)
		serve:  func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) { <-release },
		status: http.StatusGatewayTimeout,
		body:   "Gateway Timeout: route orders: service did not answer in time\n",
	}, {
		name: "read slowly",
		serve: func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			buf := make([]byte, 1<<20)
			for {
				if _, err := io.ReadFull(r.Body, buf); err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond) // 2.4 s in all, no wait of 1 s
			}
			io.WriteString(w, "taken")
		},
		status: http.StatusOK,
		body:   "taken",
	}, {
		name: "answered first",
		serve: func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			for range 25 { // 2.5 s, a byte each 100 ms
				io.WriteString(w, "x")
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		},
		status: http.StatusOK,
		body:   strings.Repeat("x", 25),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.serve(w, r, release) })
			e := newEnv(t, basicConfig+"    timeouts: {send: 1s}\n", flagJSON("orders-percent", 100), nil, svc)
			t.Cleanup(func() { close(release) }) // before the service is closed
			done := make(chan string, 1)
			go func() { done <- uploadRaw(e, size) }()
			var got string
			select {
			case got = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("no answer 30 s into an upload (timeouts.send: 1s)")
			}
			if want := fmt.Sprintf("%d %s", tc.status, tc.body); got != want {
				t.Errorf("answer %q, want %q", got, want)
			}
			want := 0.0
			if tc.status == http.StatusGatewayTimeout {
				want = 1
			}
			e.waitMetric(`strangler_requests_total{backend="service",code="`+strconv.Itoa(tc.status)+`",route="orders"}`, 1)
			for kind, want := range map[string]float64{errTimeout: want, errReset: 0} {
				if v := e.metric(`strangler_upstream_errors_total{backend="service",kind="` + kind + `",route="orders"}`); max(v, 0) != want {
					t.Errorf("%s errors counted %v, want %v", kind, v, want)
				}
			}
		})
	}
}

// uploadRaw sends a PUT of size zero bytes to route orders and returns
// its answer's status and body ("" and the error when there is none).
// The answer is read while the upload goes on, on the connection itself:
// Go's client, whose write fails once the proxy closes with the upload
// unread, may return that failure instead of the answer it was sent
// (golang/go#51109).
func uploadRaw(e *env, size int) string {
	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	go func() {
		io.WriteString(c, "PUT /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		io.Copy(c, io.LimitReader(zeros{}, int64(size)))
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err.Error()
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// A WebSocket tunnel whose upstream talks but stops reading is not cut by
// timeouts.send: a tunnel is limits.idle_timeout's, closed when no data
// crosses it.
func TestSendTimeoutLeavesTunnels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"timeouts: {send: 1s}\nlimits: {idle_timeout: 30s}\n", flagJSON("orders-percent", 0),
		wsUpstream(func(c net.Conn) {
			for range 30 { // 3 s talking, never reading
				if _, err := c.Write([]byte{'y'}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			io.Copy(io.Discard, c)
		}), nil)
	c, br := openTunnel(t, e)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for n := range 30 {
		if _, err := br.ReadByte(); err != nil {
			t.Fatalf("the tunnel ended after %d of the upstream's 30 bytes: %v", n, err)
		}
	}
}
