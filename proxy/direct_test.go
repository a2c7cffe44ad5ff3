package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDirectPathMatchesReverseProxy sends the same requests through an
// upstream's direct path and through its ReverseProxy (with direct off),
// each against its own upstream answering the same bytes, and requires the
// same bytes on both sides: the request head the upstream read, and the
// whole response the client read (1xx, fields, body, trailers), Date
// aside.
func TestDirectPathMatchesReverseProxy(t *testing.T) {
	t.Parallel()
	const full = "GET /a/b%2Fc?x=1;y&b=2 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: ua/1\r\n" +
		"X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-For: 198.51.100.1, 198.51.100.2\r\nX-Forwarded-Host: evil\r\n" +
		"X-Forwarded-Proto: https\r\nForwarded: for=evil\r\nConnection: X-Drop, close\r\nX-Drop: 1\r\n" +
		"Keep-Alive: 5\r\nTe: trailers, deflate\r\nProxy-Authorization: secret\r\nAccept: */*\r\n" +
		"Cookie: a=1\r\nCookie: b=2\r\nx-lower: v\r\nX-Strangler-Shadow: 0\r\n\r\n"
	requests := []struct{ name, raw string }{
		{"every kind of field", full},
		{"no User-Agent", "GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"empty User-Agent", "GET /p HTTP/1.1\r\nHost: h\r\nUser-Agent:\r\nConnection: close\r\n\r\n"},
		{"HEAD", "HEAD /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"DELETE", "DELETE /p/1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"OPTIONS", "OPTIONS /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"TRACE", "TRACE /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"PURGE", "PURGE /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"body-less POST", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"empty query", "GET /p? HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"escaped path", "GET /p/%7Euser/a%20b/%C3%A9 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"HTTP/1.0", "GET /p HTTP/1.0\r\nHost: h\r\n\r\n"},
		{"Te without trailers", "GET /p HTTP/1.1\r\nHost: h\r\nTe: deflate\r\nConnection: close\r\n\r\n"},
		{"HTTP/1.0 without Host", "GET /p HTTP/1.0\r\nUser-Agent: probe\r\n\r\n"},
		{"User-Agent named in Connection", "GET /p HTTP/1.1\r\nHost: h\r\nUser-Agent: probe\r\nConnection: User-Agent, close\r\n\r\n"},
	}
	answers := []struct {
		name, raw string
		close     bool // the upstream closes the connection after it
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false},
		{"103 then 200, hop-by-hop fields", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: x\r\n" +
			"X-Keep: k\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok", false},
		// A Content-Type, so that net/http sniffs none: ReverseProxy flushes
		// a stream's head from a timer, racing its first write.
		{"chunked, announced trailer", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 9\r\n\r\n", false},
		{"chunked, unannounced trailer", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Late: 1\r\n\r\n", false},
		{"until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil close", true},
		{"204", "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false},
		{"304", "HTTP/1.1 304 Not Modified\r\nEtag: \"v\"\r\n\r\n", false},
		{"500", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail", false},
	}
	date := regexp.MustCompile(`(?m)^Date: .*\r\n`)
	for _, target := range []string{"", "/prefix", "/prefix/"} {
		for _, mode := range []struct{ preserve, shadow bool }{{true, false}, {false, false}, {true, true}} {
			preserve, shadow := mode.preserve, mode.shadow
			for _, rq := range requests {
				for _, an := range answers {
					name := "target" + target + "/preserve=" + map[bool]string{true: "on", false: "off"}[preserve] + "/shadow=" + map[bool]string{true: "on", false: "off"}[shadow] + "/" + rq.name + "/" + an.name
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						var heads, resps [3]string
						for i, way := range []via{viaDirect, viaReverseProxy, viaNetHTTP} {
							up := startCanned(t, always(an.raw, an.close))
							resps[i] = throughUpstream(t, "http://"+up.addr+target, preserve, shadow, way, rq.raw)
							got, _ := up.recorded()
							if len(got) != 1 {
								t.Fatalf("%s: upstream read %q, want one request", way, got)
							}
							heads[i] = strings.ReplaceAll(got[0], up.addr, "{upstream}")
							resps[i] = date.ReplaceAllString(resps[i], "")
						}
						if heads[0] != heads[1] || heads[0] != heads[2] {
							t.Errorf("the upstream read\n%q (direct)\n%q (ReverseProxy)\n%q (ReverseProxy over net/http's Transport)", heads[0], heads[1], heads[2])
						}
						if resps[0] != resps[1] {
							t.Errorf("the client read\n%q (direct)\n%q (ReverseProxy)", resps[0], resps[1])
						}
					})
				}
			}
		}
	}
}

// via is the way throughUpstream forwards.
type via string

const (
	viaDirect       via = "direct path"
	viaReverseProxy via = "ReverseProxy" // over h1Transport, as a body-less call with tracing on is
	viaNetHTTP      via = "ReverseProxy over net/http's Transport"
)

// throughUpstream serves raw through a proxy whose only upstream is
// target (the shadow copies' upstream, with shadow), forwarding as way
// says, and returns what the client read until the proxy closed the
// connection.
func throughUpstream(t *testing.T, target string, preserve, shadow bool, way via, raw string) string {
	t.Helper()
	var ts transports
	tr := ts.get(testTimeouts)
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if way == viaNetHTTP {
		rt = tr.std // its own pool: nothing else here uses it
	}
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	u := newUpstream(upstreamOptions{
		route: "r", backend: backendMonolith, target: tu, preserveHost: preserve, shadow: shadow, transport: rt,
		buffers: newBufferPool(), metrics: m.bindBackend("r", backendMonolith),
		log: slog.New(slog.DiscardHandler),
	})
	if (u.direct != nil) != (way != viaNetHTTP) {
		t.Fatalf("%s: the direct path is %v", way, u.direct != nil)
	}
	if way != viaDirect {
		u.direct = nil
	}
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { u.serve(w, r) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the response: %v (read %q)", err, b)
	}
	return string(b)
}

// TestForwardedHostOnlyWhenThereIsOne: a request without a host to name
// (HTTP/1.0 without Host, or an empty Host) is forwarded without an
// X-Forwarded-Host, which would otherwise say the client asked for "",
// and never with the client's own.
func TestForwardedHostOnlyWhenThereIsOne(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw, want string }{
		{"HTTP/1.0 without Host", "GET /p HTTP/1.0\r\nX-Forwarded-Host: evil\r\n\r\n", ""},
		{"empty Host", "GET /p HTTP/1.1\r\nHost:\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n\r\n", ""},
		{"Host", "GET /p HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n\r\n", "shop.example"},
	} {
		for _, way := range []via{viaDirect, viaReverseProxy, viaNetHTTP} {
			t.Run(tc.name+"/"+string(way), func(t *testing.T) {
				t.Parallel()
				up := startCanned(t, always("HTTP/1.1 204 No Content\r\n\r\n", false))
				throughUpstream(t, "http://"+up.addr, true, false, way, tc.raw)
				heads, _ := up.recorded()
				if len(heads) != 1 {
					t.Fatalf("upstream read %q, want one request", heads)
				}
				req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(heads[0])))
				if err != nil {
					t.Fatalf("upstream read %q: %v", heads[0], err)
				}
				got, ok := req.Header["X-Forwarded-Host"]
				switch {
				case tc.want == "" && ok:
					t.Errorf("X-Forwarded-Host %q, want none", got)
				case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
					t.Errorf("X-Forwarded-Host %q, want %q", got, tc.want)
				}
			})
		}
	}
}
