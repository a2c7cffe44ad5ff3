package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHeadOfSlowBodyIsNotHeld: an upstream that sends its head with a
// Content-Length and takes its time over the body (a download from slow
// storage, an export) has answered; the client must see the head at once,
// not with the body's first bytes, on both forwarding paths (a GET goes the
// direct path, a POST through ReverseProxy), as chunked answers always did
// and as nginx does. The body then follows whole.
func TestHeadOfSlowBodyIsNotHeld(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "hello")
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), slow, nil)
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var conns []conn
	for _, raw := range []string{
		"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
	} {
		c, err := net.Dial("tcp", e.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, raw)
		// The body is held until the test ends: the head alone must come.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: the head did not reach the client while the body was pending: %v", strings.Fields(raw)[0], err)
		}
		if resp.StatusCode != 200 || resp.ContentLength != 5 {
			t.Errorf("%s: %d with length %d, want 200 with 5", strings.Fields(raw)[0], resp.StatusCode, resp.ContentLength)
		}
		conns = append(conns, conn{c, br})
	}
	free()
	for _, c := range conns {
		body := make([]byte, 5)
		if _, err := io.ReadFull(c.br, body); err != nil || string(body) != "hello" {
			t.Errorf("body %q, %v; want hello", body, err)
		}
	}
}

// opsWriter records the calls a handler makes on its ResponseWriter.
type opsWriter struct {
	mu  sync.Mutex
	h   http.Header
	ops []string
}

func (w *opsWriter) Header() http.Header { return w.h }
func (w *opsWriter) WriteHeader(int)     { w.op("head") }
func (w *opsWriter) Flush()              { w.op("flush") }
func (w *opsWriter) Write(b []byte) (int, error) {
	w.op("write")
	return len(b), nil
}
func (w *opsWriter) op(s string) {
	w.mu.Lock()
	w.ops = append(w.ops, s)
	w.mu.Unlock()
}

// TestHeadWithItsBodyIsOneWrite: an answer whose body came with its head
// (most) goes out in one write on the direct path, also after a request
// on ReverseProxy's path, which flushes heads apart, used the same pooled
// recorder.
func TestHeadWithItsBodyIsOneWrite(t *testing.T) {
	t.Parallel()
	small := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	})
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), small, nil)
	serve := func(method string, body io.Reader) []string {
		req := httptest.NewRequest(method, "http://h/x", body)
		w := &opsWriter{h: http.Header{}}
		e.srv.ServeHTTP(w, req)
		return w.ops
	}
	for i := range 20 {
		if ops := serve("POST", strings.NewReader("abc")); strings.Join(ops, ",") != "head,flush,write,flush" {
			t.Fatalf("POST %d: %v, want the head flushed apart", i, ops)
		}
		if ops := serve("GET", nil); strings.Join(ops, ",") != "head,write,flush" {
			t.Fatalf("GET %d after a POST: %v, want head and body in one write", i, ops)
		}
	}
}
