package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkProxiedRequest measures one request through the whole handler
// (route match, flag lookup, split, forward over a pooled loopback
// connection, metrics) against a real backend. The client side is
// httptest.ResponseRecorder so that only the proxy's own work and the
// upstream round trip are counted.
func BenchmarkProxiedRequest(b *testing.B) {
	body := strings.Repeat("x", 1024)
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
	for _, bc := range []struct{ name, path string }{
		{"split10", "/api/orders/7"},
		{"unrouted", "/home"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, basicConfig, flagJSON("orders-percent", 10), backend, backend).srv
			req := httptest.NewRequest("GET", "http://shop.example"+bc.path, nil)
			req.RemoteAddr = "192.0.2.1:1234"
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				req.Header.Set("X-User-Id", userIDs[i%len(userIDs)])
				// net/http's server gives every request a context of its
				// own that is canceled when the client goes: the proxy
				// watches it during the upstream call, and that watch is
				// part of a request's cost (context.Background, which
				// httptest.NewRequest gives, has nothing to watch).
				ctx, cancel := context.WithCancel(context.Background())
				w := httptest.NewRecorder()
				e.ServeHTTP(w, req.WithContext(ctx))
				cancel()
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkBaselineRoundTrip is what BenchmarkProxiedRequest costs without
// the proxy: one request over a pooled loopback connection to the same
// backend, client and backend included. The difference between the two is
// the proxy's own cost.
func BenchmarkBaselineRoundTrip(b *testing.B) {
	body := strings.Repeat("x", 1024)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	b.Cleanup(backend.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("GET", backend.URL+"/api/orders/7", nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req.Header.Set("X-User-Id", userIDs[i%len(userIDs)])
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

var userIDs = func() []string {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%d", i)
	}
	return ids
}()
