package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeLogsNetHTTPAsJSON: net/http's transport prints through the
// standard log package (here: a shadow side that sends bytes after its
// answer, Content-Length 3 with six bytes); serve's log is JSON, so those
// lines must come as JSON too, without the upstream's bytes they quote.
func TestServeLogsNetHTTPAsJSON(t *testing.T) {
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":1}`)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef")
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				br.Peek(1)
			}()
		}
	}()
	extra := fmt.Sprintf(`routes:
  - name: orders
    path: /api/orders/*
    methods: [GET, POST]
    service: http://%s
    shadow: {percent: 100, methods: [GET, POST]}
`, ln.Addr())
	p := startServe(t, mono, extra, `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":0},"defaultVariant":"on"}}}`)
	for range 3 {
		resp, err := http.Post("http://"+p.listen+"/api/orders/1", "application/json", strings.NewReader(`{"q":1}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The transport logs when it next reads the connection: poll.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), "Unsolicited response") {
		if time.Now().After(deadline) {
			t.Fatalf("net/http's line never came:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		var v map[string]any
		if line != "" && json.Unmarshal([]byte(line), &v) != nil {
			t.Errorf("a log line that is not JSON: %q", line)
		}
		if strings.Contains(line, `with "def"`) || strings.Contains(line, `with \"def\"`) {
			t.Errorf("the upstream's bytes reached the log: %q", line)
		}
	}
}

// TestServeWarnsWhatAFlagProblemDoes: serve starts on a flag validate
// refuses, and its warning says what the route does meanwhile: a flag
// defined twice serves its last definition; without a default variant,
// what its rule places follows it.
func TestServeWarnsWhatAFlagProblemDoes(t *testing.T) {
	mono := plainBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "monolith") }))
	route := "routes:\n  - name: orders\n    path: /api/orders/*\n    service: " + mono + "\n"
	for _, tc := range []struct{ flags, want string }{
		{`{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
		  "orders-percent":{"state":"ENABLED","variants":{"on":100},"defaultVariant":"on"}}}`, "follows the one in force"},
		{`{"flags":{"orders-percent":{"state":"ENABLED","variants":{"GET":100},"defaultVariant":null,"targeting":{"var":"method"}}}}`,
			"requests no targeting rule places stay on the monolith"},
	} {
		p := startServe(t, mono, route, tc.flags)
		if logs := p.logs.String(); !strings.Contains(logs, tc.want) || strings.Contains(logs, "the route stays on the monolith") {
			t.Errorf("logs:\n%s\nwant %q, not that the route stays on the monolith", logs, tc.want)
		}
	}
}
