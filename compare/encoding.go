package compare

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

// bodyScratch holds the per-comparison buffers of body decoding.
type bodyScratch struct {
	codings [2][]string // each side's content codings, in the order applied
	decoded [2][]byte   // each side's decoded body, when it was encoded
	layer   [2][]byte   // each side's intermediate result of stacked encodings (per side: a failed side's partial output must outlive the other's decoding)
	src     bytes.Reader
}

func (b *bodyScratch) reset(retainBytes int) {
	for i := range b.decoded {
		b.codings[i] = b.codings[i][:0]
		b.decoded[i] = keep(b.decoded[i], 1, retainBytes)
		b.layer[i] = keep(b.layer[i], 1, retainBytes)
	}
	b.src.Reset(nil)
}

// tooLargeError reports a body that decodes to more than the limit: the
// comparator stops inflating there, so a zip bomb costs at most the limit.
type tooLargeError struct {
	limit int64
	// final: the last coding's output went past the limit (not an inner
	// one's), so what was decoded is the start of the body itself.
	final bool
}

func (e tooLargeError) Error() string {
	return fmt.Sprintf("decoded body exceeds max_decoded (%d bytes)", e.limit)
}

// Encoded reports whether comparing r may decode its body: it has one,
// under a content coding other than identity.
func (r *Response) Encoded() bool {
	return len(r.Body) > 0 && len(appendCodings(nil, r.Header)) > 0
}

// appendCodings appends the content codings named by h in the order they
// were applied, without "identity", normalising case and the x-gzip alias.
func appendCodings(dst []string, h http.Header) []string {
	for _, v := range h["Content-Encoding"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			switch {
			case tok == "" || strings.EqualFold(tok, "identity"):
			case strings.EqualFold(tok, "gzip") || strings.EqualFold(tok, "x-gzip"):
				dst = append(dst, "gzip")
			case strings.EqualFold(tok, "deflate"):
				dst = append(dst, "deflate")
			case strings.EqualFold(tok, "br"):
				dst = append(dst, "br")
			default:
				dst = append(dst, tok)
			}
		}
	}
	return dst
}

// decode returns s's body with its content codings removed, undoing the
// last one applied first. A body without codings is returned as is; a
// decoded one lives in scratch buffers until the comparison ends. On error
// it returns the output decoded so far.
func (c *comparison) decode(body []byte, s side) ([]byte, error) {
	codings := c.body.codings[s]
	if len(codings) == 0 || len(body) == 0 {
		// No body (HEAD, 204, 304) has nothing to decode, whatever
		// coding its header names.
		return body, nil
	}
	limit := c.rules.maxDecoded
	cur := body
	for i := len(codings) - 1; i >= 0; i-- {
		// Alternate two buffers so that the input of one step is never
		// its output, and the last step lands in decoded[s].
		dst := &c.body.decoded[s]
		if i%2 == 1 {
			dst = &c.body.layer[s]
		}
		out, err := c.decodeOne((*dst)[:0], cur, codings[i], limit)
		*dst = out
		if tl, ok := err.(tooLargeError); ok && i == 0 {
			tl.final = true
			err = tl
		}
		if err != nil {
			return out, err // what was decoded so far, for the excerpt
		}
		cur = out
	}
	return cur, nil
}

func (c *comparison) decodeOne(dst, src []byte, coding string, limit int64) ([]byte, error) {
	var (
		out []byte
		err error
	)
	c.body.src.Reset(src)
	switch coding {
	case "gzip":
		zr := gzipReaders.Get().(*gzip.Reader)
		if err = zr.Reset(&c.body.src); err == nil {
			out, err = readAllLimited(dst, zr, len(src), limit)
		}
		gzipReaders.Put(zr)
	case "deflate":
		out, err = inflate(dst, &c.body.src, src, limit)
	case "br":
		// Not pooled: a brotli reader keeps a ring buffer of up to the
		// stream's window size (16 MiB), which must not outlive the call.
		out, err = readAllLimited(dst, brotli.NewReader(&c.body.src), len(src), limit)
	default:
		return dst, fmt.Errorf("unsupported content-encoding %q", coding)
	}
	if err != nil {
		var tooLarge tooLargeError
		if errors.As(err, &tooLarge) {
			return out, err
		}
		return out, fmt.Errorf("content-encoding %s: %w", coding, err)
	}
	return out, nil
}

// gzipReaders pools gzip readers, whose inflate state is the largest
// allocation of a decode. A package-level pool holds no state a caller can
// observe, like the pools of fmt and encoding/json.
var gzipReaders = sync.Pool{New: func() any { return new(gzip.Reader) }}

// inflate decodes "deflate", which RFC 9110 defines as zlib but which some
// servers send as raw DEFLATE: a body that does not start with a zlib
// header, or fails as zlib, is retried as raw DEFLATE.
func inflate(dst []byte, r *bytes.Reader, src []byte, limit int64) ([]byte, error) {
	if hasZlibHeader(src) {
		zr, err := zlib.NewReader(r)
		if err == nil {
			out, zerr := readAllLimited(dst, zr, len(src), limit)
			if zerr == nil {
				return out, nil
			}
			var tooLarge tooLargeError
			if errors.As(zerr, &tooLarge) {
				return out, zerr
			}
			dst = out
		}
		r.Reset(src)
	}
	fr := flate.NewReader(r)
	defer fr.Close()
	return readAllLimited(dst, fr, len(src), limit)
}

// hasZlibHeader checks the two-byte zlib header of RFC 1950: method 8,
// window at most 32 KiB, check bits making the pair a multiple of 31.
func hasZlibHeader(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// readAllLimited reads r to EOF into dst[:0], growing dst as needed, and
// fails with tooLargeError once more than limit bytes have come out.
// Capacity starts at a typical compression ratio times sizeHint, doubles,
// and never exceeds limit+1, so a bomb costs about twice the limit.
func readAllLimited(dst []byte, r io.Reader, sizeHint int, limit int64) ([]byte, error) {
	dst = dst[:0]
	if want := min(int64(max(4*sizeHint, 512)), limit+1); int64(cap(dst)) < want {
		dst = make([]byte, 0, want)
	}
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, int(min(int64(2*cap(dst)), limit+1))-len(dst))
		}
		room := min(int64(cap(dst)-len(dst)), limit+1-int64(len(dst)))
		n, err := r.Read(dst[len(dst) : len(dst)+int(room)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, tooLargeError{limit: limit}
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
