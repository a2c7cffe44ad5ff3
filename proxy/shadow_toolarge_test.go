package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"sync"
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

// Two identical 9 MiB JSON answers, gzipped at different levels (as two
// servers configured differently would send them), each under max_body
// compressed, decode past max_decoded (8 MiB): they cannot be compared,
// and are counted as too_large, as bodies over max_body are. They counted
// as a mismatch, on every request, and noise learning could not clear it.
func TestDecodedPastLimitIsSkippedAsTooLarge(t *testing.T) {
	t.Parallel()
	doc := bigJSON(9 << 20)
	g1, g2 := gzipLevel(doc, 1), gzipLevel(doc, 2)
	if len(g1) >= 1<<20 || len(g2) >= 1<<20 {
		t.Fatalf("compressed sizes %d, %d: test needs them under max_body", len(g1), len(g2))
	}
	mono := answer(200, string(g1), "Content-Encoding", "gzip")
	svc := answer(200, string(g2), "Content-Encoding", "gzip")
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
			len(doc), len(g1), len(g2), got, tooLarge, note)
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

// Comparisons that decode compressed answers take turns once their
// scratch buffers could outgrow shadow_memory: with 1 MiB of it, one at a
// time. Every pair is still compared, and an answer sent plain is not held
// back by the turn.
func TestDecodingComparisonsTakeTurns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		memory int64
		want   int
	}{{1 << 20, 1}, {64 << 20, 2}, {256 << 20, 8}} {
		if got := cap(newShadowPool(nil, 0, 1, tc.memory).decoding); got != tc.want {
			t.Errorf("shadow_memory %d: %d decoding at once, want %d", tc.memory, got, tc.want)
		}
	}
	doc := bigJSON(64 << 10)
	g1, g9 := gzipLevel(doc, 1), gzipLevel(doc, 9)
	e := newEnv(t, shadowConfig("      percent: 100\n", "shadow_memory: 1MiB", "shadow_workers: 8"), flagJSON("orders-percent", 0),
		answer(200, string(g1), "Content-Encoding", "gzip"), answer(200, string(g9), "Content-Encoding", "gzip"))
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if resp, _ := e.get("/api/orders/7", "X-User-Id", fmt.Sprint("u", i), "Accept-Encoding", "gzip"); resp.StatusCode != 200 {
				t.Errorf("client got %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.comparisons(0)
		skipped := e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`)
		if got["match"]+max(skipped, 0) == n {
			if got["mismatch"]+got["error"] != 0 {
				t.Errorf("comparisons %v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: comparisons %v, overload skips %v, want %d in all", got, skipped, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An answer past max_body is too_large, not a comparison error, even when
// it goes on past the copy's timeout (a large export); and the copy stops
// reading at max_body instead of downloading the rest from the other side.
func TestShadowAnswerPastMaxBodyStopsTheCopy(t *testing.T) {
	t.Parallel()
	for _, timeout := range []string{"1s", "10s"} {
		t.Run(timeout, func(t *testing.T) {
			t.Parallel()
			copyCut := make(chan bool, 1)
			big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				chunk := bytes.Repeat([]byte("x"), 64<<10)
				for range 32 { // 2 MiB, past max_body (1 MiB)
					if _, err := w.Write(chunk); err != nil {
						break
					}
				}
				w.(http.Flusher).Flush()
				if r.Header.Get(shadowHeader) != "" {
					// The rest comes later (after a timeout of 1s), if
					// the copy is still reading.
					select {
					case <-r.Context().Done():
						copyCut <- true
						return
					case <-time.After(1500 * time.Millisecond):
						copyCut <- false
					}
				}
				w.Write(chunk)
			})
			e := newEnv(t, shadowConfig("      percent: 100\n      timeout: "+timeout+"\n"), flagJSON("orders-percent", 0), big, big)
			resp, body := e.get("/api/orders/7", "X-User-Id", "u1")
			if resp.StatusCode != 200 || len(body) != 33<<16 {
				t.Fatalf("client got %d, %d bytes; want 200 and the whole answer", resp.StatusCode, len(body))
			}
			if !<-copyCut {
				t.Error("the copy went on reading past max_body")
			}
			var tooLarge float64
			eventually(t, 5*time.Second, "the sampled request counted", func() bool {
				tooLarge = e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`)
				return tooLarge+e.comparisons(0)["error"] >= 1
			})
			if got := e.comparisons(0); tooLarge != 1 || got["error"] != 0 {
				t.Errorf("too_large %v, comparisons %v; want too_large 1 and no error", tooLarge, got)
			}
		})
	}
}

// A copy that fails (the other side down, or cutting its answer) is a
// comparison error even when the primary's answer is past max_body: a
// dead service on a route of large answers showed only as too_large.
func TestShadowFailureIsToldPastMaxBody(t *testing.T) {
	t.Parallel()
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 2<<20)) // past max_body (1 MiB)
	})
	dead := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), big, dead)
	if resp, body := e.get("/api/orders/7", "X-User-Id", "u1"); resp.StatusCode != 200 || len(body) != 2<<20 {
		t.Fatalf("client got %d, %d bytes; want the monolith's whole answer", resp.StatusCode, len(body))
	}
	got := e.comparisons(1)
	if tooLarge := e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`); got["error"] != 1 || tooLarge != 0 {
		t.Errorf("comparisons %v, too_large %v; want one error", got, tooLarge)
	}
}
