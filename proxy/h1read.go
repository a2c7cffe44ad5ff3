package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The response side of h1Transport. The rules are net/http's
// (ReadResponse and its transfer-encoding logic), stricter where a proxy
// must be: a response head net/http would refuse is refused, and a few it
// would take are refused too (control characters in a field value, a chunk
// line not ended by CRLF). FuzzReadResponse holds the two readers to that.

type bodyKind uint8

const (
	bodyNone    bodyKind = iota // no body: HEAD, 1xx, 204, 304, Content-Length: 0
	bodyLength                  // Content-Length bytes
	bodyChunked                 // chunked transfer coding
	bodyEOF                     // until the upstream closes the connection
)

type bodyFraming struct {
	kind bodyKind
	n    int64 // bodyLength: the length
}

var chunkedTE = []string{"chunked"} // shared, never modified

// readResponse reads one response head from br (hbuf is scratch space
// kept between calls) for a request with the given method, and decides
// how its body is framed. An error before any byte arrived is an
// *errNothingRead.
func readResponse(br *bufio.Reader, hbuf *[]byte, req *http.Request) (*http.Response, bodyFraming, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, bodyFraming{}, &errNothingRead{err}
	}
	head, err := readHead(br, (*hbuf)[:0], maxUpstreamHead, false)
	*hbuf = head
	if err != nil {
		return nil, bodyFraming{}, err
	}
	return parseResponseHead(string(head), req)
}

// readHead appends lines from br to b up to and excluding the empty line
// that ends a head. With crlf, every line must end in CRLF (trailers, as
// net/http requires them).
func readHead(br *bufio.Reader, b []byte, max int, crlf bool) ([]byte, error) {
	partial := false // the last slice ended mid-line (the buffer was full)
	for {
		line, err := br.ReadSlice('\n')
		if err == nil && crlf && (len(line) < 2 || line[len(line)-2] != '\r') && !(partial && len(line) == 1 && len(b) > 0 && b[len(b)-1] == '\r') {
			return b, errors.New("malformed trailer: a line not ended by CRLF")
		}
		// The empty line counts, as net/http's transport counts it.
		if len(b)+len(line) > max {
			return b, fmt.Errorf("response head larger than %d bytes", max)
		}
		if err == nil && !partial && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return b, nil
		}
		b = append(b, line...)
		partial = err == bufio.ErrBufferFull
		switch {
		case partial:
		case err == io.EOF:
			return b, io.ErrUnexpectedEOF
		case err != nil:
			return b, err
		}
	}
}

// nextLine cuts the first line off s, without its CRLF or LF.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

func parseResponseHead(s string, req *http.Request) (*http.Response, bodyFraming, error) {
	var none bodyFraming
	line, rest := nextLine(s)
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return nil, none, fmt.Errorf("malformed HTTP response %q", line)
	}
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil, none, fmt.Errorf("malformed HTTP version %q", proto)
	}
	status = strings.TrimLeft(status, " ")
	code, _, _ := strings.Cut(status, " ")
	if len(code) != 3 || !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || code[0] == '0' {
		return nil, none, fmt.Errorf("malformed HTTP status code %q", code)
	}
	resp := &http.Response{
		Status:     status,
		StatusCode: int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0'),
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Request:    req,
	}
	h, err := parseFields(rest)
	if err != nil {
		return nil, none, err
	}
	resp.Header = h
	f, err := framing(resp, req.Method)
	return resp, f, err
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// trimOWS trims the optional whitespace (SP and HTAB) around a value.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// asciiEqualFold is strings.EqualFold for protocol tokens: ASCII letters
// only, so that "chun\u212aed" (a Kelvin sign) is not "chunked".
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseFields parses header (or trailer) field lines. Keys are
// canonicalized; values keep pointing into s, so a head costs one string.
func parseFields(s string) (http.Header, error) {
	n := strings.Count(s, "\n")
	h := make(http.Header, n)
	vals := make([]string, 0, n)
	for s != "" {
		var line string
		line, s = nextLine(s)
		if line == "" {
			return nil, errors.New("malformed header: an empty line")
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 9112 §5.2: a proxy refuses a folded line in a response
			// (or unfolds it; net/http's unfolding differs from others').
			return nil, fmt.Errorf("folded header line %q", line)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		// Checked before trimming: textproto.TrimString would also take
		// away a bare CR, which must refuse the line.
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("invalid header field value for %q", k)
		}
		v = trimOWS(v)
		k = textproto.CanonicalMIMEHeaderKey(k) // no allocation when already canonical
		if vv, ok := h[k]; ok {
			h[k] = append(vv, v)
			continue
		}
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	return h, nil
}

// framing decides how the body of resp is delimited, with net/http's
// rules: HEAD, 1xx, 204 and 304 have none; a chunked transfer coding
// (HTTP/1.1 only) wins over a Content-Length, which is then dropped;
// repeated Content-Lengths must agree; without either the body runs to the
// connection's close.
func framing(resp *http.Response, method string) (bodyFraming, error) {
	h := resp.Header
	resp.Close = shouldClose(resp.ProtoMinor, h)
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if resp.ProtoMinor == 1 {
			if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
				return bodyFraming{}, fmt.Errorf("unsupported transfer encoding %q", te)
			}
			chunked = true
		}
	}
	if chunked {
		// As net/http: the announcement is checked even where no body
		// follows.
		if err := announcedTrailers(resp); err != nil {
			return bodyFraming{}, err
		}
	}
	cl := int64(-1)
	if _, ok := h["Content-Length"]; ok && chunked {
		// Both framings (RFC 9112 §6.3): chunked wins, but the upstream
		// and some other reader of its bytes may disagree on where the
		// answer ends, so nothing after it is trusted.
		resp.Close = true
	}
	if cls, ok := h["Content-Length"]; ok {
		first := cls[0]
		for _, v := range cls[1:] {
			if v != first {
				return bodyFraming{}, fmt.Errorf("conflicting Content-Length headers %q", cls)
			}
		}
		if len(cls) > 1 {
			h["Content-Length"] = cls[:1]
		}
		n, ok := parseLength(first)
		if !ok {
			return bodyFraming{}, fmt.Errorf("bad Content-Length %q", first)
		}
		cl = n
	}
	code := resp.StatusCode
	if method == "HEAD" {
		resp.ContentLength = cl
		if chunked {
			resp.TransferEncoding = chunkedTE
		}
		return bodyFraming{}, nil
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return bodyFraming{}, nil
	}
	if chunked {
		delete(h, "Content-Length")
		resp.TransferEncoding = chunkedTE
		resp.ContentLength = -1
		return bodyFraming{kind: bodyChunked}, nil
	}
	if cl == 0 {
		return bodyFraming{}, nil
	}
	if cl > 0 {
		resp.ContentLength = cl
		return bodyFraming{kind: bodyLength, n: cl}, nil
	}
	resp.ContentLength = -1
	resp.Close = true
	return bodyFraming{kind: bodyEOF}, nil
}

func shouldClose(minor int, h http.Header) bool {
	conn := h["Connection"]
	if httpguts.HeaderValuesContainsToken(conn, "close") {
		return true
	}
	return minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
}

// parseLength parses a Content-Length: digits only, no sign, within int64.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 { // 18 digits always fit an int64
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// announcedTrailers fills resp.Trailer with the keys the Trailer field
// announces (values come at the body's end), as net/http does; the field
// itself is removed.
func announcedTrailers(resp *http.Response) error {
	vv, ok := resp.Header["Trailer"]
	if !ok {
		return nil
	}
	delete(resp.Header, "Trailer")
	t := http.Header{}
	for _, v := range vv {
		for k := range strings.SplitSeq(v, ",") {
			k = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(k))
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return fmt.Errorf("bad trailer key %q", k)
			case "":
				continue
			}
			t[k] = nil
		}
	}
	if len(t) > 0 {
		resp.Trailer = t
	}
	return nil
}

// h1Body is a response body read straight from the upstream connection.
// The connection goes back to the pool the moment the body's last byte is
// read, so that it serves the next request while this one's answer is
// still being written to its client.
type h1Body struct {
	pc   *h1Conn // nil once released
	f    bodyFraming
	resp *http.Response
	err  error // sticky
	// chunked state: n counts the current chunk's bytes left; data tells
	// that a chunk's data (and so its CRLF) is pending.
	data bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	pc := b.pc
	if pc == nil {
		return 0, errors.New("read on a closed response body")
	}
	var n int
	var err error
	switch b.f.kind {
	case bodyLength:
		n, err = b.readLength(p)
	case bodyChunked:
		n, err = b.readChunked(p)
	default:
		n, err = pc.br.Read(p)
		if err == io.EOF {
			b.end(false)
		}
	}
	if err != nil {
		if err != io.EOF {
			err = pc.failed(b.resp.Request.Context(), err)
			b.end(false)
		}
		b.err = err
	}
	return n, err
}

func (b *h1Body) readLength(p []byte) (int, error) {
	if int64(len(p)) > b.f.n {
		p = p[:b.f.n]
	}
	n, err := b.pc.br.Read(p)
	b.f.n -= int64(n)
	if b.f.n == 0 {
		b.end(!b.resp.Close)
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4 << 10

func (b *h1Body) readChunked(p []byte) (int, error) {
	br := b.pc.br
	for b.f.n == 0 {
		if b.data {
			if err := expectCRLF(br); err != nil {
				return 0, err
			}
			b.data = false
		}
		size, err := readChunkSize(br)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := b.readTrailers(); err != nil {
				return 0, err
			}
			b.end(!b.resp.Close)
			return 0, io.EOF
		}
		b.f.n, b.data = size, true
	}
	if int64(len(p)) > b.f.n {
		p = p[:b.f.n]
	}
	n, err := br.Read(p)
	b.f.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func expectCRLF(br *bufio.Reader) error {
	c1, err := br.ReadByte()
	if err != nil {
		return eofUnexpected(err)
	}
	c2, err := br.ReadByte()
	if err != nil {
		return eofUnexpected(err)
	}
	if c1 != '\r' || c2 != '\n' {
		return errors.New("malformed chunked encoding: chunk data not followed by CRLF")
	}
	return nil
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readChunkSize reads a chunk-size line: hex digits, optional extensions
// after ';' (ignored), CRLF.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkLine {
		return 0, errors.New("malformed chunked encoding: chunk line too long")
	}
	if err != nil {
		return 0, eofUnexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, errors.New("malformed chunked encoding: chunk line not ended by CRLF")
	}
	line = line[:len(line)-2]
	var size int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if i == 16 {
			return 0, errors.New("malformed chunked encoding: chunk size too large")
		}
		size = size<<4 | int64(d)
	}
	if i == 0 || size < 0 {
		return 0, fmt.Errorf("malformed chunked encoding: bad chunk size %q", line)
	}
	// RFC 9112 allows whitespace before ';'; net/http does not, and a
	// proxy must not read a chunk where the reader next to it would not.
	ext := line[i:]
	if len(ext) > 0 && ext[0] != ';' {
		return 0, fmt.Errorf("malformed chunked encoding: bad chunk size %q", line)
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, errors.New("malformed chunked encoding: control character in chunk extension")
		}
	}
	return size, nil
}

// readTrailers reads the trailer section after the last chunk into
// resp.Trailer, announced or not, as net/http does.
func (b *h1Body) readTrailers() error {
	// net/http reads a trailer section only while it fits its 4 KiB
	// buffer; so does this.
	head, err := readHead(b.pc.br, nil, maxChunkLine, true)
	if err != nil {
		return err
	}
	if len(head) == 0 {
		return nil
	}
	t, err := parseFields(string(head))
	if err != nil {
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = make(http.Header, len(t))
	}
	for k, vv := range t {
		b.resp.Trailer[k] = vv
	}
	return nil
}

// end releases the connection, once.
func (b *h1Body) end(reuse bool) {
	if pc := b.pc; pc != nil {
		b.pc = nil
		pc.release(reuse)
	}
}

// Close ends the body; a body not read to its end closes the connection,
// as net/http's does.
func (b *h1Body) Close() error {
	if b.err == nil {
		b.err = errors.New("read on a closed response body")
	}
	b.end(false)
	return nil
}
