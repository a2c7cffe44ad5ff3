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

// dropsAfterFirst is a service that answers the first request on its
// first connection (so the proxy pools that connection), then reads the
// next request on it, stops listening and drops the connection without an
// answer: the request reached the service, and a new connection is
// refused.
func dropsAfterFirst(t *testing.T, got *atomic.Int32) string {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwarm")
		req, err = http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		got.Add(1) // the write reached the service
		ln.Close()
		c.(*net.TCPConn).SetLinger(0)
	}()
	return "http://" + ln.Addr().String()
}

// A POST reached the service, which then failed; the retry on a new
// connection (an Idempotency-Key allows it, towards the same upstream) is
// refused. That refusal must not be taken for "nothing reached the
// service": the POST would be replayed to the monolith as well, and two
// backends would have run it.
func TestNoReplayOfAWriteRetriedAfterItReachedTheService(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, body string }{{"body-less (direct path)", ""}, {"with a body (net/http transport)", "pay=1"}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var svc, mono atomic.Int32
			svcURL := dropsAfterFirst(t, &svc)
			e := newEnv(t, fallbackConfig(svcURL, ""), flagJSON("orders-percent", 100), bodyEcho(&mono), nil)
			// Warm-up on the same client as the POST (the direct path's pool,
			// or net/http's for a body).
			warm, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/1", strings.NewReader(c.body))
			if c.body == "" {
				warm.Body = http.NoBody
			}
			warm.Header.Set("X-User-Id", "u")
			if resp, body := e.do(warm); resp.StatusCode != 200 || body != "warm" {
				t.Fatalf("warm-up: %d %q", resp.StatusCode, body)
			}
			req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1/pay", strings.NewReader(c.body))
			if c.body == "" {
				req.Body = http.NoBody
			}
			req.Header.Set("X-User-Id", "u")
			req.Header.Set("Idempotency-Key", "k-1")
			resp, body := e.do(req)
			if svc.Load() != 1 {
				t.Fatalf("setup: the service got the POST %d times", svc.Load())
			}
			if mono.Load() > 0 || resp.StatusCode != http.StatusBadGateway {
				t.Errorf("the service got the POST, and then the client got %d %q (monolith calls %d), want 502 and none", resp.StatusCode, body, mono.Load())
			}
		})
	}
}

// A write the transport may retry (an Idempotency-Key) that was written is
// a reset only when a retry's dial fails: a service that does not answer
// within timeouts.response_header is still a timeout (504).
func TestRetryableWriteTimeoutIsATimeout(t *testing.T) {
	t.Parallel()
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(time.Second)
	})
	e := newEnv(t, fallbackConfig("{{service}}", "    fallback: {on: [connect]}\n"), flagJSON("orders-percent", 100), nil, slow)
	for _, key := range []string{"", "k-1"} {
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1/pay", strings.NewReader("pay=1"))
		req.Header.Set("X-User-Id", "u")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, _ := e.do(req)
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("Idempotency-Key %q: a service slower than response_header: status %d, want 504", key, resp.StatusCode)
		}
	}
	if v := e.metric(`strangler_upstream_errors_total{backend="service",kind="timeout",route="orders"}`); v != 2 {
		t.Errorf("timeouts counted %v, want 2 (reset: %v)", v, e.metric(`strangler_upstream_errors_total{backend="service",kind="reset",route="orders"}`))
	}
}

// closesSecondRequest is a service that answers every request, except
// the second on its first connection: that one it reads and then closes
// the connection on, as a keep-alive timer firing as a request arrives
// does.
func closesSecondRequest(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			first := conns.Add(1) == 1
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if first && i == 1 {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nservice")
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A write with a body and an Idempotency-Key, sent on a pooled connection
// the service closes as it arrives, is retried on a new one by the
// transport, which needs a body it can send again: its body is read ahead
// for that, though the fallback does not replay POSTs.
func TestIdempotentWriteWithABodyIsRetriedOnAFreshConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, strings.Replace(basicConfig, "{{service}}", closesSecondRequest(t), 1), flagJSON("orders-percent", 100), nil, nil)
	for i := range 2 {
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/1", strings.NewReader(`{"qty":1}`))
		req.Header.Set("X-User-Id", "u1")
		req.Header.Set("Idempotency-Key", "k"+string(rune('0'+i)))
		if resp, body := e.do(req); resp.StatusCode != 200 || body != "service" {
			t.Fatalf("POST %d: %d %q; want the transport's retry on a new connection to answer", i, resp.StatusCode, body)
		}
	}
}
