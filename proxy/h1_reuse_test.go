package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a raw upstream: after reading the n-th request (counted
// over all connections), the k-th on its connection, it calls
// script(n, k, c), which writes exact bytes and reports whether to keep
// serving the connection.
type scripted struct {
	ln             net.Listener
	conns, closed  atomic.Int32 // connections accepted, and ended by the proxy or the script
	requests       atomic.Int32
	script         func(n, k int, c net.Conn) bool
	proxyAddr, url string
}

func startScripted(t *testing.T, script func(n, k int, c net.Conn) bool) *scripted {
	t.Helper()
	s := &scripted{ln: listen(t), script: script}
	s.url = "http://" + s.ln.Addr().String()
	t.Cleanup(func() { s.ln.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go s.serve(c)
		}
	}()
	cfg := strings.Replace(basicConfig, "monolith: {{monolith}}", "monolith: "+s.url, 1)
	s.proxyAddr = newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil).proxyAddr()
	return s
}

func (s *scripted) serve(c net.Conn) {
	defer s.closed.Add(1)
	defer c.Close()
	br := bufio.NewReader(c)
	for k := 0; ; k++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if !s.script(int(s.requests.Add(1))-1, k, c) {
			return
		}
	}
}

// get sends one request through the proxy and returns its final answer.
func (s *scripted) get(t *testing.T) rawResponse {
	t.Helper()
	all, _ := exchange(t, s.proxyAddr, "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	var final []rawResponse
	for _, r := range all {
		if r.status >= 200 { // 1xx answers forwarded before the final one
			final = append(final, r)
		}
	}
	if len(final) != 1 {
		t.Fatalf("got %d final answers: %+v", len(final), all)
	}
	return final[0]
}

// The proxy's reader and the upstream guard read the same bytes. Where the
// guard gives up on a connection's framing (an odd but readable answer),
// it can no longer mark a later ambiguous answer "Connection: close", so
// the connection must not be reused at all: else what the upstream framed
// one way and the reader another becomes the next user's answer.
func TestH1NoReuseOnceTheGuardLosesTheFraming(t *testing.T) {
	t.Parallel()
	var atLimit strings.Builder
	atLimit.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n")
	for atLimit.Len() < maxResponseHead {
		line := "X-Pad: " + strings.Repeat("p", min(1000, maxResponseHead-atLimit.Len()-len("X-Pad: \r\n"))) + "\r\n"
		atLimit.WriteString(line)
	}
	for _, tc := range []struct{ name, first string }{
		{"two spaces in the status line", "HTTP/1.1  200 OK\r\nContent-Length: 3\r\n\r\nodd"},
		{"a head at the size limit", atLimit.String() + "\r\nodd"},
		{"a 103 with bare LF line ends", "HTTP/1.1 103 Early Hints\nLink: </a.css>\n\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nodd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const (
				ambiguous = "HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"
				// What the upstream framed by Content-Length, then its real answer.
				poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\npoisoned"
				next   = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
			)
			s := startScripted(t, func(n, k int, c net.Conn) bool {
				answer := next
				switch {
				case n == 0:
					answer = tc.first
				case k == 1:
					answer = ambiguous
				case k == 2:
					answer = poison + next
				}
				_, err := io.WriteString(c, answer)
				return err == nil
			})
			if r := s.get(t); r.body != "odd" {
				t.Fatalf("first answer %d %q", r.status, r.body)
			}
			eventually(t, 3*time.Second, "the connection the guard gave up on closed", func() bool { return s.closed.Load() == 1 })
			// A new connection: its second answer is the ambiguous one,
			// after which it is closed too.
			for i, want := range []string{"next", "first", "next"} {
				if r := s.get(t); r.body != want || r.header.Get("X-Poison") != "" {
					t.Errorf("request %d: %d %q (X-Poison %q), want %q", i+2, r.status, r.body, r.header.Get("X-Poison"), want)
				}
			}
			if n := s.conns.Load(); n != 3 {
				t.Errorf("four requests took %d upstream connections, want 3", n)
			}
		})
	}
}

// The proxy's reader closes after an answer with both framings on its own,
// whatever the guard does.
func TestH1BothFramingsClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw   string
		close bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", false},
	} {
		req, _ := http.NewRequest("GET", "http://x/", nil)
		var hbuf []byte
		resp, _, err := readResponse(bufio.NewReader(strings.NewReader(tc.raw)), &hbuf, req)
		if err != nil {
			t.Fatalf("%q: %v", tc.raw, err)
		}
		if resp.Close != tc.close {
			t.Errorf("%q: Close %v, want %v", tc.raw, resp.Close, tc.close)
		}
	}
}

// The guard holds back a CR that may begin a head's final empty line; when
// the next read fills the caller's buffer, a byte stays in the guard. A
// byte the upstream sent after its answer, which no request asked for,
// must close the connection there as well as in bufio's buffer.
func TestH1StrayByteHeldByTheGuardIsNotReused(t *testing.T) {
	t.Parallel()
	const body = 4094 // "\n" + body + "X" is exactly one 4096-byte read
	s := startScripted(t, func(n, k int, c net.Conn) bool {
		if n > 0 {
			_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
			return err == nil
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4094\r\n\r"); err != nil {
			return false
		}
		// Two reads: the guard holds the CR back across them.
		time.Sleep(100 * time.Millisecond)
		_, err := io.WriteString(c, "\n"+strings.Repeat("b", body)+"X")
		return err == nil
	})
	if r := s.get(t); r.status != 200 || len(r.body) != body {
		t.Fatalf("first answer: %d, %d bytes", r.status, len(r.body))
	}
	eventually(t, 3*time.Second, "the connection with a stray byte closed", func() bool { return s.closed.Load() == 1 })
	if r := s.get(t); r.status != 200 || r.body != "next" {
		t.Errorf("second answer %d %q, want 200 \"next\"", r.status, r.body)
	}
}
