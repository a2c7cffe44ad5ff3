package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// panicAfter passes n bytes of a body on, then panics on the next read
// (an embedding middleware's body, say).
type panicAfter struct {
	rc io.ReadCloser
	n  int
}

func (b *panicAfter) Read(p []byte) (int, error) {
	if b.n <= 0 {
		panic("test: body read panics")
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.rc.Read(p)
	b.n -= n
	return n, err
}

func (b *panicAfter) Close() error { return b.rc.Close() }

// A panic as the fallback reads a body further (after the shadow read
// part of it, charged it to shadow_memory and skipped it as too large) is
// recovered, and the charge is given back: the give is deferred before
// the fallback reads. (A first version of choose read for the fallback
// before returning the charge to defer, and such a panic kept it for
// good, a review found.) Through an embedding server whose body panics.
func TestFallbackBodyPanicGivesShadowChargeBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      max_body: 1KiB\n"+
		"    fallback: {on: [connect, reset], methods: [POST], max_body: 64KiB}\n"),
		flagJSON("orders-percent", 100), nil, nil)
	// Real HTTP in front of the proxy's handler, served as embedded.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &panicAfter{rc: r.Body, n: 2048}
		e.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(strings.Repeat("x", 8<<10)))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", front.URL+"/api/orders/1", pr) // chunked: length unknown
	req.Header.Set("X-User-Id", "u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status %d, want the recovered panic's 500", resp.StatusCode)
	}
	if v := e.waitMetric("strangler_panics_total", 1); v != 1 {
		t.Errorf("panics = %v, want 1", v)
	}
	if v := e.metric(`strangler_shadow_skipped_total{reason="too_large",route="orders"}`); v != 1 {
		t.Errorf("too_large skips = %v, want 1 (the shadow read and charged part of the body)", v)
	}
	eventually(t, 5*time.Second, "shadow_memory given back after the panic", func() bool {
		return e.srv.shadowMem.used.Load() == 0
	})
}
