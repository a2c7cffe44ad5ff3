package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// What an upstream's answer carries reaches the client as it was sent, on
// both paths (found by a review, 2026-12-07): no Content-Type of the
// proxy's own (Go's server sniffs a body written without one: text/html
// for an answer served with nosniff and no type on purpose), and no
// hop-by-hop field of an interim answer.
func TestAnswerFieldsAsSent(t *testing.T) {
	t.Parallel()
	const page = "<html><script>alert(1)</script></html>"
	for _, tc := range []struct {
		name, answer string
	}{
		{"no Content-Type, nosniff", "HTTP/1.1 200 OK\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 38\r\n\r\n" + page},
		{"no Content-Type, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n26\r\n" + page + "\r\n0\r\n\r\n"},
		{"a 103 with hop-by-hop fields", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=3\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\n" + page},
	} {
		for _, withBody := range []bool{false, true} {
			name := tc.name + map[bool]string{false: ", direct path", true: ", ReverseProxy"}[withBody]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := startScripted(t, func(n, k int, c net.Conn) bool {
					_, err := io.WriteString(c, tc.answer)
					return err == nil
				})
				raw := "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
				if withBody {
					raw = "POST /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz"
				}
				all, _ := exchange(t, s.proxyAddr, raw, 5*time.Second)
				if len(all) == 0 || all[len(all)-1].status != 200 || all[len(all)-1].body != page {
					t.Fatalf("answers %+v, want the page", all)
				}
				final := all[len(all)-1]
				if ct, ok := final.header["Content-Type"]; ok {
					t.Errorf("the client got Content-Type %q, which the upstream did not send", ct)
				}
				for _, r := range all[:len(all)-1] {
					if r.status != 103 || r.header.Get("Link") == "" {
						t.Errorf("interim answer %d %q, want the 103 with its Link", r.status, r.header)
					}
					for _, k := range []string{"Connection", "X-Hop", "Keep-Alive"} {
						if v, ok := r.header[k]; ok {
							t.Errorf("the 103 kept its hop-by-hop field %s: %q", k, v)
						}
					}
				}
			})
		}
	}
}

// The peer is appended to X-Forwarded-For as nginx's
// $proxy_add_x_forwarded_for does; an empty line adds no empty hop.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{nil, "192.0.2.1"},
		{[]string{"203.0.113.9"}, "203.0.113.9, 192.0.2.1"},
		{[]string{"203.0.113.9, 10.0.0.1", "198.51.100.2"}, "203.0.113.9, 10.0.0.1, 198.51.100.2, 192.0.2.1"},
		{[]string{""}, "192.0.2.1"},
		{[]string{" ", "203.0.113.9", ""}, "203.0.113.9, 192.0.2.1"},
	} {
		r := &http.Request{RemoteAddr: "192.0.2.1:4711", Header: http.Header{}}
		if tc.lines != nil {
			r.Header["X-Forwarded-For"] = tc.lines
		}
		if got := forwardedFor(r); got != tc.want {
			t.Errorf("X-Forwarded-For %q: %q, want %q", tc.lines, got, tc.want)
		}
	}
}

// An answer's trailers pass, less those no trailer may carry (framing,
// hop-by-hop, authentication, how to read the content): announced or not,
// on both paths.
func TestAnswerTrailersFiltered(t *testing.T) {
	t.Parallel()
	for _, announce := range []bool{false, true} {
		for _, withBody := range []bool{false, true} {
			t.Run(fmt.Sprintf("announced=%v,body=%v", announce, withBody), func(t *testing.T) {
				t.Parallel()
				head := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
				if announce {
					head += "Trailer: X-Checksum, Connection, Www-Authenticate\r\n" // announcing Content-Length is refused (502) by net/http and the direct path alike
				}
				answer := head + "\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nContent-Length: 99\r\nConnection: close\r\nWww-Authenticate: Basic\r\n\r\n"
				s := startScripted(t, func(n, k int, c net.Conn) bool {
					_, err := io.WriteString(c, answer)
					return err == nil
				})
				c, err := net.Dial("tcp", s.proxyAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				req, _ := http.NewRequest("GET", "http://x/r", nil)
				if withBody {
					req, _ = http.NewRequest("POST", "http://x/r", strings.NewReader("z"))
				}
				req.Header.Set("Te", "trailers")
				if err := req.Write(c); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), req)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != "ok" {
					t.Fatalf("body %q, %v", body, err)
				}
				if got := resp.Trailer.Get("X-Checksum"); got != "abc" {
					t.Errorf("trailer X-Checksum %q, want abc (trailers %q)", got, resp.Trailer)
				}
				for _, k := range []string{"Content-Length", "Connection", "Www-Authenticate"} {
					if v, ok := resp.Trailer[k]; ok {
						t.Errorf("trailer %s reached the client: %q", k, v)
					}
				}
				if strings.Contains(resp.Header.Get("Trailer"), "Www-Authenticate") {
					t.Errorf("announced trailers %q", resp.Header.Get("Trailer"))
				}
			})
		}
	}
}
