package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A comparison dropped because the shadow queue is full leaves the
// request's body in memory, read ahead, until the request ends:
// shadow_memory keeps counting it until then. The drop gave the charge
// back at once, so under overload every sampled upload in flight held up
// to max_body uncounted.
func TestDroppedCopyKeepsItsBodyCharged(t *testing.T) {
	t.Parallel()
	const bodySize = 900 << 10
	var started, holding atomic.Int32
	release, holdMono := make(chan struct{}), make(chan struct{})
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/hold") {
			holding.Add(1)
			select { // not reading yet: the proxy holds the upload
			case <-holdMono:
			case <-r.Context().Done():
			}
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{}`)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      timeout: 10s\n      max_body: 1MiB\n",
		"shadow_workers: 1", "shadow_queue: 1", "shadow_memory: 8MiB"),
		flagJSON("orders-percent", 0), mono, hangUntil(&started, release))
	t.Cleanup(func() { close(release); close(holdMono) })
	post(e, "/api/orders/1", `{}`) // its copy holds the only worker
	eventually(t, 5*time.Second, "first copy in the worker", func() bool { return started.Load() == 1 })
	post(e, "/api/orders/2", `{}`) // its copy fills the queue
	eventually(t, 5*time.Second, "second copy queued", func() bool { return len(e.srv.pool.jobs) == 1 })
	base := e.srv.shadowMem.used.Load()

	done := make(chan struct{}, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/hold", strings.NewReader(strings.Repeat("x", bodySize)))
		req.Header.Set("X-User-Id", "uploader")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		done <- struct{}{}
	}()
	eventually(t, 5*time.Second, "upload held by the monolith", func() bool { return holding.Load() == 1 })
	if v := e.metric(`strangler_shadow_skipped_total{reason="overload",route="orders"}`); v != 1 {
		t.Errorf("overload skips = %v, want 1 (the upload's comparison dropped)", v)
	}
	if held := e.srv.shadowMem.used.Load() - base; held < bodySize {
		t.Errorf("shadow_memory counts %d bytes of a %d-byte upload held read ahead by its primary call", held, bodySize)
	}
	holdMono <- struct{}{}
	<-done
	eventually(t, 5*time.Second, "the upload's charge given back once its call ended", func() bool {
		return e.srv.shadowMem.used.Load() == base
	})
}

// With the service ejected no copy is sent, so a sampled upload is not
// read ahead for one: it streams to the monolith as it comes. It was read
// whole (up to max_body) first, held the monolith back from a client that
// streams, and the read-ahead was given back uncounted while the primary
// call still held it.
func TestEjectedServiceUploadIsNotReadAhead(t *testing.T) {
	t.Parallel()
	arrived := make(chan string, 1)
	mono := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		io.ReadFull(r.Body, first)
		arrived <- string(first)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{}`)
	})
	e := newEnv(t, shadowConfig("      percent: 100\n      methods: [POST]\n      max_body: 1MiB\n"),
		flagJSON("orders-percent", 0), mono, answer(200, `{}`))
	e.srv.table.Load().routes[0].eject.until.Store(monoNanos(time.Now().Add(time.Minute)))

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.proxyURL+"/api/orders/stream", pr)
		req.ContentLength = 1 << 10
		req.Header.Set("X-User-Id", "streamer")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	pw.Write([]byte("first"))
	select {
	case got := <-arrived:
		if got != "first" {
			t.Errorf("monolith read %q, want the upload's first bytes", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the monolith got nothing of an upload whose rest has not come: it was read ahead for a copy never sent")
	}
	pw.Write([]byte(strings.Repeat("x", 1<<10-5)))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := e.metric(`strangler_shadow_skipped_total{reason="ejected",route="orders"}`); v != 1 {
		t.Errorf("ejected skips = %v, want 1", v)
	}
	if used := e.srv.shadowMem.used.Load(); used != 0 {
		t.Errorf("shadow_memory holds %d bytes after the call", used)
	}
}
