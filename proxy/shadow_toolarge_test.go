package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// bigJSON is a JSON document of about n bytes that gzip shrinks ~20x.
func bigJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item number %d","price":%d.5,"tags":["a","b","c"]}`, i, i, i%1000)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func gzipLevel(b []byte, level int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, level)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Two identical 9 MiB JSON answers, gzipped at different levels (nginx
// gzip_comp_level 1 against a Go service's default), each under max_body
// compressed, decode past max_decoded (8 MiB): they cannot be compared,
// and are counted as too_large, as bodies over max_body are. They counted
// as a mismatch, on every request, and noise learning could not clear it.
func TestDecodedPastLimitIsSkippedAsTooLarge(t *testing.T) {
	t.Parallel()
	doc := bigJSON(9 << 20)
	g1, g9 := gzipLevel(doc, 1), gzipLevel(doc, 9)
	if len(g1) >= 1<<20 || len(g9) >= 1<<20 {
		t.Fatalf("compressed sizes %d, %d: test needs them under max_body", len(g1), len(g9))
	}
	mono := answer(200, string(g1), "Content-Encoding", "gzip")
	svc := answer(200, string(g9), "Content-Encoding", "gzip")
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), mono, svc)
	if resp, _ := e.get("/api/orders/7", "X-User-Id", "u1", "Accept-Encoding", "gzip"); resp.StatusCode != 200 {
		t.Fatalf("client got %d", resp.StatusCode)
	}
	var tooLarge float64
	deadline := time.Now().Add(5 * time.Second)
	for tooLarge == 0 && e.comparisons(0)["mismatch"] == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		tooLarge = e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`)
	}
	got := e.comparisons(0)
	if tooLarge != 1 {
		t.Errorf("too_large skips %v, want 1 (comparisons %v)", tooLarge, got)
	}
	if got["mismatch"] != 0 {
		note := ""
		if s := e.diffs("?route=orders"); len(s) > 0 && len(s[0].Differences) > 0 {
			note = s[0].Differences[0].Note
		}
		t.Errorf("identical %d-byte JSON answers (gzip %d vs %d bytes, both under max_body) counted as a mismatch "+
			"(comparisons %v, too_large skips %v); note %q: an answer too large to decode should be skipped as too_large, not inflate the mismatch rate",
			len(doc), len(g1), len(g9), got, tooLarge, note)
	}
}

// The shadow side announces 20 bytes, sends a complete JSON document
// equal to the primary's, and closes: a cut answer is not a match.
func TestShadowShortBodyIsNotAMatch(t *testing.T) {
	t.Parallel()
	short := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"a\":1}")
		bw.Flush()
		conn.Close()
	})
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), answer(200, `{"a":1}`), short)
	for i := range 5 {
		e.get("/api/orders/1", "X-User-Id", fmt.Sprint("u", i))
	}
	got := e.comparisons(5)
	if got["match"] != 0 {
		t.Errorf("a shadow answer cut short of its Content-Length was counted as a match: %v", got)
	}
}
