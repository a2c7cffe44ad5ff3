package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that goes away while its request waits on an upstream has the
// upstream call cancelled, whichever request of the connection it is,
// whether or not it had a body, and however soon after its request it
// closes: net/http's background read sees the close.
func TestClientGoneCancelsUpstreamCall(t *testing.T) {
	t.Parallel()
	arrived := make(chan string, 8)
	cancelled := make(chan string, 8)
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			return
		}
		arrived <- r.URL.Path
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			cancelled <- r.URL.Path
		case <-time.After(20 * time.Second):
		}
	}), nil)
	cases := []struct {
		name   string
		before string // a request answered first on the same connection
		head   string // the slow request, sent at once
		late   string // sent once the upstream has the head, before the close
	}{
		{"first request", "", "GET /slow/first HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"after one kept alive", "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n", "GET /slow/second HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"with a body", "", "POST /slow/body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", ""},
		{"with a chunked body", "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n", "POST /slow/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ""},
		// The body comes while the upstream call runs, the close right
		// behind it: it is in the socket before the background read starts.
		{"closed right after a late body", "", "POST /slow/late HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "hello"},
	}
	// One at a time: they share the channels.
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
		io.WriteString(conn, tc.head)
		path := <-arrived
		io.WriteString(conn, tc.late)
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
