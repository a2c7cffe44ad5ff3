package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// refusingUpstream answers every request 413 as soon as its head is read
// (or, unless answer, not at all) and resets the connection with the
// body unread, as any server that refuses an upload without draining it
// can: the kernel answers the body's next bytes with a reset. With
// tlsCfg, it speaks TLS.
func refusingUpstream(t *testing.T, answer bool, tlsCfg *tls.Config) string {
	t.Helper()
	return acceptEach(t, func(c net.Conn) {
		var rw io.ReadWriter = c
		if tlsCfg != nil {
			rw = tls.Server(c, tlsCfg)
		}
		if _, err := http.ReadRequest(bufio.NewReader(rw)); err != nil {
			return
		}
		if answer {
			io.WriteString(rw, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\ntoo large\n")
		}
		c.(*net.TCPConn).SetLinger(0) // a reset at once, whatever was read
	})
}

// An upstream that refuses an upload and then resets the connection
// answered before the reset: that answer reaches the client. net/http's
// transport returned the failed write instead (golang/go#51109), so the
// client got a 502, the failure counted as a reset, and enough of them
// ejected the upstream that was answering. A reset with no answer is
// still a 502 and a reset.
func TestEarlyAnswerBeforeResetReachesClient(t *testing.T) {
	t.Parallel()
	const clients = 20
	cases := []struct {
		name   string
		answer bool
		status int
		resets float64
	}{
		{"answer then reset", true, http.StatusRequestEntityTooLarge, 0},
		{"reset alone", false, http.StatusBadGateway, clients},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := strings.Replace(basicConfig, "{{monolith}}", "http://"+refusingUpstream(t, c.answer, nil), 1)
			var logs lockedBuffer
			e := newEnvWith(t, cfg, flagJSON("orders-percent", 0), nil, nil,
				Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			body := bytes.Repeat([]byte("x"), 4<<20)
			var mu sync.Mutex
			got := map[int]int{}
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := net.Dial("tcp", e.proxyAddr())
					if err != nil {
						t.Error(err)
						return
					}
					defer conn.Close()
					conn.SetDeadline(time.Now().Add(20 * time.Second))
					io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
					go conn.Write(body) // fails once the proxy closes: the answer is what counts
					resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if err != nil {
						t.Errorf("no answer: %v", err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					mu.Lock()
					got[resp.StatusCode]++
					mu.Unlock()
					if resp.StatusCode == http.StatusRequestEntityTooLarge && string(b) != "too large\n" {
						t.Errorf("413 with body %q", b)
					}
				}()
			}
			wg.Wait()
			if got[c.status] != clients {
				t.Errorf("statuses %v; want all %d %d; the proxy's log:\n%s", got, clients, c.status, logs.String())
			}
			if n := e.metric(`strangler_upstream_errors_total{backend="monolith",kind="reset",route="_default"}`); n != c.resets {
				t.Errorf("%v resets counted, want %v", n, c.resets)
			}
		})
	}
}

// Over TLS (an https upstream goes through the same transport and guard,
// which sees ciphertext), the answer before the reset also reaches the
// caller: the held write error is the TLS layer's.
func TestEarlyAnswerBeforeResetOverTLS(t *testing.T) {
	t.Parallel()
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	srvCfg := ts.TLS.Clone()
	cliCfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	ts.Close()
	addr := refusingUpstream(t, true, srvCfg)
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: guardUpstream(d.DialContext, true, Timeouts{}), TLSClientConfig: cliCfg}
	defer tr.CloseIdleConnections()
	body := strings.Repeat("x", 4<<20)
	got := map[string]int{}
	var lastErr error
	for range 20 {
		req, err := http.NewRequest("POST", "https://"+addr+"/upload", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			got["error"]++
			lastErr = err
			continue
		}
		resp.Body.Close()
		got[resp.Status]++
	}
	if got["413 Request Entity Too Large"] != 20 {
		t.Errorf("answers %v (the last error: %v); want the upstream's 413 all 20 times", got, lastErr)
	}
}
