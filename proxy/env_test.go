package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// env is one proxy under test with real listeners: a monolith and a service
// that say who answered, a flag file, and the proxy and admin servers.
type env struct {
	t        testing.TB
	dir      string
	flagFile string
	monolith *httptest.Server
	service  *httptest.Server
	srv      *Server
	proxyURL string
	adminURL string
	stop     context.CancelFunc
	done     chan error
}

// whoAmI answers with its name in X-Served-By and the body, and echoes what
// it received in headers, so that tests can see both sides of the proxy.
func whoAmI(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("X-Got-Path", r.URL.Path)
		w.Header().Set("X-Got-Raw-Query", r.URL.RawQuery)
		w.Header().Set("X-Got-Host", r.Host)
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	})
}

// flagJSON is a flag file with one plain percent flag per pair.
func flagJSON(pairs ...any) string {
	var b strings.Builder
	b.WriteString(`{"flags":{`)
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `%q:{"state":"ENABLED","variants":{"on":%v},"defaultVariant":"on"}`, pairs[i], pairs[i+1])
	}
	b.WriteString("}}")
	return b.String()
}

// newEnv starts backends (unless given in cfgYAML via {{monolith}} and
// {{service}}), writes flags and config, and serves the proxy.
func newEnv(t testing.TB, cfgYAML, flags string, monolith, service http.Handler) *env {
	t.Helper()
	return startEnv(t, cfgYAML, flags, monolith, service, true, Options{})
}

// newEnvWith starts a proxy with server options (tracing, logging).
func newEnvWith(t testing.TB, cfgYAML, flags string, monolith, service http.Handler, opts Options) *env {
	t.Helper()
	return startEnv(t, cfgYAML, flags, monolith, service, true, opts)
}

// newEnvNoCheck starts a proxy on a flag file that `validate` would refuse,
// as a running proxy may meet one after a reload.
func newEnvNoCheck(t testing.TB, cfgYAML, flags string) *env {
	t.Helper()
	return startEnv(t, cfgYAML, flags, nil, nil, false, Options{})
}

func startEnv(t testing.TB, cfgYAML, flags string, monolith, service http.Handler, check bool, opts Options) *env {
	t.Helper()
	if monolith == nil {
		monolith = whoAmI("monolith")
	}
	if service == nil {
		service = whoAmI("service")
	}
	e := &env{t: t, dir: t.TempDir()}
	e.monolith = httptest.NewServer(monolith)
	t.Cleanup(e.monolith.Close)
	e.service = httptest.NewServer(service)
	t.Cleanup(e.service.Close)
	e.flagFile = filepath.Join(e.dir, "flags.json")
	writeFile(t, e.flagFile, flags)
	cfgYAML = strings.NewReplacer("{{monolith}}", e.monolith.URL, "{{service}}", e.service.URL).Replace(cfgYAML)
	cfgPath := filepath.Join(e.dir, "strangler.yaml")
	writeFile(t, cfgPath, cfgYAML)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if _, err := Check(cfg); err != nil && check {
		t.Fatalf("check: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	ln := listen(t)
	admin := listen(t)
	e.proxyURL, e.adminURL = "http://"+ln.Addr().String(), "http://"+admin.Addr().String()
	e.done = make(chan error, 1)
	go func() { e.done <- srv.Serve(ctx, ln, admin) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		srv.Close(context.Background())
	})
	return e
}

// basicConfig routes /api/orders/* to the service with a sticky header.
const basicConfig = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    service: {{service}}
    sticky: header:X-User-Id
`

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// get sends a request through the proxy and returns who served it.
func (e *env) get(path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.proxyURL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(body)
}

// servedBy sends one request per user and counts who answered.
func (e *env) servedBy(users int, path string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for i := range users {
		resp, _ := e.get(path, "X-User-Id", fmt.Sprintf("user-%d", i))
		out[resp.Header.Get("X-Served-By")]++
	}
	return out
}

// adminGet fetches an admin endpoint's body.
func (e *env) adminGet(path string) (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.adminURL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMetric polls one series until it has the wanted value (metrics are
// recorded after the response reaches the client) and returns the last
// value read.
func (e *env) waitMetric(series string, want float64) float64 {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		v := e.metric(series)
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of one series from /metrics, or -1.
func (e *env) metric(series string) float64 {
	e.t.Helper()
	_, body := e.adminGet("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
