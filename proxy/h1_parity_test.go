package proxy

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDirectPathAnswersAsReverseProxy runs exact upstream bytes through the direct
// path and through ReverseProxy over net/http's Transport (the path every
// request with a body takes) and requires the client to read the same
// bytes. The cases where the direct path is stricter on purpose (a
// 19-digit zero-padded Content-Length, HTTP/1.2, a space in a field name,
// an unsolicited 100 Continue that the recorder drops anyway, a folded
// line, status 099, which ReverseProxy turns into a panic) are left out.
func TestDirectPathAnswersAsReverseProxy(t *testing.T) {
	get := "GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	head := "HEAD /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	cases := []struct {
		name, req, ans string
		close          bool
	}{
		// Connection's names are trimmed of SP and HTAB only, as
		// ReverseProxy trims them (textproto.TrimString), not of Unicode
		// spaces (strings.TrimSpace removed X-Keep here).
		{"Connection token with NBSP", get, "HTTP/1.1 200 OK\r\nConnection: \xc2\xa0X-Keep\r\nX-Keep: 1\r\nContent-Length: 2\r\n\r\nok", false},
		{"Connection token with NEL", get, "HTTP/1.1 200 OK\r\nConnection: X-Keep\xc2\x85\r\nX-Keep: 1\r\nContent-Length: 2\r\n\r\nok", false},

		// Regression coverage: these agree today.
		{"HEAD chunked+CL", head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"HEAD CL", head, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", false},
		{"HEAD chunked", head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"HEAD 204 with CL", head, "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", false},
		{"chunk extensions", get, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b\r\nok\r\n0;x\r\n\r\n", false},
		{"HTTP/1.0 TE ignored, CL short", get, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nContent-Length: 15\r\n\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"HTTP/1.0 TE ignored, to EOF", get, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"no reason phrase", get, "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", false},
		{"duplicate equal CL", get, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"conflicting CL", get, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false},
		{"empty CL", get, "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nok", true},
		{"CL with OWS", get, "HTTP/1.1 200 OK\r\nContent-Length:  2 \r\n\r\nok", false},
		{"304 with CL", get, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false},
		{"204 chunked+CL", get, "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n", false},
		{"obs-text value", get, "HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nContent-Length: 2\r\n\r\nok", false},
		{"announced trailer named Connection", get, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: Connection, X-A\r\n\r\n2\r\nok\r\n0\r\nConnection: x\r\nX-A: 1\r\n\r\n", false},
		{"unannounced hop-by-hop trailers", get, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nKeep-Alive: x\r\nTransfer-Encoding: x\r\n\r\n", false},
		{"Trailer without chunked", get, "HTTP/1.1 200 OK\r\nTrailer: X-A\r\nContent-Length: 2\r\n\r\nok", false},
		{"bad trailer key", get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", false},
		{"101 to a GET", get, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", false},
		{"six 102s", get, strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"103 naming Link in Connection", get, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: Link\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"status 600 and 999", get, "HTTP/1.1 999 X\r\nContent-Length: 2\r\n\r\nok", false},
		{"hop-by-hop fixed list", get, "HTTP/1.1 200 OK\r\nProxy-Connection: keep-alive\r\nTe: x\r\nUpgrade: y\r\nKeep-Alive: 5\r\nProxy-Authenticate: z\r\nContent-Length: 2\r\n\r\nok", false},
		{"Connection names Content-Length", get, "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok", true},
		{"Connection names Content-Type, Date", get, "HTTP/1.1 200 OK\r\nConnection: Content-Type, Date\r\nContent-Type: a/b\r\nDate: x\r\nContent-Length: 2\r\n\r\nok", false},
		{"bare LF head", get, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false},
		{"NUL in value", get, "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", false},
		{"TE gzip,chunked", get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
		{"TE twice", get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"Set-Cookie twice", get, "HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nset-cookie: b\r\nContent-Length: 2\r\n\r\nok", false},
	}
	date := regexp.MustCompile(`(?m)^Date: .*\r\n`)
	// ReverseProxy announces trailers in its map's order.
	trailer := regexp.MustCompile(`(?m)^Trailer: (.*)\r\n`)
	sortTrailer := func(s string) string {
		return trailer.ReplaceAllStringFunc(s, func(line string) string {
			names := strings.Split(trailer.FindStringSubmatch(line)[1], ", ")
			slices.Sort(names)
			return "Trailer: " + strings.Join(names, ", ") + "\r\n"
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out [2]string
			for i, way := range []via{viaDirect, viaNetHTTP} {
				up := startCanned(t, always(c.ans, c.close))
				out[i] = sortTrailer(date.ReplaceAllString(throughUpstream(t, "http://"+up.addr, false, false, way, c.req), ""))
			}
			if out[0] != out[1] {
				t.Errorf("for upstream bytes %q the client read\n%q (direct path)\n%q (ReverseProxy over net/http's Transport)", c.ans, out[0], out[1])
			}
		})
	}
}
