package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// kubeletMount lays out a folder as kubelet mounts a ConfigMap volume:
// each key a symlink through ..data to a timestamped folder, so that an
// update is one atomic rename of ..data.
type kubeletMount struct {
	t   *testing.T
	dir string
	gen int
}

func (k *kubeletMount) publish(files map[string]string) {
	k.t.Helper()
	k.gen++
	ts := fmt.Sprintf("..2026_11_25_10_00_%02d.%d", k.gen, 1000+k.gen)
	if err := os.Mkdir(filepath.Join(k.dir, ts), 0o755); err != nil {
		k.t.Fatal(err)
	}
	for name, content := range files {
		writeFile(k.t, filepath.Join(k.dir, ts, name), content)
		link := filepath.Join(k.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				k.t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
}

// startFleet runs n proxies on one config file, as replicas of a
// Deployment do on their own copies of one ConfigMap.
func startFleet(t *testing.T, cfgPath string, n int) []string {
	t.Helper()
	var urls []string
	for range n {
		cfg, err := LoadConfig(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ln, admin := listen(t), listen(t)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln, admin) }()
		t.Cleanup(func() { cancel(); <-done; srv.Close(context.Background()) })
		urls = append(urls, "http://"+ln.Addr().String())
	}
	return urls
}

func servedAll(t *testing.T, url, want string) bool {
	for i := range 20 {
		req, _ := http.NewRequest("GET", url+"/api/orders/1", nil)
		req.Header.Set("X-User-Id", fmt.Sprint("user-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Served-By") != want {
			return false
		}
	}
	return true
}

func TestFleetFollowsConfigMapSymlinkSwap(t *testing.T) {
	t.Parallel()
	mono, svc := httptest.NewServer(whoAmI("monolith")), httptest.NewServer(whoAmI("service"))
	t.Cleanup(mono.Close)
	t.Cleanup(svc.Close)
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nmonolith: %s\nflags: {file: flags.json}\nroutes:\n  - {name: orders, path: /api/orders/*, service: %q, sticky: header:X-User-Id}\n", mono.URL, svc.URL)
	k := &kubeletMount{t: t, dir: t.TempDir()}
	k.publish(map[string]string{"strangler.yaml": cfg, "flags.json": flagJSON("orders-percent", 0)})
	proxies := startFleet(t, filepath.Join(k.dir, "strangler.yaml"), 2)
	for _, p := range proxies {
		if !servedAll(t, p, "monolith") {
			t.Fatal("not all on the monolith at 0%")
		}
	}
	k.publish(map[string]string{"strangler.yaml": cfg, "flags.json": flagJSON("orders-percent", 100)})
	for i, p := range proxies {
		eventually(t, 2*time.Second, fmt.Sprintf("proxy %d applies the ConfigMap update", i), func() bool { return servedAll(t, p, "service") })
	}
}

func TestFleetFollowsDeletedThenRecreatedFile(t *testing.T) {
	t.Parallel()
	mono, svc := httptest.NewServer(whoAmI("monolith")), httptest.NewServer(whoAmI("service"))
	t.Cleanup(mono.Close)
	t.Cleanup(svc.Close)
	dir := t.TempDir()
	cfgPath, flagPath := filepath.Join(dir, "strangler.yaml"), filepath.Join(dir, "flags.json")
	writeFile(t, cfgPath, fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nmonolith: %s\nflags: {file: flags.json}\nroutes:\n  - {name: orders, path: /api/orders/*, service: %q, sticky: header:X-User-Id}\n", mono.URL, svc.URL))
	writeFile(t, flagPath, flagJSON("orders-percent", 100))
	proxies := startFleet(t, cfgPath, 2)
	if err := os.Remove(flagPath); err != nil {
		t.Fatal(err)
	}
	for _, p := range proxies {
		if !servedAll(t, p, "service") {
			t.Fatal("a deleted flag file dropped the last good flags")
		}
	}
	writeFile(t, flagPath, flagJSON("orders-percent", 0))
	for i, p := range proxies {
		eventually(t, 2*time.Second, fmt.Sprintf("proxy %d follows the recreated file", i), func() bool { return servedAll(t, p, "monolith") })
	}
}
