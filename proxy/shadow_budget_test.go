package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUncomparableAnswerGivesBackShadowMemory: an answer that will not be
// compared (past max_body, announced or come, or without room in
// shadow_memory) lets go of what it held at once, not when its transfer
// ends: slow downloads on a compared route must not turn every other
// comparison into overload for their whole length.
func TestUncomparableAnswerGivesBackShadowMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		size      int  // the download's length
		announced bool // with a Content-Length
		maxHeld   int64
	}{
		{"Content-Length past max_body", 3 << 20, true, 64 << 10},
		{"chunked past max_body", 3 << 20, false, 64 << 10},
		// Under max_body, but three do not fit in shadow_memory: one is
		// held, the others let go.
		{"no room in shadow_memory", 900 << 10, true, 900<<10 + 64<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			big := strings.Repeat("x", tt.size)
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free)
			var stalled sync.WaitGroup
			const downloads = 3
			stalled.Add(downloads)
			handler := func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/orders/big" {
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"small":true}`)
					return
				}
				w.Header().Set("Content-Type", "application/octet-stream")
				if tt.announced {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				half := len(big) * 2 / 3
				w.Write([]byte(big[:half]))
				http.NewResponseController(w).Flush()
				if r.Header.Get(shadowHeader) == "" { // the client's: a slow download
					stalled.Done()
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
				}
				w.Write([]byte(big[half:]))
			}
			e := newEnv(t, shadowConfig("      percent: 100\n      timeout: 20s\n      max_body: 1MiB\n", "shadow_memory: 1536KiB"),
				flagJSON("orders-percent", 0), http.HandlerFunc(handler), http.HandlerFunc(handler))
			var wg sync.WaitGroup
			for i := range downloads {
				wg.Go(func() {
					req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/big", nil)
					req.Header.Set("X-User-Id", fmt.Sprint("dl", i))
					if resp, err := http.DefaultClient.Do(req); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			stalled.Wait()
			eventually(t, 10*time.Second, fmt.Sprintf("shadow_memory held by stalled downloads at most %d KiB", tt.maxHeld>>10), func() bool {
				return e.srv.shadowMem.used.Load() <= tt.maxHeld
			})
			for i := range 5 {
				if resp, body := e.get("/api/orders/small", "X-User-Id", fmt.Sprint("s", i)); resp.StatusCode != 200 {
					t.Fatalf("small: %d %q", resp.StatusCode, body)
				}
			}
			if got := e.comparisons(5); got["match"] != 5 {
				t.Errorf("5 small identical answers while the downloads stall: %v, want 5 matches", got)
			}
			free()
			wg.Wait()
			e.settled()
		})
	}
}

// TestAnswerHeadersAreChargedToShadowMemory: a head may be 512 KiB, and a
// copy answered first waits with it for its primary; heads are held within
// shadow_memory like bodies, and without room the pair is not compared.
func TestAnswerHeadersAreChargedToShadowMemory(t *testing.T) {
	t.Parallel()
	blob := strings.Repeat("b", 100<<10)
	h := answer(200, `{"ok":1}`, "X-Blob", blob)
	e := newEnv(t, shadowConfig("      percent: 100\n", "shadow_memory: 64KiB"), flagJSON("orders-percent", 0), h, h)
	if resp, _ := e.get("/api/orders/1", "X-User-Id", "u"); resp.StatusCode != 200 || resp.Header.Get("X-Blob") != blob {
		t.Fatalf("client got %d, X-Blob of %d bytes", resp.StatusCode, len(resp.Header.Get("X-Blob")))
	}
	got := e.accounted(1)
	if got["overload"] != 1 || len(got) != 1 {
		t.Errorf("heads of 100 KiB with shadow_memory 64KiB: %v, want one overload", got)
	}
	e.settled()
}
