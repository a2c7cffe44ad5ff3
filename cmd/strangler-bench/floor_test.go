//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startFloor serves the named floor on a loopback port until the test
// ends and returns its address.
func startFloor(t *testing.T, name, monolith, service string, shadow bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runFloor(ctx, name, ln, monolith, service, shadow) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return ln.Addr().String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveBoth serves the monolith and the service on loopback until the
// test ends and returns their addresses.
func serveBoth(t *testing.T, monolith, service http.Handler) (string, string) {
	t.Helper()
	m, s := httptest.NewServer(monolith), httptest.NewServer(service)
	t.Cleanup(m.Close)
	t.Cleanup(s.Close)
	return m.Listener.Addr().String(), s.Listener.Addr().String()
}

// forwardedBackend is a bench backend that also counts the requests that
// arrived without the client's address in X-Forwarded-For.
type forwardedBackend struct {
	*backend
	missingXFF atomic.Int64
}

func (b *forwardedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		b.missingXFF.Add(1)
	}
	b.backend.ServeHTTP(w, r)
}

func TestFloorsForwardAndSplit(t *testing.T) {
	t.Parallel()
	for _, name := range []string{peerGoNet, peerGoHTTP} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mono, svc := &forwardedBackend{backend: newBackend()}, &forwardedBackend{backend: newBackend()}
			monoAddr, svcAddr := serveBoth(t, mono, svc)
			addr := startFloor(t, name, monoAddr, svcAddr, false)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			t.Cleanup(client.CloseIdleConnections)

			get := func(path, user string) (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
				if user != "" {
					req.Header.Set("X-User-Id", user)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp, body
			}
			for _, size := range []int{smallBody, largeBody} {
				resp, body := get("/plain/7?size="+sizeName(size), "")
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, jsonBody(size)) {
					t.Fatalf("size %d: %s, %d bytes, want 200 and the backend's body", size, resp.Status, len(body))
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			}
			// Connection: close is hop-by-hop: the backend closes after
			// its answer, and the floor dials anew for the next request.
			for range 2 {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/plain/8", nil)
				req.Close = true
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, jsonBody(smallBody)) {
					t.Fatalf("Connection: close: %s, %d bytes", resp.Status, len(body))
				}
			}
			// Users of the route go to the service exactly when
			// floorToService says so, and that is near 10 %.
			const users = 1000
			want := 0
			for i := range users {
				u := strconv.Itoa(i)
				if floorToService([]byte("/api/orders/7"), []byte(u)) {
					want++
				}
				if resp, _ := get("/api/orders/7?size=1k", u); resp.StatusCode != http.StatusOK {
					t.Fatalf("user %s: %s", u, resp.Status)
				}
			}
			if got := int(svc.primaries.Load()); got != want || want < users*7/100 || want > users*13/100 {
				t.Errorf("service got %d of %d route requests, want %d (near 10 %%)", got, users, want)
			}
			if got := mono.primaries.Load(); got != uint64(users-want+4) {
				t.Errorf("monolith got %d, want %d", got, users-want+4)
			}
			if n := mono.missingXFF.Load() + svc.missingXFF.Load(); n > 0 {
				t.Errorf("%d requests arrived without X-Forwarded-For: 127.0.0.1", n)
			}
		})
	}
}

func TestFloorsRefuseWhatTheyDoNotDo(t *testing.T) {
	t.Parallel()
	mono := httptest.NewServer(newBackend())
	t.Cleanup(mono.Close)
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("a"))
		w.(http.Flusher).Flush() // no Content-Length: chunked
		w.Write([]byte("b"))
	}))
	t.Cleanup(chunked.Close)
	deadAddr := closedAddr(t)

	for _, name := range []string{peerGoNet, peerGoHTTP} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				name, upstream string
				body           io.Reader
				want           int
			}{
				{"request body", mono.Listener.Addr().String(), strings.NewReader("x"), http.StatusNotImplemented},
				{"chunked answer", chunked.Listener.Addr().String(), nil, http.StatusBadGateway},
				{"upstream down", deadAddr, nil, http.StatusBadGateway},
			}
			for _, tc := range cases {
				addr := startFloor(t, name, tc.upstream, tc.upstream, false)
				method := http.MethodGet
				if tc.body != nil {
					method = http.MethodPost
				}
				req, _ := http.NewRequest(method, "http://"+addr+"/plain/1", tc.body)
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
				}
			}
		})
	}
}

func TestFloorsRunOneScenarioUnderPeersAll(t *testing.T) {
	t.Parallel()
	for _, all := range []bool{true, false} {
		p := discoverPeers(context.Background(), []string{peerGoNet}, all, "/bin/self", t.TempDir(), "")[0]
		var ran []string
		for _, c := range plan(scenarios, []*peer{p}, 1) {
			ran = append(ran, c.sc.name)
		}
		want := "plain-1k,plain-64k,split-1k,split-64k,shadow-1k,shadow-64k"
		if all {
			want = "split-1k,shadow-1k"
		}
		if got := strings.Join(ran, ","); got != want {
			t.Errorf("allPeers=%v: floor runs %s, want %s", all, got, want)
		}
		argv, _ := p.command(p.bin, "", scenarios[0], testEndpoints)
		if got := strings.Join(argv, " "); got != "/bin/self -floor go-net 127.0.0.1:18080 127.0.0.1:18081 127.0.0.1:18082" {
			t.Errorf("command %q", got)
		}
	}
}

func TestFloorsMirrorToTheOtherSide(t *testing.T) {
	t.Parallel()
	for _, name := range []string{peerGoNet, peerGoHTTP} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mono, svc := newBackend(), newBackend()
			monoAddr, svcAddr := serveBoth(t, mono, svc)
			addr := startFloor(t, name, monoAddr, svcAddr, true)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			t.Cleanup(client.CloseIdleConnections)
			const users = 300
			toService := 0
			for i := range users {
				u := strconv.Itoa(i)
				if floorToService([]byte("/api/orders/7"), []byte(u)) {
					toService++
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/orders/7?size=64k", nil)
				req.Header.Set("X-User-Id", u)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || len(body) != largeBody {
					t.Fatalf("user %s: %s, %d bytes", u, resp.Status, len(body))
				}
			}
			// The mirror is sent after the answer: wait for the last one.
			deadline := time.Now().Add(5 * time.Second)
			for mono.shadows.Load()+svc.shadows.Load() < users && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got, want := svc.primaries.Load(), uint64(toService); got != want {
				t.Errorf("service primaries %d, want %d", got, want)
			}
			if got, want := svc.shadows.Load(), uint64(users-toService); got != want {
				t.Errorf("service shadows %d, want %d (the monolith's users)", got, want)
			}
			if got, want := mono.shadows.Load(), uint64(toService); got != want {
				t.Errorf("monolith shadows %d, want %d (the service's users)", got, want)
			}
		})
	}
}

func TestFloorsMirrorFailureSparesTheClient(t *testing.T) {
	t.Parallel()
	mono := httptest.NewServer(newBackend())
	t.Cleanup(mono.Close)
	deadAddr := closedAddr(t)
	for _, name := range []string{peerGoNet, peerGoHTTP} {
		addr := startFloor(t, name, mono.Listener.Addr().String(), deadAddr, true)
		for range 3 { // the same client connection each time
			resp, err := http.Get("http://" + addr + "/plain/1")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || len(body) != smallBody {
				t.Errorf("%s: %s, %d bytes, want the monolith's answer", name, resp.Status, len(body))
			}
		}
	}
}
