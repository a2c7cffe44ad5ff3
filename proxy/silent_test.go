package proxy

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A connection that has sent nothing when the proxy stops (a browser's or
// a load balancer's preconnect) is closed at once, as nginx does, while a
// request in flight on another connection still finishes. net/http's
// Shutdown counted such a connection busy until it was 5 s old: each
// SIGTERM waited for it, and with a shorter shutdown_timeout the log said
// requests in flight were cut where there were none (a review).
func TestShutdownClosesConnectionsThatSentNothing(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before the env's cleanup, which waits for the handler
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	var logged lockedBuffer
	e := newEnvWith(t, basicConfig+"shutdown_timeout: 10s\n", flagJSON("orders-percent", 0), slow, nil,
		Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	e.stop()
	// The silent connection is closed by the proxy, well before the
	// 5 s net/http would give it (the deadline only bounds a failure).
	silent.SetReadDeadline(time.Now().Add(4 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection that sent nothing: read %d, %v; want it closed by the proxy", n, err)
	}
	// The request in flight still gets its answer.
	free()
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "finished" {
		t.Errorf("the request in flight got %q", b)
	}
	if err := <-e.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	e.done <- nil // for the cleanup
	if log := logged.String(); strings.Contains(log, "did not finish in time") {
		t.Errorf("the log says requests were cut, though the only one finished:\n%s", log)
	}
}

// guardedWithRequest is a guarded listener on loopback with a client
// connected to it that has sent a whole request.
func guardedWithRequest(t *testing.T) *guardedListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if _, err := client.Write([]byte("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	return &guardedListener{Listener: ln, maxHead: 64 << 10}
}

// readsTheRequest does what net/http does with a new connection: set its
// header deadline and read.
func readsTheRequest(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("a request sent before shutdown began was not read (%v): the client gets no answer", err)
	}
	if req.URL.Path != "/x" {
		t.Fatalf("read %q", req.URL.Path)
	}
}

// A request already in the socket, which net/http's goroutine has not
// read yet (a busy CPU at SIGTERM), is served: the connection has spoken,
// though the proxy had not read it. The first version of shut took it
// for a preconnect and cut it (a review).
func TestShutServesARequestWaitingInTheSocket(t *testing.T) {
	gl := guardedWithRequest(t)
	c, err := gl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g := c.(*guardConn)
	deadline := time.Now().Add(5 * time.Second)
	for !socketHasBytes(g.Conn) {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the socket")
		}
		time.Sleep(time.Millisecond)
	}
	gl.silent.shut()
	readsTheRequest(t, g)
}

// Same for a connection accepted after shut (between shut and Shutdown
// closing the listener) whose request is already there.
func TestShutServesARequestOnAConnectionAcceptedAfter(t *testing.T) {
	gl := guardedWithRequest(t)
	gl.silent.shut()
	c, err := gl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readsTheRequest(t, c)
}

// shutSilent and net/http's SetReadDeadline (the header deadline, set
// just after Accept) race; whichever sets last, a connection marked shut
// ends with a read deadline of now. When net/http's set came last, its
// read waited for the client, or net/http's 5 s rule (a review; the race
// was hit within 800 to 30,000 tries before the fix).
func TestShutWinsOverNetHTTPsDeadline(t *testing.T) {
	hits, i := 0, 0
	for ; i < 20000 && hits == 0; i++ {
		a, b := net.Pipe()
		var s silentConns
		g := &guardConn{Conn: a}
		s.add(g)
		var gate atomic.Int32
		done := make(chan struct{})
		go func() {
			gate.Add(1)
			for gate.Load() < 2 {
			}
			g.SetReadDeadline(time.Now().Add(time.Hour)) // ReadHeaderTimeout's
			close(done)
		}()
		gate.Add(1)
		for gate.Load() < 2 {
		}
		s.shut()
		<-done
		if g.quiet.Load() == connShut {
			errc := make(chan error, 1)
			go func() {
				_, err := g.Read(make([]byte, 1))
				errc <- err
			}()
			select {
			case <-errc:
			case <-time.After(200 * time.Millisecond):
				hits++
			}
		}
		a.Close()
		b.Close()
	}
	if hits > 0 {
		t.Fatalf("after %d tries: a connection shut at shutdown kept a later deadline and its read blocked", i)
	}
}
