package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An answer given before the client's body was read (the upstream could
// not be reached, or answered without reading it) closes the connection
// after it. Kept open, net/http would read the rest of the body after the
// handler, and its end would start a background read that the next
// request on the connection meets with a panic (golang/go#68560): the
// connection dropped without an answer. A body read whole keeps the
// connection.
func TestAnswerBeforeBodyClosesConnection(t *testing.T) {
	t.Parallel()
	dead := deadURL(t)
	early := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reads" {
			io.Copy(io.Discard, r.Body)
			return
		}
		// Answers before the body, as a server refusing an upload does.
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	const closes, keeps, either = "closes", "keeps", "either"
	cases := []struct {
		name     string
		monolith string // a URL, or "" for early
		path     string
		body     string
		status   int
		conn     string // what becomes of the connection
	}{
		{"unreachable upstream", dead, "/upload", "hello", http.StatusBadGateway, closes},
		// Whether the proxy has read the whole body by the time the
		// answer comes depends on the timing; either way the next
		// request is answered.
		{"upstream answers first", "", "/upload", strings.Repeat("x", 1<<20), http.StatusRequestEntityTooLarge, either},
		{"body read whole", "", "/reads", "hello", http.StatusOK, keeps},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var logs lockedBuffer
			cfg := basicConfig
			var monolith http.Handler = early
			if c.monolith != "" {
				cfg = strings.Replace(cfg, "{{monolith}}", c.monolith, 1)
				monolith = nil
			}
			e := newEnvWith(t, cfg, flagJSON("orders-percent", 0), monolith, nil,
				Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			conn, err := net.Dial("tcp", e.proxyAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			head := "POST " + c.path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(c.body)) + "\r\n\r\n"
			// The body goes on its own: the client keeps sending it while
			// the answer comes, as a real one does.
			io.WriteString(conn, head)
			go io.WriteString(conn, c.body)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.conn == closes && !resp.Close || c.conn == keeps && resp.Close {
				t.Errorf("Connection: close is %v; want an answer that %s the connection", resp.Close, c.conn)
			}
			// The next request: on the same connection if it was kept,
			// else on a new one.
			if resp.Close {
				conn.Close()
				if conn, err = net.Dial("tcp", e.proxyAddr()); err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				br = bufio.NewReader(conn)
			}
			io.WriteString(conn, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatalf("the next request: %v", err)
			}
			resp.Body.Close()
			if strings.Contains(logs.String(), "panic") {
				t.Errorf("the proxy's log has a panic:\n%s", logs.String())
			}
		})
	}
}
