//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// backendFlag, as the first argument, turns the harness into a backend:
// `strangler-bench -backend 127.0.0.1:PORT`. It is not in the usage text
// because only the harness starts backends.
const backendFlag = "-backend"

// countsPath is where a backend reports how many requests it has served.
const countsPath = "/_bench/counts"

// Body sizes a backend answers with, chosen by the query `size=1k` (the
// default) or `size=64k`.
const (
	smallBody = 1 << 10
	largeBody = 64 << 10
)

// backend answers every request with a fixed JSON body, identical on the
// monolith and the service so that every shadow comparison is a match (the
// cost measured is that of comparing, not of storing mismatch samples). It
// does as little as a server can, so that the figures are the proxy's.
type backend struct {
	small, large  []byte
	smallLen      []string // Content-Length values, built once
	largeLen      []string
	primaries     atomic.Uint64 // requests without X-Strangler-Shadow
	shadows       atomic.Uint64 // shadow copies
	contentTypeJS []string
}

// backendCounts is the JSON answer at countsPath.
type backendCounts struct {
	Primaries uint64 `json:"primaries"`
	Shadows   uint64 `json:"shadows"`
}

// newBackend builds the bodies once.
func newBackend() *backend {
	b := &backend{small: jsonBody(smallBody), large: jsonBody(largeBody), contentTypeJS: []string{"application/json"}}
	b.smallLen = []string{strconv.Itoa(len(b.small))}
	b.largeLen = []string{strconv.Itoa(len(b.large))}
	return b
}

// ServeHTTP answers a load request with the body the query asks for and
// counts it, or reports the counts at countsPath.
func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == countsPath {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(backendCounts{Primaries: b.primaries.Load(), Shadows: b.shadows.Load()})
		return
	}
	if r.Header.Get(shadowHeader) != "" {
		b.shadows.Add(1)
	} else {
		b.primaries.Add(1)
	}
	body, n := b.small, b.smallLen
	if strings.Contains(r.URL.RawQuery, "size=64k") {
		body, n = b.large, b.largeLen
	}
	h := w.Header()
	h["Content-Type"] = b.contentTypeJS
	h["Content-Length"] = n
	_, _ = w.Write(body)
}

// jsonBody returns a JSON document of exactly n bytes (n ≥ 64): an order
// padded with a string field.
func jsonBody(n int) []byte {
	const head = `{"order":{"id":7,"status":"shipped","total":"123.45","items":3},"pad":"`
	const tail = `"}`
	b := make([]byte, 0, n)
	b = append(b, head...)
	for i := 0; len(b) < n-len(tail); i++ {
		b = append(b, 'a'+byte(i%26))
	}
	return append(b, tail...)
}

// runBackend serves until SIGTERM or SIGINT. args are the address, then
// the soak's options: `-events FILE` records what happens to each POST,
// `-reset-shadows PCT` resets that share of shadow copies, `-latency D`
// delays each answer; with any, the backend also has the soak's fault
// modes (see soakBackend).
func runBackend(args []string) error {
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%s: want an address first, got %q", backendFlag, args)
	}
	fs := flag.NewFlagSet(backendFlag, flag.ContinueOnError)
	events := fs.String("events", "", "append POST events to this file (soak)")
	resetPct := fs.Float64("reset-shadows", 0, "percent of shadow copies answered by a connection reset (soak)")
	latency := fs.Duration("latency", 0, "time each answer takes (soak)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 || *resetPct < 0 || *resetPct > 100 || *latency < 0 || *latency > time.Minute {
		return fmt.Errorf("%s: unexpected arguments %q", backendFlag, args[1:])
	}
	var h http.Handler = newBackend()
	if *events != "" || *resetPct > 0 || *latency > 0 {
		sb, err := newSoakBackend(*events, *resetPct/100, *latency)
		if err != nil {
			return err
		}
		defer sb.close()
		h = sb
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// readCounts asks the backend at addr (host:port) for its counts.
func readCounts(ctx context.Context, c *http.Client, addr string) (backendCounts, error) {
	var bc backendCounts
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+countsPath, nil)
	if err != nil {
		return bc, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return bc, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return bc, fmt.Errorf("%s: %s", countsPath, resp.Status)
	}
	return bc, json.NewDecoder(resp.Body).Decode(&bc)
}

// backendMain is main for a backend process.
func backendMain(args []string) {
	if err := runBackend(args); err != nil {
		fmt.Fprintln(os.Stderr, "strangler-bench backend:", err)
		os.Exit(1)
	}
}
