package proxy

import (
	"net/http"
	"strings"
)

// The framer follows HTTP/1.1 message framing (RFC 9112) one byte at a
// time without buffering: request or status line, header lines, then the
// body by Content-Length or chunked coding, then the next message. It
// judges each head strictly: any deviation from the grammar, and every
// combination of Content-Length and Transfer-Encoding that two readers
// could frame differently, is a bad head. A bad head is then followed the
// way net/http reads it (lines end at LF) to its end, so that the refusal
// happens exactly where net/http will serve it.
type framer struct {
	response bool // reads responses (status lines); else requests
	maxHead  int
	state    fstate
	headReq  bool // response side: the request was a HEAD
	// taint: response side, an interim (1xx) answer's head was bad; the
	// final answer that follows is treated as ambiguous.
	taint   bool
	emptyAt int // in the last feed, where the head's final empty line began; -1: before it
	m       message
}

// message is what the framer knows of the message being read. It is reset
// at the first byte of each message.
type message struct {
	head, lines, idx int
	minor            byte
	status           int
	bad              reason
	ambiguous        bool // response: a head the transport may frame unlike others
	underscore       bool
	upgrade          bool
	trailer          bool
	bol              bool // lenient: at the beginning of a line
	inStatus         bool // response: in the status line
	lax              laxStatus
	teLines, clLines int
	teBad, clBad     bool
	cl               int64
	clText           [20]byte
	clTextLen        int
	method           [7]byte
	methodLen        int
	target           uint32
	targetLen        int
	name             [17]byte // lower-cased start of the header name
	nameLen          int
	field            uint8
	val              [20]byte // start of a Content-Length or Transfer-Encoding value
	valLen           int
	valLong          bool
	remain           int64 // bytes left in the body or chunk
	size             uint64
	digits, ext      int
}

type fstate uint8

// Head states come first: a state below fsBody reads a head or trailer.
const (
	fsStart fstate = iota
	fsMethod
	fsTarget
	fsVersion
	fsStartCR
	fsStatus
	fsReason
	fsStartLF
	fsLineStart
	fsName
	fsValue
	fsLineLF
	fsEndLF
	fsLenient
	fsLenientCR
	fsBody
	fsChunkSize
	fsChunkExt
	fsChunkSizeLF
	fsChunkData
	fsChunkDataCR
	fsChunkDataLF
	fsLost
)

type fevent uint8

const (
	evNone fevent = iota
	evHead        // a head ended with the byte before the returned offset
	evBad         // a chunk line or trailer broke the grammar at the returned offset
	evLost        // the framer stopped following the stream
)

// Header fields the framer reads.
const (
	fieldOther uint8 = iota
	fieldContentLength
	fieldTransferEncoding
	fieldUpgrade
)

// maxChunkExt bounds a chunk line's extensions.
const maxChunkExt = 4 << 10

func (f *framer) lose() { f.state = fsLost }

// feed reads b until it has read all of it or an event happens; it returns
// how much it read and the event.
func (f *framer) feed(b []byte) (int, fevent) {
	f.emptyAt = -1
	m := &f.m
	for i := 0; i < len(b); i++ {
		c := b[i]
		var bad reason
		switch f.state {
		case fsLost:
			return len(b), evNone
		case fsBody, fsChunkData:
			n := min(int64(len(b)-i), m.remain)
			m.remain -= n
			i += int(n) - 1
			if m.remain == 0 {
				if f.state == fsBody {
					f.state = fsStart
				} else {
					f.state = fsChunkDataCR
				}
			}
			continue
		case fsChunkSize:
			if v := unhex(c); v >= 0 {
				if m.digits == 16 {
					return i, evBad
				}
				m.size = m.size<<4 | uint64(v)
				m.digits++
				continue
			}
			switch {
			case m.digits == 0:
				return i, evBad
			case c == ';' || c == ' ' || c == '\t':
				f.state = fsChunkExt
			case c == '\r':
				f.state = fsChunkSizeLF
			default:
				return i, evBad
			}
			continue
		case fsChunkExt:
			switch {
			case chars[c]&clField != 0:
				if m.ext++; m.ext > maxChunkExt {
					return i, evBad
				}
			case c == '\r':
				f.state = fsChunkSizeLF
			default:
				return i, evBad
			}
			continue
		case fsChunkSizeLF:
			if c != '\n' || m.size > 1<<62 {
				return i, evBad
			}
			if m.size == 0 {
				m.trailer = true
				f.state = fsLineStart
			} else {
				m.remain, m.size, m.digits, m.ext = int64(m.size), 0, 0, 0
				f.state = fsChunkData
			}
			continue
		case fsChunkDataCR:
			if c != '\r' {
				return i, evBad
			}
			f.state = fsChunkDataLF
			continue
		case fsChunkDataLF:
			if c != '\n' {
				return i, evBad
			}
			f.state = fsChunkSize
			continue
		case fsStart:
			f.m = message{}
		}

		// A head (or trailer) byte.
		m.head++
		if m.inStatus {
			m.inStatus = m.lax.feed(c)
		}
		switch f.state {
		case fsStart:
			switch {
			case f.response && c == 'H':
				m.idx = 1
				f.state = fsVersion
				m.inStatus = m.lax.feed(c)
			case f.response:
				f.state = fsLost // not HTTP/1 (TLS, garbage): net/http fails it
				return i, evLost
			case chars[c]&clTchar != 0:
				m.method[0], m.methodLen = c, 1
				f.state = fsMethod
			default:
				bad = reasonStartLine
			}
		case fsMethod:
			switch {
			case chars[c]&clTchar != 0:
				if m.methodLen < len(m.method) {
					m.method[m.methodLen] = c
				}
				m.methodLen++
			case c == ' ':
				m.target = fnvOffset32
				f.state = fsTarget
			default:
				bad = reasonStartLine
			}
		case fsTarget:
			if chars[c]&clTarget != 0 {
				j := i
				h := m.target
				for ; j < len(b) && chars[b[j]]&clTarget != 0; j++ {
					h = (h ^ uint32(b[j])) * fnvPrime32
				}
				m.target = h
				m.targetLen += j - i
				m.head += j - i - 1
				i = j - 1
				continue
			}
			if c == ' ' && m.targetLen > 0 {
				m.idx = 0
				f.state = fsVersion
				continue
			}
			bad = reasonStartLine
		case fsVersion:
			const version = "HTTP/1."
			switch {
			case m.idx < len(version):
				if c != version[m.idx] {
					bad = reasonStartLine
				}
				m.idx++
			case c == '0' || c == '1':
				m.minor = c - '0'
				m.idx = 0
				if f.response {
					f.state = fsStatus
				} else {
					f.state = fsStartCR
				}
			default:
				bad = reasonStartLine
			}
		case fsStartCR:
			if c != '\r' {
				bad = reasonStartLine
				if c == '\n' {
					bad = reasonLineEnd
				}
				break
			}
			f.state = fsStartLF
		case fsStatus: // SP 3DIGIT, then SP reason or the end of the line
			switch {
			case m.idx == 1 && c == ' ':
				// More spaces before the code: net/http and the direct
				// path's reader skip them too.
			case m.idx == 0 && c == ' ', m.idx > 0 && m.idx < 4 && c >= '0' && c <= '9':
				if m.idx > 0 {
					m.status = m.status*10 + int(c-'0')
				}
				m.idx++
			case m.idx == 4 && c == ' ':
				f.state = fsReason
			case m.idx == 4 && c == '\r':
				f.state = fsStartLF
			case m.idx == 4 && c == '\n':
				bad = reasonLineEnd
			default:
				bad = reasonStartLine
			}
		case fsReason:
			switch {
			case chars[c]&clField != 0:
			case c == '\r':
				f.state = fsStartLF
			case c == '\n':
				bad = reasonLineEnd
			default:
				bad = reasonHeaderValue
			}
		case fsStartLF:
			if c != '\n' {
				bad = reasonLineEnd
				break
			}
			f.state = fsLineStart
		case fsLineStart:
			switch {
			case c == '\r':
				f.emptyAt = i
				f.state = fsEndLF
			case chars[c]&clTchar != 0:
				if !m.trailer {
					m.lines++
				}
				m.nameLen, m.field, m.valLen, m.valLong = 0, fieldOther, 0, false
				f.name(c)
				f.state = fsName
			case c == ' ' || c == '\t':
				bad = reasonFolding
			case c == '\n':
				bad = reasonLineEnd
			default:
				bad = reasonHeaderName
			}
		case fsName:
			switch {
			case chars[c]&clTchar != 0:
				f.name(c)
			case c == ':':
				if !m.trailer {
					m.field = fieldOf(m.name[:min(m.nameLen, len(m.name))], m.nameLen)
					if m.field == fieldUpgrade {
						m.upgrade = true
					}
				}
				f.state = fsValue
			default:
				bad = reasonHeaderName
			}
		case fsValue:
			if chars[c]&clField != 0 {
				j := i
				for j < len(b) && chars[b[j]]&clField != 0 {
					j++
				}
				if m.field == fieldContentLength || m.field == fieldTransferEncoding {
					m.capture(b[i:j])
				}
				m.head += j - i - 1
				i = j - 1
				continue
			}
			switch c {
			case '\r':
				f.state = fsLineLF
			case '\n':
				bad = reasonLineEnd
			default:
				bad = reasonHeaderValue
			}
		case fsLineLF:
			if c != '\n' {
				bad = reasonLineEnd
				break
			}
			m.endField()
			f.state = fsLineStart
		case fsEndLF:
			if c != '\n' {
				bad = reasonLineEnd
				break
			}
			if m.trailer {
				f.state = fsStart
				continue
			}
			return i + 1, f.endHead()
		case fsLenient, fsLenientCR:
			if f.lenient(c, i) {
				return i + 1, f.endHead()
			}
		}
		if bad == reasonOK {
			continue
		}
		// The head broke the grammar at c.
		if m.trailer {
			return i, evBad
		}
		// A response's bad status line is followed too: net/http takes
		// some the grammar does not (HTTP/1.2, HTTP/2.0, a code of +12),
		// and would keep the connection after one the guard gave up on.
		// Those it refuses end the connection whatever the guard adds.
		if m.bad == reasonOK {
			m.bad = bad
		}
		m.bol = f.state == fsStart || f.state == fsLineStart
		f.state = fsLenient
		if f.lenient(c, i) {
			return i + 1, f.endHead()
		}
	}
	if f.state < fsBody && m.head > f.maxHead {
		if m.trailer {
			return len(b), evBad // after the head: as a broken chunk line
		}
		f.state = fsLost
		return len(b), evLost
	}
	return len(b), evNone
}

// lenient follows a bad head as net/http reads it: lines end at LF (a CR
// before it is dropped), and an empty line ends the head. It reports the
// end of the head.
func (f *framer) lenient(c byte, i int) bool {
	m := &f.m
	switch {
	case f.state == fsLenientCR:
		if c == '\n' {
			return true
		}
		f.state, m.bol = fsLenient, false
	case c == '\n':
		if m.bol {
			f.emptyAt = i
			return true
		}
		m.bol = true
	case c == '\r' && m.bol:
		f.emptyAt = i
		f.state = fsLenientCR
	default:
		m.bol = false
	}
	return false
}

func (f *framer) name(c byte) {
	m := &f.m
	if c == '_' {
		m.underscore = true
	}
	if m.nameLen < len(m.name) {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		m.name[m.nameLen] = c
	}
	m.nameLen++
}

func fieldOf(name []byte, n int) uint8 {
	switch {
	case n == len("content-length") && string(name) == "content-length":
		return fieldContentLength
	case n == len("transfer-encoding") && string(name) == "transfer-encoding":
		return fieldTransferEncoding
	case n == len("upgrade") && string(name) == "upgrade":
		return fieldUpgrade
	}
	return fieldOther
}

// capture keeps the start of a Content-Length or Transfer-Encoding value,
// without its leading whitespace.
func (m *message) capture(v []byte) {
	for _, c := range v {
		if m.valLen == 0 && (c == ' ' || c == '\t') {
			continue
		}
		if m.valLen == len(m.val) {
			m.valLong = true
			return
		}
		m.val[m.valLen] = c
		m.valLen++
	}
}

// endField judges a Content-Length or Transfer-Encoding line.
func (m *message) endField() {
	val := m.val[:m.valLen]
	for len(val) > 0 && (val[len(val)-1] == ' ' || val[len(val)-1] == '\t') {
		val = val[:len(val)-1]
	}
	switch m.field {
	case fieldContentLength:
		m.clLines++
		if m.valLong || len(val) == 0 || len(val) > 18 {
			m.clBad = true
			return
		}
		var n int64
		for _, c := range val {
			if c < '0' || c > '9' {
				m.clBad = true
				return
			}
			n = n*10 + int64(c-'0')
		}
		if m.clLines == 1 {
			m.cl, m.clTextLen = n, copy(m.clText[:], val)
		} else if string(m.clText[:m.clTextLen]) != string(val) {
			m.clBad = true // net/http too refuses differing values, but compares them as text
		}
	case fieldTransferEncoding:
		m.teLines++
		if m.valLong || !asciiEqualFold(string(val), "chunked") {
			m.teBad = true
		}
	}
}

// endHead judges a head that has just ended and sets up its body.
func (f *framer) endHead() fevent {
	m := &f.m
	if m.head > f.maxHead {
		f.state = fsLost
		return evLost
	}
	te := m.teLines > 0
	if f.response {
		// The status is what net/http reads, which a bad head may still
		// have: whether more answers follow on the connection is its call.
		status, ok := m.lax.result()
		if !ok {
			f.state = fsLost // net/http refuses the answer and closes
			return evHead
		}
		m.status = status
		// A status under 100 (a code of 012) is a final answer to net/http
		// and no answer at all to the direct path's reader.
		ambiguous := m.bad != reasonOK || m.clBad || m.status < 100 ||
			te && (m.teLines > 1 || m.teBad || m.minor == 0 || m.clLines > 0)
		if m.status >= 100 && m.status < 200 && m.status != http.StatusSwitchingProtocols {
			// net/http reads on to the final answer, whatever this one
			// says of its connection: that one must carry the close.
			f.taint = f.taint || ambiguous
			f.state = fsStart
			return evHead
		}
		m.ambiguous = ambiguous || f.taint
		f.taint = false
		switch {
		case m.ambiguous, m.status == http.StatusSwitchingProtocols:
			f.state = fsLost
		case f.headReq || m.status == http.StatusNoContent || m.status == http.StatusNotModified:
			f.state = fsStart
		case te:
			f.state = fsChunkSize
		case m.clLines > 0 && m.cl > 0:
			f.state, m.remain = fsBody, m.cl
		case m.clLines > 0:
			f.state = fsStart
		default: // read until the upstream closes: the connection is not reused
			f.state = fsLost
		}
		return evHead
	}
	if m.bad == reasonOK {
		switch {
		case te && (m.teLines > 1 || m.teBad):
			m.bad = reasonTransferEncoding
		case te && m.minor == 0:
			m.bad = reasonTEInHTTP10 // net/http ignores it: the body would be the next request
		case te && m.clLines > 0:
			m.bad = reasonCLAndTE // net/http deletes the Content-Length
		case m.clBad:
			m.bad = reasonContentLength
		}
	}
	switch {
	case m.bad != reasonOK:
		f.state = fsLost // cut (or, after an upgrade, no longer followed)
	case te:
		f.state = fsChunkSize
	case m.cl > 0:
		f.state, m.remain = fsBody, m.cl
	default:
		f.state = fsStart
	}
	return evHead
}

func (m *message) verdict() verdict {
	return verdict{reason: m.bad, underscore: m.underscore, headBytes: m.head, lines: m.lines,
		target: m.target, targetLen: m.targetLen}
}

// Character classes of the head grammar.
const (
	clTchar  = 1 << iota // token character (RFC 9110 section 5.6.2)
	clField              // field-value octet: VCHAR, obs-text, SP, HTAB
	clTarget             // request-target octet: VCHAR and obs-text
)

var chars = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 0x80 || c > ' ' && c < 0x7f:
			t[c] = clField | clTarget
		case c == ' ' || c == '\t':
			t[c] = clField
		}
		if c < 0x80 && (c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0) {
			t[c] |= clTchar
		}
	}
	return t
}()

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

// fnv32 is FNV-1a of s, as the framer hashes a request-target.
func fnv32(s string) uint32 {
	h := uint32(fnvOffset32)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime32
	}
	return h
}

// laxStatus reads a status line as net/http's ReadResponse does, which is
// more lenient than the grammar: a proto of "HTTP/" and any digit, point
// and digit; one or more spaces; a code of three bytes that strconv.Atoi
// reads as 0 or more ("+12", "012"); then a space or the end of the line
// (at LF, a CR before it dropped).
type laxStatus struct {
	n       uint8 // bytes of the proto read
	stage   uint8 // laxProto, laxSpaces, laxCode, laxRest, laxRefused
	code    [4]byte
	codeLen uint8
	cr      bool // a CR in the code, which is dropped if LF follows
	done    bool // the line ended
}

const (
	laxProto = iota
	laxSpaces
	laxCode
	laxRest
	laxRefused
)

// feed reads one byte of the status line and reports whether the line
// goes on.
func (l *laxStatus) feed(c byte) bool {
	if c == '\n' {
		l.cr = false
		l.done = true
		return false
	}
	switch l.stage {
	case laxProto:
		const proto = "HTTP/0.0 "
		switch {
		case l.n == 5 || l.n == 7:
			if !isDigit(c) {
				l.stage = laxRefused
			}
		case c != proto[l.n]:
			l.stage = laxRefused
		}
		if l.n++; int(l.n) == len(proto) && l.stage == laxProto {
			l.stage = laxSpaces
		}
	case laxSpaces:
		if c == ' ' {
			break
		}
		l.stage = laxCode
		fallthrough
	case laxCode:
		if l.cr {
			l.cr = false
			l.add('\r')
		}
		switch c {
		case ' ':
			l.stage = laxRest
		case '\r':
			l.cr = true
		default:
			l.add(c)
		}
	}
	return true
}

func (l *laxStatus) add(c byte) {
	if l.codeLen < uint8(len(l.code)) {
		l.code[l.codeLen] = c
		l.codeLen++
	}
}

// result is the status net/http reads, and whether it reads one.
func (l *laxStatus) result() (int, bool) {
	if !l.done || (l.stage != laxCode && l.stage != laxRest) || l.codeLen != 3 {
		return 0, false
	}
	code, neg := l.code[:3], l.code[0] == '-'
	if code[0] == '+' || neg {
		code = code[1:]
	}
	v := 0
	for _, c := range code {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, !neg || v == 0 // net/http refuses a negative code, not "-00"
}
