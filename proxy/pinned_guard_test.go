package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests from a hand mutation test of the connection guards and their
// framer (guard.go, framer.go): each pins behaviour the other tests left
// free, found by changing the code and seeing them all still pass.

// guardRun is what a connection guard made of raw, which arrived in one
// read: how many bytes of it net/http may have, whether the guard cut the
// stream there, how many heads it delivered, and its verdict on the first.
// Where net/http itself refuses the same bytes, only this tells the
// guard's own refusal from net/http's: the guard must not rest on a
// net/http version's strictness (until 2025 it took a chunk line ended by
// a bare LF).
type guardRun struct {
	delivered int
	cut       bool
	heads     int
	first     reason
}

func runGuard(raw string) guardRun {
	g := &guardConn{f: framer{maxHead: 64 << 10}}
	k, cut := g.follow([]byte(raw))
	r := guardRun{delivered: k, cut: cut, heads: g.delivered, first: reasonUnframed}
	if g.qn > 0 {
		r.first = g.q[g.qh].reason
	}
	return r
}

// A chunked body whose chunk line breaks the grammar is cut at the first
// byte outside it: net/http never gets that byte, nor the request hidden
// behind it. Each case is one a looser reader frames otherwise (a size it
// wraps or drops, a line that ends at a bare LF in an extension, an
// extension without bound), so the client's next bytes would be taken as
// a request the guard did not judge.
func TestPinnedGuardCutsBrokenChunkLines(t *testing.T) {
	t.Parallel()
	const head = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name  string
		body  string
		cutAt int // in body: the first byte net/http does not get
	}{
		// 17 hex digits, which wrap to 0 in 64 bits: a last chunk.
		{"size of 17 digits", "10000000000000000\r\n\r\n" + smuggled, 16},
		{"empty size", "\r\n\r\n" + smuggled, 0},
		{"empty size with extension", ";a=b\r\n\r\n" + smuggled, 0},
		{"bare LF in an extension", "5;a\nhello\r\n0\r\n\r\n" + smuggled, 3},
		{"extension over 4 KiB", "5;" + strings.Repeat("a", maxChunkExt+1) + "\r\nhello\r\n0\r\n\r\n" + smuggled, 2 + maxChunkExt},
		{"no CR after the data", "5\r\nhelloX\n0\r\n\r\n" + smuggled, 8},
		{"CR CR after the data", "5\r\nhello\r\r0\r\n\r\n" + smuggled, 9},
		// Over 2^62, refused at the end of its line: the framer counts a
		// chunk's bytes in an int64, which a size past 2^63 would wrap.
		{"size over 2^62", "4000000000000001\r\nhello\r\n0\r\n\r\n" + smuggled, 17},
		{"size of 2^64-1", "ffffffffffffffff\r\nhello\r\n0\r\n\r\n" + smuggled, 17},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := runGuard(head + c.body)
			if !r.cut || r.delivered != len(head)+c.cutAt || r.heads != 1 || r.first != reasonOK {
				t.Errorf("delivered %d bytes of the body (cut %v, %d heads, the first %q), want it cut after %d, one head, accepted",
					r.delivered-len(head), r.cut, r.heads, reasonText[r.first], c.cutAt)
			}
		})
	}
}

// Chunked bodies net/http reads (whitespace after a size included) pass
// the guard whole: a client whose library pads the size line, cuts its
// upload into many small chunks or adds extensions is served, not refused
// with a 400 its upstream would never have given. The limits on a size's
// digits and an extension's bytes are per chunk, not per body.
func TestPinnedGuardPassesHonestChunkedBodies(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	var many, manyExt strings.Builder
	for range 40 {
		many.WriteString("1\r\nx\r\n")                                       // more size digits, all told, than one size may have
		manyExt.WriteString("1;e=" + strings.Repeat("v", 200) + "\r\nx\r\n") // more extension bytes, all told, than one line may have
	}
	cases := []struct{ name, body, want string }{
		{"space after the size", "5 \r\nhello\r\n0\r\n\r\n", "hello"},
		{"tab after the size", "5\t\r\nhello\r\n0 \r\n\r\n", "hello"},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
		{"extensions", "5;a=b;c=\"d e\"\r\nhello\r\n0;last\r\n\r\n", "hello"},
		{"trailer", "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", "hello"},
		{"forty one-byte chunks", many.String() + "0\r\n\r\n", strings.Repeat("x", 40)},
		{"forty chunks with extensions", manyExt.String() + "0\r\n\r\n", strings.Repeat("x", 40)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			host := fmt.Sprintf("honest-chunks-%d", i)
			raw := "POST /up HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + c.body
			resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
			if got := statuses(resps); !slices.Equal(got, []int{200}) {
				t.Fatalf("answers %v (%+v), want [200]", got, resps)
			}
			seen := log.requests(t, host, 1)
			if len(seen) != 1 || seen[0].body != c.want || seen[0].bodyErr != nil {
				t.Errorf("upstream received %+v, want one POST with body %q", seen, c.want)
			}
		})
	}
}

// Each kind of bad head that net/http itself would take is refused by the
// guard with its own status and reason, and the connection closed. The
// reason is what an operator reads in the answer and the log to tell an
// attack from a broken client (a folded line is an old client, a
// Content-Length beside Transfer-Encoding is smuggling); the status is
// what the client's library reports. Where a head is bad in several ways,
// the Transfer-Encoding is judged first, as net/http does: an unsupported
// coding is a 501 whatever else is wrong. (Heads net/http refuses on its
// own, a NUL or a space in a name, get its answer first.)
func TestPinnedGuardRefusalReasons(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), log.backend("service"))
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name, raw string
		status    int
		why       string
	}{
		{"folded with a space", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "folded header line"},
		{"folded with a tab", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400, "folded header line"},
		{"bare LF after the request line", "GET /a HTTP/1.1\nHost: x\r\n\r\n", 400, "bare CR or LF in the request head"},
		{"bare LF after a field", "GET /a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400, "bare CR or LF in the request head"},
		{"bare LF ending the head", "GET /a HTTP/1.1\r\nHost: x\r\n\n", 400, "bare CR or LF in the request head"},
		{"HTTP/1.2", "GET /a HTTP/1.2\r\nHost: x\r\n\r\n", 400, "malformed request line"},
		{"CL.TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, "both Content-Length and Transfer-Encoding"},
		{"TE in HTTP/1.0", "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled, 400, "Transfer-Encoding in an HTTP/1.0 request"},
		{"TE in HTTP/1.0 beside a CL", "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled, 400, "Transfer-Encoding in an HTTP/1.0 request"},
		{"CL of 19 digits", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000000\r\n\r\nhello", 400, "invalid or conflicting Content-Length"},
		{"TE gzip in HTTP/1.0", "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled, 501, "unsupported Transfer-Encoding"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			host := fmt.Sprintf("reason-%d", i)
			raw := strings.ReplaceAll(c.raw, "Host: x", "Host: "+host)
			resps, closed := exchange(t, e.proxyAddr(), raw, 5*time.Second)
			if len(resps) != 1 || resps[0].status != c.status || !strings.Contains(resps[0].body, "route _default: "+c.why) {
				t.Errorf("answers %+v, want one %d for %q", resps, c.status, c.why)
			}
			if !closed {
				t.Errorf("connection left open after the refusal")
			}
			if seen := log.requests(t, host, 0); len(seen) != 0 {
				t.Errorf("upstream received %v", seen)
			}
		})
	}
}

// The guard's verdict on heads that net/http refuses on its own today: the
// guard judges them too, and cuts the stream after them, so that what
// reaches net/http never rests on its strictness alone (a value's inner
// whitespace, a sign, a long Transfer-Encoding the guard keeps only the
// start of).
func TestPinnedGuardJudgesHeadsNetHTTPRefusesToo(t *testing.T) {
	t.Parallel()
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name, fields string
		want         reason
	}{
		{"space inside a CL", "Content-Length: 1 2\r\n", reasonContentLength},
		{"space inside a TE", "Transfer-Encoding: chun ked\r\n", reasonTransferEncoding},
		{"negative CL", "Content-Length: -5\r\n", reasonContentLength},
		{"signed CL", "Content-Length: +5\r\n", reasonContentLength},
		{"CL with a letter", "Content-Length: 5a\r\n", reasonContentLength},
		{"CLs differing in text only", "Content-Length: 5\r\nContent-Length: 05\r\n", reasonContentLength},
		{"CL list", "Content-Length: 5, 5\r\n", reasonContentLength},
		{"TE past what the guard keeps", "Transfer-Encoding: chunked" + strings.Repeat(" ", 13) + "x\r\n", reasonTransferEncoding},
		{"TE chunked twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", reasonTransferEncoding},
		{"TE gzip beside a CL", "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n", reasonTransferEncoding},
		{"TE chunked beside a bad CL", "Transfer-Encoding: chunked\r\nContent-Length: x\r\n", reasonCLAndTE},
		{"NUL in a value", "X-A: a\x00b\r\n", reasonHeaderValue},
		{"space before the colon", "X-A : b\r\n", reasonHeaderName},
		{"bare CR in a value", "X-A: a\rb\r\n", reasonLineEnd},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			head := "POST /a HTTP/1.1\r\nHost: x\r\n" + c.fields + "\r\n"
			r := runGuard(head + "0\r\n\r\n" + smuggled)
			if r.first != c.want || !r.cut || r.heads != 1 || r.delivered != len(head) {
				t.Errorf("verdict %q (cut %v after %d bytes, %d heads), want %q, cut after the head (%d bytes)",
					reasonText[r.first], r.cut, r.delivered, r.heads, reasonText[c.want], len(head))
			}
		})
	}
}

// Framing headers as clients write them, with the whitespace the grammar
// allows around a value, any case, and the longest Content-Length the
// guard reads (18 digits): each is served with its body, not refused.
func TestPinnedGuardPassesHonestFramingHeaders(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), nil)
	cases := []struct{ name, fields, body string }{
		{"CL without space", "Content-Length:5\r\n", "hello"},
		{"CL with a trailing space", "Content-Length: 5 \r\n", "hello"},
		{"CL with a trailing tab", "Content-Length: 5\t\r\n", "hello"},
		{"CL after a tab", "Content-Length:\t5\r\n", "hello"},
		{"CL in lower case", "content-length: 5\r\n", "hello"},
		{"CL of 18 digits", "Content-Length: 000000000000000005\r\n", "hello"},
		{"CL twice, the same", "Content-Length: 5\r\nContent-Length: 5 \r\n", "hello"},
		{"TE with a trailing tab", "Transfer-Encoding: chunked\t\r\n", "5\r\nhello\r\n0\r\n\r\n"},
		{"TE in mixed case", "TRANSFER-ENCODING: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			host := fmt.Sprintf("honest-fields-%d", i)
			raw := "POST /up HTTP/1.1\r\nHost: " + host + "\r\n" + c.fields + "Connection: close\r\n\r\n" + c.body
			resps, _ := exchange(t, e.proxyAddr(), raw, 5*time.Second)
			if got := statuses(resps); !slices.Equal(got, []int{200}) {
				t.Fatalf("answers %v (%+v), want [200]", got, resps)
			}
			if seen := log.requests(t, host, 1); len(seen) != 1 || seen[0].body != "hello" || seen[0].bodyErr != nil {
				t.Errorf("upstream received %+v, want one POST with body %q", seen, "hello")
			}
		})
	}
}

// The upstream guard marks "Connection: close" on every final answer whose
// framing two readers could take differently, so that the connection is
// not reused past it, and on no other. Some of these answers net/http's
// transport and the direct path's reader refuse today; the mark must not
// rest on that. A bad interim (1xx) answer marks the final one, however
// many clean interim answers come between: net/http reads on to the final
// answer, whose head is the only one whose fields decide the reuse.
func TestPinnedUpstreamGuardMarksAmbiguousAnswers(t *testing.T) {
	t.Parallel()
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
	cases := []struct {
		name, answer string
		marked       bool
	}{
		{"clean", final, false},
		{"clean after clean interim answers", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + final, false},
		{"CL of 19 digits", "HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000005\r\n\r\nfirst", true},
		{"CLs differing", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nfirst", true},
		{"TE twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", true},
		{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nfirst", true},
		{"TE padded past what the guard keeps", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked" + strings.Repeat(" ", 40) + "\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", true},
		{"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", true},
		{"bad interim answer", "HTTP/1.1 100 Continue\r\nX: a\nY: b\r\n\r\n" + final, true},
		{"bad interim answer, then a clean one", "HTTP/1.1 100 Continue\r\nX: a\nY: b\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n" + final, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, size := range []int{1, 7, len(c.answer)} {
				delivered, _ := runUpstreamGuard([]byte(c.answer), size, false)
				got := string(delivered)
				at := strings.Index(got, string(closeField))
				finalAt := strings.LastIndex(got, "HTTP/1.")
				if marked := at >= 0; marked != c.marked || marked && (at < finalAt || strings.Count(got, string(closeField)) != 1) {
					t.Fatalf("in pieces of %d: %q; want the final answer's head marked: %v", size, got, c.marked)
				}
			}
		})
	}
}

// Through the proxy, on the transport that carries uploads (net/http's,
// which takes these answers as they are): an answer the guard could not
// frame for sure is passed on whole, and its connection is not reused, so
// that an upstream (or a device in front of it) that meant more by it
// cannot make its leftovers the answer to another client's request.
func TestPinnedAmbiguousAnswerToAnUploadIsNotReused(t *testing.T) {
	t.Parallel()
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
	cases := []struct{ name, first string }{
		{"CL of 19 digits", "HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000005\r\n\r\nfirst"},
		{"TE padded past what the guard keeps", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked" + strings.Repeat(" ", 40) + "\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"},
		{"bad interim answer, then a clean one", "HTTP/1.1 100 Continue\r\nX: a\nY: b\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n" + final},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			wantAmbiguousAnswerNotReused(t, c.first, "POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup", false)
		})
	}
}

// A WebSocket client may send bytes in the same packet as the upgrade
// request, before the 101 comes. The guard cannot tell them from a request
// that follows; if they look like a bad head (any text with an empty line
// in it), it stops following the connection rather than cut it: cut, the
// tunnel would open and then drop everything the client sends, for good.
// (net/http's ReverseProxy drops the early bytes themselves, which it
// holds in its buffer when it takes the connection over; the client's
// next ones must pass.) A head after a refused upgrade is still judged:
// see TestRequestsAfterRefusedUpgradeAreStillChecked.
func TestPinnedEarlyBytesDoNotCutATunnel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), wsUpstream(func(c net.Conn) { io.Copy(c, c) }), nil)
	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"+
		"not a request\n\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "hello")
	var echo []byte
	for !strings.HasSuffix(string(echo), "hello") {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatalf("the tunnel echoed %q, then %v; want the client's %q", echo, err, "hello")
		}
		echo = append(echo, b)
	}
}

// A head net/http serves that is not the one the guard read (another
// request-target, or more requests than the guard delivered) has no
// verdict: it is refused as unframed, and so is every request after it on
// the connection, whatever their verdicts say. This is the net under the
// guard: should it and net/http ever disagree on where a request starts,
// what follows is never forwarded on a verdict meant for another head.
func TestPinnedGuardRefusesHeadsItDidNotRead(t *testing.T) {
	t.Parallel()
	g := &guardConn{f: framer{maxHead: 64 << 10}}
	if _, cut := g.follow([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")); cut {
		t.Fatal("three clean heads cut")
	}
	for i, c := range []struct {
		uri  string
		want reason
	}{
		{"/a", reasonOK},
		{"/x", reasonUnframed}, // the guard read /b here
		{"/c", reasonUnframed}, // its own verdict, but after a head the guard did not read
		{"/d", reasonUnframed}, // no verdict left
	} {
		if got := g.pop(c.uri).reason; got != c.want {
			t.Errorf("request %d (%s): verdict %q, want %q", i, c.uri, reasonText[got], reasonText[c.want])
		}
	}
	// Another target, of the same length or not, is another head.
	for _, uri := range []string{"/b", "/bb"} {
		g := &guardConn{f: framer{maxHead: 64 << 10}}
		g.follow([]byte("GET /c HTTP/1.1\r\nHost: x\r\n\r\n"))
		if got := g.pop(uri).reason; got != reasonUnframed {
			t.Errorf("%s served where the guard read /c: verdict %q, want %q", uri, reasonText[got], reasonText[reasonUnframed])
		}
	}
}

// limits.stall_timeout cuts a client that stops taking its answer, not
// one that takes a long answer: each write pushes the deadline on, so a
// stream that outlasts stall_timeout many times, read as it comes, is
// delivered whole.
func TestPinnedLongAnswerToAReadingClientIsNotCut(t *testing.T) {
	t.Parallel()
	const parts = 8
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range parts {
			fmt.Fprintf(w, "part %d\n", i)
			rc.Flush()
			time.Sleep(50 * time.Millisecond) // an upstream that streams slowly: 8 parts over 400ms
		}
	})
	e := newEnv(t, basicConfig+"limits: {stall_timeout: 150ms}\n", flagJSON("orders-percent", 0), slow, nil)
	resps, _ := exchange(t, e.proxyAddr(), "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || strings.Count(resps[0].body, "part ") != parts {
		t.Errorf("got %+v, want one answer of %d parts", resps, parts)
	}
}

// A refused request's connection ends in an orderly close, not a reset,
// even when the client has sent more than the proxy read (the rest of an
// upload, a pipelined request): closing a socket with unread bytes sends
// a reset, which can destroy the answer before the client reads it and
// tells the client the proxy failed rather than refused. The proxy first
// half-closes and takes (and drops) what is still in flight.
func TestPinnedRefusalEndsInAnOrderlyClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig+"limits: {max_header_count: 10}\n", flagJSON("orders-percent", 0), nil, nil)
	junk := strings.Repeat("j", 64<<10)
	var fields strings.Builder
	for i := range 11 {
		fmt.Fprintf(&fields, "X-H%d: v\r\n", i)
	}
	cases := []struct {
		name, raw string
		status    int
	}{
		{"bad head, then more", "GET /a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n" + junk, 400},
		{"refused by admit, body unread", "POST /api/orders/1 HTTP/1.1\r\nHost: x\r\n" + fields.String() +
			"Content-Length: " + fmt.Sprint(len(junk)) + "\r\n\r\n" + junk, 431},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", e.proxyAddr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, c.raw); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Errorf("after the answer: %v, want an orderly close", err)
			}
		})
	}
}

// An answer whose chunked body breaks the grammar reaches the transport
// only up to the break, and then as a failed read: what the upstream sent
// after it (perhaps another answer a laxer reader took for the rest of
// the body) never does, whether it came in the same read or later.
func TestPinnedUpstreamGuardStopsAtABrokenChunk(t *testing.T) {
	t.Parallel()
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	const answer = head + "5\nfirst\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned"
	for _, c := range []struct {
		name string
		conn net.Conn
	}{
		{"in one read", &replayConn{r: []byte(answer)}},
		{"a byte per read", &upstreamScript{data: []byte(answer)}},
	} {
		u := &upstreamConn{Conn: c.conn, f: framer{response: true, maxHead: maxResponseHead}}
		got, err := io.ReadAll(u)
		if string(got) != head+"5" || err != errBrokenBody {
			t.Errorf("%s: read %q, then %v; want %q, then %v", c.name, got, err, head+"5", errBrokenBody)
		}
	}
}

// A chunked body that breaks the grammar after its request was served
// (the upstream is already reading it) is refused at once, 400, when the
// bad byte comes: the guard ends the body there. It must not leave the
// request waiting for bytes it will never pass on, to end in a 408 after
// stall_timeout, with the upstream held all that time.
func TestPinnedBadChunkInAServedBodyIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	reading := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err == nil {
			close(reading)
		}
		io.Copy(io.Discard, r.Body)
	})
	e := newEnv(t, basicConfig+"limits: {stall_timeout: 30s}\n", flagJSON("orders-percent", 0), up, nil)
	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	select {
	case <-reading:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream did not get the first chunk")
	}
	io.WriteString(c, "zz\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within 10s of the bad chunk line (stall_timeout 30s): %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "malformed or truncated request body") {
		t.Errorf("answer %d %q, want 400 for a malformed body", resp.StatusCode, b)
	}
}
