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
