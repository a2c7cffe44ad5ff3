package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// RFC 9110 section 15.2: "a server MUST NOT send a 1xx response to an
// HTTP/1.0 client", which would take "HTTP/1.0 103" for the final answer
// and read the real one as garbage. HAProxy drops 1xx for HTTP/1.0
// clients; nginx forwards no 103 at all. An HTTP/1.1 client gets it.
func TestNoInformationalAnswerToAnHTTP10Client(t *testing.T) {
	t.Parallel()
	hints := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), hints, nil)
	for name, raw := range map[string]string{
		"direct path":  "GET /x HTTP/1.0\r\nHost: x\r\n\r\n",
		"ReverseProxy": "POST /x HTTP/1.0\r\nHost: x\r\nContent-Length: 1\r\n\r\nz",
	} {
		c, err := net.Dial("tcp", e.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, raw)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != 200 {
			t.Errorf("%s: an HTTP/1.0 client's first (final) answer is %d %s, want 200", name, resp.StatusCode, resp.Proto)
		}
	}
	resps, _ := exchange(t, e.proxyAddr(), "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	if got := statuses(resps); len(got) != 2 || got[0] != 103 || got[1] != 200 {
		t.Errorf("an HTTP/1.1 client got %v, want [103 200]", got)
	}
}
