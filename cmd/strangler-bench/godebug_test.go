//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOptionsGodebug(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		godebug string
		ok      bool
	}{
		{"", true},
		{"schedtrace=2147483647", true},
		{"gctrace=1,schedtrace=1000", true},
		{"schedtrace", false},
		{"=1", false},
		{"a=1,,b=2", false},
		{"a=1, b=2", false},
	} {
		opt, err := parseOptions([]string{"-godebug", tc.godebug}, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("-godebug %q: %v, want ok %v", tc.godebug, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "-godebug") {
			t.Errorf("-godebug %q: error %q does not name the flag", tc.godebug, err)
		}
		if err == nil && opt.godebug != tc.godebug {
			t.Errorf("-godebug %q: kept %q", tc.godebug, opt.godebug)
		}
	}
}

// TestGodebugReachesGoPeersOnly starts real children with each peer's
// environment and reads back what they were given: a GODEBUG that leaked
// to nginx, HAProxy or the shared backends' environment would make a run
// measure something other than what its header says.
func TestGodebugReachesGoPeersOnly(t *testing.T) {
	t.Parallel()
	// The binaries are never run but for Strangler's "version": a program
	// that ignores its arguments. The test binary itself would run this
	// package's tests again on "version", each run starting the next.
	const bin = "/usr/bin/true"
	peers := discoverPeers(context.Background(), []string{peerDirect, peerStrangler, peerNginx, peerHAProxy, peerGoHTTP, peerGoNet},
		false, bin, t.TempDir(), bin)
	base := make([]string, 0, 8) // spare capacity: an append would write into it
	base = append(base, childEnv()...)
	before := slices.Clone(base)
	for _, p := range peers {
		want := p.name == peerStrangler || p.name == peerGoHTTP || p.name == peerGoNet
		env := p.env(base, "schedtrace=2147483647")
		log := filepath.Join(t.TempDir(), "env.log")
		proc, err := startProcess("env", -1, log, env, "/usr/bin/env")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-proc.done:
		case <-time.After(30 * time.Second):
			proc.stop()
			t.Fatalf("%s: env did not exit", p.name)
		}
		out, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Contains(strings.Split(string(out), "\n"), "GODEBUG=schedtrace=2147483647")
		if got != want {
			t.Errorf("%s: child given GODEBUG %v, want %v; its environment:\n%s", p.name, got, want, out)
		}
		if !slices.Equal(base, before) {
			t.Fatalf("%s: the shared environment changed: %q", p.name, base)
		}
		if extra := base[len(base):cap(base)]; slices.Contains(extra, "GODEBUG=schedtrace=2147483647") {
			t.Fatalf("%s: GODEBUG written into the shared environment's spare capacity", p.name)
		}
	}
	if env := peers[1].env(base, ""); !slices.Equal(env, base) {
		t.Errorf("no -godebug: Strangler's environment %q, want %q", env, base)
	}
}
