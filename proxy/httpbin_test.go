package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// TestHTTPBinShadowIsClean puts two go-httpbin servers, a third party's
// idea of an HTTP service, behind a route that splits and shadows every
// request: the same program on both sides must compare equal on every
// endpoint, noisy ones (/uuid), those that echo the request (whose copy
// alone carries X-Strangler-Shadow) and a stream of JSON lines (/stream)
// included, while a real
// difference on the service's side is still found on every request.
func TestHTTPBinShadowIsClean(t *testing.T) {
	t.Parallel()
	cfg := binConfig("{percent: 100, noise: true, methods: [GET, HEAD, POST]}")
	// The service has one bug: /json's title.
	bin := httpbin.New()
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/json" {
			bin.ServeHTTP(w, r)
			return
		}
		rec := &bufferedWriter{header: http.Header{}}
		bin.ServeHTTP(rec, r)
		body := bytes.Replace(rec.body.Bytes(), []byte("Sample Slide Show"), []byte("Sample Slideshow"), 1)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.code)
		w.Write(body)
	})
	e := newEnv(t, cfg, flagJSON("bin-percent", 50), httpbin.New(), service)

	type call struct{ method, path, body string }
	var calls []call
	for _, p := range []string{
		"/get", "/headers", "/anything/x?y=1", "/uuid", "/json", "/html", "/xml", "/gzip", "/deflate",
		"/status/418", "/response-headers?X-Foo=bar", "/cookies", "/cookies/set?a=b", "/cache", "/etag/abc",
		"/bytes/256?seed=1", "/range/256", "/base64/aGVsbG8=", "/ip", "/user-agent", "/robots.txt", "/deny",
		"/encoding/utf8", "/image/png", "/links/3/1", "/redirect/2", "/basic-auth/u/p", "/bearer", "/delay/0",
		"/sse?count=2&duration=0&delay=0", "/stream/5", "/stream-bytes/100?seed=3", "/trailers?a=b", "/unstable?failure_rate=0",
	} {
		calls = append(calls, call{"GET", p, ""})
	}
	calls = append(calls, call{"HEAD", "/get", ""}, call{"POST", "/post", `{"order":7}`}, call{"POST", "/anything", "plain text"})

	const users = 6
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			for _, c := range calls {
				req, err := http.NewRequest(c.method, e.proxyURL+c.path, strings.NewReader(c.body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("X-User-Id", fmt.Sprintf("user-%d", u))
				resp, err := http.DefaultTransport.RoundTrip(req) // redirects are the client's
				if err != nil {
					t.Errorf("%s %s: %v", c.method, c.path, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	total := users * len(calls)
	got := e.comparisonsOf("bin", total)
	samples := e.diffs("?route=bin&limit=100")
	var wrong []string
	for _, s := range samples {
		if s.Path != "/json" || len(s.Differences) != 1 || s.Differences[0].Pointer != "/slideshow/title" {
			for _, d := range s.Differences {
				wrong = append(wrong, fmt.Sprintf("%s %s: %s %s: %s | %s", s.Method, s.Path, d.Kind, d.Pointer, d.Primary, d.Shadow))
			}
		}
	}
	if len(wrong) > 0 {
		t.Errorf("mismatches other than /json's title:\n%s", strings.Join(wrong, "\n"))
	}
	if got["mismatch"] != users || got["error"] != 0 || got["match"] != float64(total-users) {
		t.Errorf("comparisons %v, want %d matches and the %d requests to /json mismatched", got, total-users, users)
	}
	if noise := e.routeStatus().NoiseFields; !slices.Contains(noise, "/uuid") {
		t.Errorf("noise fields %q, want /uuid among them", noise)
	}
}

// bufferedWriter keeps an answer to edit before it is sent.
type bufferedWriter struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedWriter) WriteHeader(code int) { b.code = code }

// binConfig is a route "bin" of every path, sticky on X-User-Id, with
// shadow options (YAML flow) and top-level lines.
func binConfig(shadow string, top ...string) string {
	return configHead(top...) + `  - name: bin
    path: /*
    service: {{service}}
    sticky: header:X-User-Id
    shadow: ` + shadow + "\n"
}
