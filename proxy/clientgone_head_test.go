package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that hangs up while the upstream has sent part of its
// answer's head frees the upstream connection at once, as it does when
// the upstream has sent nothing: the call watches the client's context
// for as long as it reads, not only while it waits for the first byte
// (response_header, 20s here, would otherwise end it).
func TestClientGoneWhileHeadDribbles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, first string
	}{
		{"nothing sent", ""},
		{"status line sent", "HTTP/1.1 200 OK\r\nX-A: 1\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closed := make(chan time.Time, 4)
			sent := make(chan struct{}, 4)
			addr := acceptEach(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, tc.first)
				sent <- struct{}{}
				io.Copy(io.Discard, br) // until the proxy closes it
				closed <- time.Now()
			})
			p := proxyInFrontOf(t, addr, "timeouts:\n  response_header: 20s\n")
			c, err := net.Dial("tcp", p)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
			<-sent
			gone := time.Now()
			c.Close()
			select {
			case at := <-closed:
				t.Logf("upstream connection closed %v after the client left", at.Sub(gone))
			case <-time.After(3 * time.Second):
				t.Errorf("the client left 3s ago and the upstream connection is still held: the call is not canceled while the head is awaited or a partial head stalls")
			}
		})
	}
}
