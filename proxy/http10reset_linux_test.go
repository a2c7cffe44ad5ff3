package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An HTTP/1.0 client reads an answer without a length to the close, so a
// cut answer ended by a plain close would read as whole (and a proxy in
// front that speaks HTTP/1.0 to its upstreams, nginx's default, would
// pass it on as whole). The connection is reset instead, on both paths,
// once the client has taken what was written to it: the part of the
// answer that came (even to a client that reads it only after the cut)
// and a pipelining client's earlier answers arrive whole, then the reset.
// An HTTP/1.1 client's cut shows in the framing, and an HTTP/1.0 answer
// that was not cut ends with a plain close.
func TestCutAnswerResetsAnHTTP10Client(t *testing.T) {
	t.Parallel()
	const came = 1 << 20 // past what the sockets hold
	whole := strings.Repeat("w", 256<<10)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/cut"):
			hijackedAnswer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
				strconv.FormatInt(came, 16)+"\r\n"+strings.Repeat("c", came)+"\r\n")(w, r)
		case strings.HasSuffix(r.URL.Path, "/nolength"):
			io.WriteString(w, whole) // chunked: for HTTP/1.0, ends at the close
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(whole)))
			io.WriteString(w, whole)
		}
	})
	e := newEnv(t, readTimeoutConfig, flagJSON("orders-percent", 100), nil, svc)
	cuts := 0
	for _, tc := range []struct {
		name  string
		paths []string // the requests, pipelined; each but the last is answered whole
		proto string
	}{
		{"cut", []string{"cut"}, "HTTP/1.0"},
		{"whole then cut", []string{"whole", "cut"}, "HTTP/1.0"},
		{"whole, ended by the close", []string{"nolength"}, "HTTP/1.0"},
		{"cut, HTTP/1.1", []string{"cut"}, "HTTP/1.1"},
	} {
		for _, method := range bothPaths {
			c, err := (&net.Dialer{Control: smallReceiveBuffer}).Dial("tcp", e.proxyAddr())
			if err != nil {
				t.Fatal(err)
			}
			var reqs strings.Builder
			for i, p := range tc.paths {
				reqs.WriteString(method + " /api/orders/" + p + " " + tc.proto + "\r\nHost: x\r\nX-User-Id: u\r\n")
				if i < len(tc.paths)-1 {
					reqs.WriteString("Connection: keep-alive\r\n")
				}
				if method == "POST" {
					reqs.WriteString("Content-Length: 1\r\n\r\nx")
				} else {
					reqs.WriteString("\r\n")
				}
			}
			io.WriteString(c, reqs.String())
			last := tc.paths[len(tc.paths)-1]
			if last == "cut" {
				// Read only once the cut happened: what came waits in
				// the sockets meanwhile.
				cuts++
				waitCut(t, e, cuts)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for i, p := range tc.paths {
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Fatalf("%s %s: answer %d: %v", tc.name, method, i, err)
				}
				b, err := io.ReadAll(resp.Body)
				switch {
				case p != "cut" && (string(b) != whole || err != nil):
					t.Errorf("%s %s: answer %d: %d bytes, %v; want it whole", tc.name, method, i, len(b), err)
				case p == "cut" && len(b) != came:
					t.Errorf("%s %s: answer %d: %d bytes, want the %d that came", tc.name, method, i, len(b), came)
				case p == "cut" && tc.proto == "HTTP/1.0" && !errors.Is(err, syscall.ECONNRESET):
					t.Errorf("%s %s: answer %d ended with %v, want a reset", tc.name, method, i, err)
				case p == "cut" && tc.proto == "HTTP/1.1" && !errors.Is(err, io.ErrUnexpectedEOF):
					t.Errorf("%s %s: answer %d ended with %v, want the chunked framing cut", tc.name, method, i, err)
				}
			}
			c.Close()
		}
	}
}

// waitCut waits until route orders counted n answers cut by timeouts.read.
func waitCut(t *testing.T, e *env, n int) {
	t.Helper()
	series := `strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`
	eventually(t, 20*time.Second, "the answer cut", func() bool { return e.metric(series) >= float64(n) })
}

// smallReceiveBuffer makes a client's socket take little before it is
// read, so that what the proxy wrote waits in the proxy's socket.
func smallReceiveBuffer(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
}

// A connection waiting to reset (its HTTP/1.0 client takes nothing) does
// not hold a shutdown past shutdown_timeout: the server's closing of
// connections at the end of the grace resets it at once (a plain close
// would hand the client the cut answer as whole). Nor does a client that
// resets its end during the wait hold the connection (its send queue
// never empties): a shutdown with a long grace then finds nothing left.
func TestResetWaitEndsWithShutdown(t *testing.T) {
	t.Parallel()
	const came = 1 << 20
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hijackedAnswer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
			strconv.FormatInt(came, 16)+"\r\n"+strings.Repeat("c", came)+"\r\n")(w, r)
	})
	for _, tc := range []struct {
		name  string
		grace string
		reset bool // the client resets during the wait
	}{
		{"shutdown", "1s", false},
		{"the client resets", "60s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, readTimeoutConfig+"shutdown_timeout: "+tc.grace+"\n", flagJSON("orders-percent", 100), nil, svc)
			c, err := (&net.Dialer{Control: smallReceiveBuffer}).Dial("tcp", e.proxyAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET /api/orders/1 HTTP/1.0\r\nX-User-Id: u\r\n\r\n") // not read yet
			waitCut(t, e, 1)
			if tc.reset {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			e.stop()
			select {
			case <-e.done:
				e.done <- nil // for the cleanup's wait
			case <-time.After(20 * time.Second):
				t.Fatalf("Serve still running 20 s into a shutdown (shutdown_timeout %s), held by a connection waiting to reset (stall_timeout 60s)", tc.grace)
			}
			if tc.reset {
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, c)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("after the shutdown, the cut answer ended with %v, want a reset", err)
			}
		})
	}
}

// An HTTP/1.0 client that stops reading a large answer without a length
// is cut off by stall_timeout with a reset too: reading on later, it
// would take what it got before a plain close for the whole answer.
func TestStalledHTTP10ClientIsReset(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 16<<20) // past what the sockets hold
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, big) // chunked: for HTTP/1.0, ends at the close
	})
	e := newEnv(t, basicConfig+"limits: {stall_timeout: 1s}\n", flagJSON("orders-percent", 100), nil, svc)
	for _, method := range bothPaths {
		c, err := (&net.Dialer{Control: smallReceiveBuffer}).Dial("tcp", e.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		head := method + " /api/orders/1 HTTP/1.0\r\nX-User-Id: u\r\n"
		if method == "POST" {
			head += "Content-Length: 1\r\n\r\nx"
		} else {
			head += "\r\n"
		}
		io.WriteString(c, head)
		time.Sleep(3 * time.Second) // the client takes nothing for longer than stall_timeout: the stimulus
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			c.Close()
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s: %v; want the answer cut, or a reset before its head", method, err)
			}
			continue
		}
		b, err := io.ReadAll(resp.Body)
		c.Close()
		if len(b) == len(big) || err == nil {
			t.Errorf("%s: %d of %d bytes, then %v; want a cut answer ending with an error", method, len(b), len(big), err)
		}
	}
}
