package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// A client's 100-continue expectation is answered by the proxy, once, as
// soon as an upstream call starts to send the body; the expectation is not
// forwarded, so no transport waits for an upstream's own 100 (a second for
// every call and every shadow copy, with Go's servers, which send none
// once the body is on its way). nginx and Envoy do the same.
func TestExpectContinueIsAnsweredOnceAndNotForwarded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, cfg string
		pct       int
		reached   int // upstream requests each exchange makes
	}{
		{"plain route", basicConfig, 0, 1},
		{"shadow for POST", shadowConfig("      percent: 100\n      methods: [POST]\n"), 0, 2},
		{"fallback", fallbackConfig("{{service}}", "    fallback: {on: [connect, reset, timeout, 5xx], methods: [GET, POST]}\n"), 100, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var seen []string
			record := func(name string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					b, _ := io.ReadAll(r.Body)
					mu.Lock()
					seen = append(seen, fmt.Sprintf("%s expect=%q body=%q", name, r.Header.Get("Expect"), b))
					mu.Unlock()
					io.WriteString(w, name)
				})
			}
			e := newEnv(t, c.cfg, flagJSON("orders-percent", c.pct), record("monolith"), record("service"))
			conn, err := net.Dial("tcp", e.proxyAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
			br := bufio.NewReader(conn)
			// A client that waits for the 100 (curl gives up after a
			// second and sends anyway; this one waits up to the deadline).
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusContinue {
				t.Fatalf("first answer %d, want 100", resp.StatusCode)
			}
			io.WriteString(conn, "hello")
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("final answer %d, want 200 (a second 100?)", resp.StatusCode)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				got := slices.Clone(seen)
				mu.Unlock()
				if len(got) >= c.reached || time.Now().After(deadline) {
					if len(got) != c.reached {
						t.Fatalf("upstreams saw %q, want %d requests", got, c.reached)
					}
					for _, s := range got {
						if !slices.Contains([]string{`monolith expect="" body="hello"`, `service expect="" body="hello"`}, s) {
							t.Errorf("an upstream saw %s", s)
						}
					}
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
