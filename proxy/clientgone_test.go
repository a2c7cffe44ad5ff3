package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"testing"
	"time"
)

// A client that goes away while its request waits on an upstream has the
// upstream call cancelled, whichever request of the connection it is and
// whether or not it had a body: net/http's background read, which Strangler
// serves by waiting before it reads (idleReader), must still see the close.
//
// The close must come once the background read waits: a close that came
// before is seen only when the answer is written (see idleReader).
func TestClientGoneCancelsUpstreamCall(t *testing.T) {
	// Not parallel: counts goroutines in the background read.
	arrived := make(chan string, 8)
	cancelled := make(chan string, 8)
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/quick" {
			return
		}
		arrived <- r.URL.Path
		select {
		case <-r.Context().Done():
			cancelled <- r.URL.Path
		case <-time.After(20 * time.Second):
		}
	}), nil)
	cases := []struct {
		name, before, slow string
	}{
		{"first request", "", "GET /slow/first HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"after one kept alive", "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n", "GET /slow/second HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"with a body", "", "POST /slow/body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{"with a chunked body", "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n", "POST /slow/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	}
	// One at a time: they share the channels.
	waiting := backgroundReads()
	for _, tc := range cases {
		conn, err := net.Dial("tcp", e.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.before != "" {
			io.WriteString(conn, tc.before)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: the first request: %v %v", tc.name, resp, err)
			}
			resp.Body.Close()
		}
		io.WriteString(conn, tc.slow)
		path := <-arrived
		for deadline := time.Now().Add(5 * time.Second); backgroundReads() <= waiting; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no background read waits", tc.name)
			}
		}
		conn.Close()
		select {
		case got := <-cancelled:
			if got != path {
				t.Errorf("%s: %s cancelled, want %s", tc.name, got, path)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: the upstream call for %s was not cancelled after the client closed", tc.name, path)
		}
	}
}

// backgroundReads counts net/http's background reads that wait in an
// idleReader.
func backgroundReads() int {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for _, g := range bytes.Split(b.Bytes(), []byte("\n\n")) {
		if bytes.Contains(g, []byte("(*idleReader).read")) && bytes.Contains(g, []byte("backgroundRead")) {
			n++
		}
	}
	return n
}
