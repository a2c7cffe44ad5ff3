package proxy

// End-to-end checks that a pooled upstream connection is never reused
// with stale bytes on it: each makes an upstream misbehave once (answer
// late, send more than it framed, cut its answer, lose its client), then
// requires the next requests to get their own answers.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoUpstream is a raw upstream that hands each request (with its
// connection) to answer; answer writes exact bytes and reports whether to
// keep reading the connection.
type echoUpstream struct {
	addr  string
	conns atomic.Int32
}

func startEchoUpstream(t *testing.T, answer func(req *http.Request, c net.Conn) bool) *echoUpstream {
	t.Helper()
	e := &echoUpstream{}
	e.addr = acceptEach(t, func(c net.Conn) {
		e.conns.Add(1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if !answer(req, c) {
				return
			}
		}
	})
	return e
}

// acceptEach serves every connection to a new loopback listener with
// handle, each on its own goroutine, and closes it after; it returns the
// listener's address.
func acceptEach(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func echoPathAnswer(c net.Conn, path string) bool {
	_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(path), path)
	return err == nil
}

// proxyInFrontOf starts a proxy whose monolith is addr, with extra YAML
// appended to the config.
func proxyInFrontOf(t *testing.T, addr, extra string) string {
	t.Helper()
	cfg := strings.Replace(basicConfig, "monolith: {{monolith}}", "monolith: http://"+addr, 1) + extra
	return newEnv(t, cfg, flagJSON("orders-percent", 0), nil, nil).proxyAddr()
}

// getOnce sends one request on a new client connection and returns the
// final answer (status, body) or an error.
func getOnce(t *testing.T, proxyAddr, method, path string) (int, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, path)
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return 0, "", err
		}
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode >= 200 {
			return resp.StatusCode, string(b), err
		}
	}
}

// A late answer after the proxy gave up on the head (504) must not become
// the next request's answer.
func TestReuseLateAnswerAfter504(t *testing.T) {
	t.Parallel()
	up := startEchoUpstream(t, func(req *http.Request, c net.Conn) bool {
		if req.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		if req.URL.Path == "/hint" {
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
			time.Sleep(500 * time.Millisecond)
		}
		return echoPathAnswer(c, req.URL.Path)
	})
	p := proxyInFrontOf(t, up.addr, "timeouts:\n  response_header: 200ms\n")
	for _, first := range []string{"/slow", "/hint"} {
		st, body, err := getOnce(t, p, "GET", first)
		if err != nil || st != 504 {
			t.Fatalf("%s: %d %q %v, want 504", first, st, body, err)
		}
		if strings.Contains(body, "127.0.0.1") || strings.Contains(body, up.addr) {
			t.Errorf("504 body names the upstream: %q", body)
		}
		time.Sleep(700 * time.Millisecond)
		for i := 0; i < 3; i++ {
			st, body, err := getOnce(t, p, "GET", fmt.Sprintf("/next%d", i))
			if err != nil || st != 200 || body != fmt.Sprintf("/next%d", i) {
				t.Fatalf("after %s: request %d got %d %q %v", first, i, st, body, err)
			}
		}
	}
}

// A client that hangs up mid-body leaves the rest of the body on the
// upstream connection: it must not be reused.
func TestReuseClientGoneMidBody(t *testing.T) {
	t.Parallel()
	up := startEchoUpstream(t, func(req *http.Request, c net.Conn) bool {
		if req.URL.Path == "/big" {
			const n = 1 << 20
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n)
			c.Write(make([]byte, 1000))
			time.Sleep(300 * time.Millisecond)
			_, err := c.Write(make([]byte, n-1000))
			return err == nil
		}
		return echoPathAnswer(c, req.URL.Path)
	})
	p := proxyInFrontOf(t, up.addr, "")
	c, err := net.Dial("tcp", p)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 100)
	c.Read(buf)
	c.Close()
	time.Sleep(800 * time.Millisecond)
	for i := 0; i < 3; i++ {
		st, body, err := getOnce(t, p, "GET", fmt.Sprintf("/n%d", i))
		if err != nil || st != 200 || body != fmt.Sprintf("/n%d", i) {
			t.Fatalf("request %d got %d %q %v", i, st, body, err)
		}
	}
}

// Bytes an upstream sends after a complete answer, a moment later (a HEAD
// answered with a body, a duplicated answer), must not answer the next
// request.
func TestReuseLateExtraBytes(t *testing.T) {
	t.Parallel()
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"
	up := startEchoUpstream(t, func(req *http.Request, c net.Conn) bool {
		switch req.URL.Path {
		case "/head":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 37\r\n\r\n")
			time.Sleep(50 * time.Millisecond)
			io.WriteString(c, poison)
			return true
		case "/twice":
			echoPathAnswer(c, req.URL.Path)
			time.Sleep(50 * time.Millisecond)
			io.WriteString(c, poison)
			return true
		case "/204":
			io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			time.Sleep(50 * time.Millisecond)
			io.WriteString(c, poison)
			return true
		}
		return echoPathAnswer(c, req.URL.Path)
	})
	p := proxyInFrontOf(t, up.addr, "")
	for _, first := range [][2]string{{"HEAD", "/head"}, {"GET", "/twice"}, {"GET", "/204"}} {
		if _, _, err := getOnce(t, p, first[0], first[1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		for i := 0; i < 3; i++ {
			st, body, err := getOnce(t, p, "GET", fmt.Sprintf("/n%d", i))
			if err != nil || st != 200 || body != fmt.Sprintf("/n%d", i) {
				t.Fatalf("after %s %s: request %d got %d %q %v", first[0], first[1], i, st, body, err)
			}
		}
	}
}

// An answer cut short (by length, chunked or a bad chunk) must reach the
// client as a cut answer, never as a complete one, and the next request
// must get its own answer.
func TestReuseTruncatedAnswersAreCut(t *testing.T) {
	t.Parallel()
	up := startEchoUpstream(t, func(req *http.Request, c net.Conn) bool {
		switch req.URL.Path {
		case "/cl":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc")
			return false
		case "/chunked":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
			return false
		case "/badchunk":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n0\r\n\r\n")
			return true
		}
		return echoPathAnswer(c, req.URL.Path)
	})
	p := proxyInFrontOf(t, up.addr, "")
	for _, path := range []string{"/cl", "/chunked", "/badchunk"} {
		st, body, err := getOnce(t, p, "GET", path)
		if err == nil {
			t.Errorf("%s: the client read a complete answer %d %q", path, st, body)
		}
		if st, body, err := getOnce(t, p, "GET", "/after"); err != nil || st != 200 || body != "/after" {
			t.Errorf("after %s: %d %q %v", path, st, body, err)
		}
	}
}
