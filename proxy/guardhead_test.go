package proxy

import (
	"io"
	"net"
	"testing"
)

// The upstream guard takes a request to be a HEAD from its first write
// only: a body streamed in several writes, one of them beginning "HEAD ",
// also after a 100 Continue, must not make it frame the answer as a
// HEAD's (no body), which would read the answer's body as the next head.
func TestUpstreamGuardKnowsHeadFromTheRequestLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		writes []string // a request's writes, in order
		before string   // answers read before the last write
		head   bool
	}{
		{"HEAD", []string{"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"}, "", true},
		{"POST", []string{"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"}, "", false},
		{"a body piece beginning HEAD", []string{"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n", "HEAD /b x"}, "", false},
		{"a body piece after a 100", []string{"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n", "HEAD /b x"}, "HTTP/1.1 100 Continue\r\n\r\n", false},
		{"the next request after an answer", []string{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"}, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			go io.Copy(io.Discard, b) // the upstream reads the request
			u := &upstreamConn{Conn: a, f: framer{response: true, maxHead: maxResponseHead}}
			u.fresh.Store(true)
			for i, w := range c.writes {
				if i == len(c.writes)-1 && c.before != "" {
					// The upstream answers; the guard reads it.
					u.Conn = &replayConn{Conn: a, r: []byte(c.before)}
					buf := make([]byte, 256)
					if n, err := u.Read(buf); err != nil || n != len(c.before) {
						t.Fatalf("read %d bytes (%v), want %d", n, err, len(c.before))
					}
					u.Conn = a
				}
				if _, err := u.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if got := u.head.Load(); got != c.head {
				t.Errorf("taken for a HEAD: %v, want %v", got, c.head)
			}
		})
	}
}

// replayConn reads r, then nothing.
type replayConn struct {
	net.Conn
	r []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.r) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.r)
	c.r = c.r[n:]
	return n, nil
}
