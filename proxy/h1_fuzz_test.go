package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// readResponseSeeds are the responses of the framing and error tests
// (h1_test.go), as one upstream would send them.
var readResponseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6;a;b=\"q\"\r\n world\r\n0;last\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Late: 1\r\n\r\nHTTP/1.1 200 OK\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
	"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nokGARBAGE",
	"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-Folded: a\r\n\tb\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 099 Weird\r\n\r\n",
	"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
}

// FuzzReadResponse holds h1Transport's response reader to net/http's on
// arbitrary bytes: a response readResponse and h1Body read to its end
// without error must be one http.ReadResponse reads as well, with the same
// status, header, length, body, trailers, and the same bytes left after it
// (where the next response would begin). Ours may refuse what net/http
// takes, since it is stricter on purpose; never the reverse.
func FuzzReadResponse(f *testing.F) {
	for _, s := range readResponseSeeds {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		if d := disagreement(data, head); d != "" {
			t.Fatal(d)
		}
	})
}

// disagreement reads data as the response to a GET (or a HEAD) with both
// readers and describes how they disagree, if they do.
func disagreement(data []byte, head bool) string {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	req, err := http.NewRequest(method, "http://upstream.test/", nil)
	if err != nil {
		return err.Error()
	}
	ours, err := readOurs(data, req)
	if err != nil {
		return ""
	}
	std, err := readStd(data, req)
	if err != nil {
		return fmt.Sprintf("%s %q: ours read %v, net/http refused it: %v", method, data, ours, err)
	}
	o, s := ours.resp, std.resp
	switch oh, sh := comparableHeaders(o, s); {
	case o.StatusCode != s.StatusCode || o.Status != s.Status || o.ProtoMinor != s.ProtoMinor:
		return fmt.Sprintf("%s %q: status %q %s, net/http %q %s", method, data, o.Status, o.Proto, s.Status, s.Proto)
	// Ours also closes after an answer with both framings, where
	// net/http trusts the chunked one.
	case o.ContentLength != s.ContentLength || o.Close != s.Close && !(o.Close && bothFramings(data)):
		return fmt.Sprintf("%s %q: ContentLength %d Close %v, net/http %d %v", method, data, o.ContentLength, o.Close, s.ContentLength, s.Close)
	// net/http marks a chunked 1xx, 204 or 304 answer, which has no body,
	// as chunked; ours does not, and no one reads it there.
	case bodyAllowedForStatus(s.StatusCode) && !slices.Equal(o.TransferEncoding, s.TransferEncoding):
		return fmt.Sprintf("%s %q: TransferEncoding %q, net/http %q", method, data, o.TransferEncoding, s.TransferEncoding)
	case !bytes.Equal(ours.body, std.body):
		return fmt.Sprintf("%s %q: body %q, net/http %q", method, data, ours.body, std.body)
	case !bytes.Equal(ours.rest, std.rest):
		return fmt.Sprintf("%s %q: response ends before %q, net/http before %q", method, data, ours.rest, std.rest)
	case !reflect.DeepEqual(oh, sh):
		return fmt.Sprintf("%s %q: header %q, net/http %q", method, data, oh, sh)
	case ours.chunked && !sameFields(o.Trailer, s.Trailer):
		return fmt.Sprintf("%s %q: trailer %q, net/http %q", method, data, o.Trailer, s.Trailer)
	}
	return ""
}

// bothFramings reports whether a response's fields name both a
// Content-Length and a Transfer-Encoding.
func bothFramings(data []byte) bool {
	lower := bytes.ToLower(data)
	return bytes.Contains(lower, []byte("\ncontent-length:")) && bytes.Contains(lower, []byte("\ntransfer-encoding:"))
}

// readBack is one response read off a byte stream to its end.
type readBack struct {
	resp    *http.Response
	body    []byte
	chunked bool   // the body was read with the chunked coding
	rest    []byte // the bytes after the response
}

func (r readBack) String() string {
	return fmt.Sprintf("%q %q length %d body %q trailer %q", r.resp.Status, r.resp.Header, r.resp.ContentLength, r.body, r.resp.Trailer)
}

// readOurs reads a response as h1Transport does: readResponse for the
// head, then an h1Body over the same bufio.Reader. The body's end releases
// its connection; the pool keeps none (maxIdle 0), so it closes it, a pipe
// end standing for the upstream connection.
func readOurs(data []byte, req *http.Request) (readBack, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	var hbuf []byte
	resp, framing, err := readResponse(br, &hbuf, req)
	if err != nil {
		return readBack{}, err
	}
	r := readBack{resp: resp, chunked: framing.kind == bodyChunked}
	if framing.kind != bodyNone {
		conn, peer := net.Pipe()
		defer peer.Close()
		pc := &h1Conn{pool: &h1Pool{t: &h1Transport{}}, conn: conn, br: br}
		if r.body, err = io.ReadAll(&h1Body{pc: pc, f: framing, resp: resp}); err != nil {
			return readBack{}, err
		}
	}
	r.rest, _ = io.ReadAll(br)
	return r, nil
}

func readStd(data []byte, req *http.Request) (readBack, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return readBack{}, err
	}
	r := readBack{resp: resp}
	if r.body, err = io.ReadAll(resp.Body); err != nil {
		return readBack{}, err
	}
	r.rest, _ = io.ReadAll(br)
	return r, nil
}

// comparableHeaders returns copies of the two readers' headers without
// the fields net/http is known to present differently, all of them
// hop-by-hop or framing fields ReverseProxy does not pass on as they are:
// Transfer-Encoding (both keep it in resp.TransferEncoding);
// Content-Length where one of them dropped it; Connection, which net/http
// deletes from an HTTP/1.1 head when it says close; the Cache-Control:
// no-cache net/http adds for a Pragma: no-cache; and Trailer, which
// net/http moves into resp.Trailer for any chunked answer, ours only for
// one with a body.
func comparableHeaders(ours, std *http.Response) (http.Header, http.Header) {
	o, s := ours.Header.Clone(), std.Header.Clone()
	delete(o, "Transfer-Encoding")
	delete(s, "Transfer-Encoding")
	if o["Content-Length"] == nil || s["Content-Length"] == nil {
		delete(o, "Content-Length")
		delete(s, "Content-Length")
	}
	if s["Connection"] == nil && ours.ProtoMinor == 1 && httpguts.HeaderValuesContainsToken(o["Connection"], "close") {
		delete(o, "Connection")
	}
	if o["Cache-Control"] == nil && slices.Equal(s["Cache-Control"], []string{"no-cache"}) {
		delete(s, "Cache-Control")
	}
	if s["Trailer"] == nil && slices.Equal(std.TransferEncoding, []string{"chunked"}) {
		delete(o, "Trailer")
	}
	return o, s
}

// sameFields compares trailers, where nil and empty are the same.
func sameFields(a, b http.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// bodyAllowedForStatus is net/http's rule of the same name.
func bodyAllowedForStatus(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}
