package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// earlyCloser answers 413 with Connection: close to a request's head and
// closes the socket at once, its unread input making the close a reset:
// what a server with an upload limit does (nginx's client_max_body_size
// answers, then closes after lingering; many app servers close at once).
func earlyCloser(t *testing.T) string {
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big\n")
				c.Close()
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// upload sends a large POST and reads the answer while it sends, as curl
// and Go's client do.
func upload(t *testing.T, addr string, size int) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
	go func() {
		buf := make([]byte, 256<<10)
		for n := 0; n < size; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// The client gets the upstream's early answer (nginx and Envoy pass it
// on), not a 502: net/http's transport returns the write error the reset
// brings and drops the answer that came first (golang/go#51109), unless
// the guard holds the error back (upstreamConn.answerFirst). And a service
// that refuses oversized uploads is answering, not failing: it is not
// counted as reset, nor ejected.
func TestEarlyAnswerThenResetReachesClient(t *testing.T) {
	// Not parallel: the race it covers is one of timing.
	up := earlyCloser(t)
	cfg := strings.Replace(fallbackConfig(up, "    eject: {consecutive_failures: 3, base_time: 1m, max_time: 1m}\n"), "{{service}}", up, 1)
	e := newEnv(t, cfg, flagJSON("orders-percent", 100), nil, nil)
	got := map[int]int{}
	for range 20 {
		got[upload(t, e.proxyAddr(), 32<<20)]++
	}
	if n := e.metric(`strangler_upstream_errors_total{backend="service",kind="reset",route="orders"}`); n != 0 {
		t.Errorf("%v resets counted against the service", n)
	}
	if got[413] != 20 {
		t.Errorf("the upstream's 413 reached %d of 20 clients: %v", got[413], got)
	}
	if st := e.routeStatus(); st.State == "ejected" {
		t.Errorf("a service that answers 413 to oversized uploads was ejected: %+v", st)
	}
}
