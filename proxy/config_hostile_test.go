//go:build linux

package proxy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withinDeadline runs f in a goroutine and reports false when it has not
// returned within d (f is then left running).
func withinDeadline(d time.Duration, f func()) (time.Duration, bool) {
	done := make(chan struct{})
	start := time.Now()
	go func() { f(); close(done) }()
	select {
	case <-done:
		return time.Since(start), true
	case <-time.After(d):
		return d, false
	}
}

func hostileDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flags.json"), []byte(flagJSON("orders-percent", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// N routes on one path (here one anchored route and N-1 aliases of it,
// 4 bytes a route; a plain "- {path: /a}" list does the same at 13 bytes
// a route) made Validate report every route's clash with every earlier
// one: N²/2 problems. 3000 routes (39 KB) were 4.5 million problems, 1.4
// GB allocated, 4 s; 10,000 would have taken ~15 GB, and validate, serve
// and a reload ran out of memory instead of refusing the file. Each route
// now reports its first clash only.
func TestHostileConfigPatternClashQuadratic(t *testing.T) {
	dir := hostileDir(t)
	const n = 1500
	in := hostileHeader(dir) + "routes: [&r {name: a, path: /a, service: 'http://s'}" + strings.Repeat(", *r", n-1) + "]\n"
	var problems int
	var alloc uint64
	d, ok := withinDeadline(5*time.Second, func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := loadConfigBytes(filepath.Join(dir, "strangler.yaml"), []byte(in))
		runtime.ReadMemStats(&after)
		alloc = after.TotalAlloc - before.TotalAlloc
		if ce, ok := err.(*ConfigError); ok {
			problems = len(ce.Problems)
		}
	})
	if !ok {
		t.Fatalf("%d routes on one path (%d-byte file): loadConfigBytes did not end within 5 s (Validate reports each route's clash with every earlier route)", n, len(in))
	}
	t.Logf("%d routes on one path (%d-byte file): %v, %d MiB allocated, %d problems", n, len(in), d, alloc>>20, problems)
	if problems > 10*n {
		t.Errorf("%d routes on one path (%d-byte file): %d problems, %d MiB allocated, %v: Validate reports each route's clash with every earlier route, N²/2 problems, so a few thousand routes exhaust memory", n, len(in), problems, alloc>>20, d)
	}
}

// A file with one problem of shape and many of Validate's: merging them
// was quadratic (a search of the growing list, and of every refused path,
// per problem). "routes: [~, ~, ...]" (3 bytes an entry) is one refused
// entry and three of Validate's problems per entry: 30,000 entries (90 KB)
// took over 20 s; now about a second under -race.
func TestHostileConfigProblemMergeQuadratic(t *testing.T) {
	dir := hostileDir(t)
	const n = 30000
	in := hostileHeader(dir) + "routes: [" + strings.Repeat("~, ", n) + "]\n"
	d, ok := withinDeadline(10*time.Second, func() {
		loadConfigBytes(filepath.Join(dir, "strangler.yaml"), []byte(in))
	})
	if !ok {
		t.Fatalf("routes: [~, ~, ...] with %d entries (%d-byte file): loadConfigBytes did not end within 10 s: merging shape and Validate problems is quadratic", n, len(in))
	}
	t.Logf("%d null route entries: %v", n, d)
}

// unblockFIFO opens a FIFO for writing and closes it, so that a reader
// blocked in open (or read) gets EOF.
func unblockFIFO(path string) {
	if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// admin_token_file naming a FIFO: readToken's os.ReadFile blocks in open
// until a writer appears, so validate, serve and every reload hang (the
// watcher goroutine, or the SIGHUP one, is stuck for good).
func TestHostileConfigTokenFileFIFO(t *testing.T) {
	dir := hostileDir(t)
	fifo := filepath.Join(dir, "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	in := hostileHeader(dir) + "admin_token_file: token\n"
	_, ok := withinDeadline(5*time.Second, func() {
		loadConfigBytes(filepath.Join(dir, "strangler.yaml"), []byte(in))
	})
	if !ok {
		unblockFIFO(fifo)
		time.Sleep(100 * time.Millisecond)
		t.Fatalf("admin_token_file naming a FIFO: loadConfigBytes (Validate → readToken) blocked for 5 s waiting for a writer: validate, serve and reload hang")
	}
}

// flags.file naming a FIFO: Validate only stats it, but Check (run by
// validate and serve, after Validate) reads it with os.ReadFile and blocks.
func TestHostileConfigFlagFileFIFO(t *testing.T) {
	dir := hostileDir(t)
	fifo := filepath.Join(dir, "flags.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	in := "listen: 127.0.0.1:8080\nmonolith: http://m\nflags: {file: flags.fifo}\n"
	cfg, err := loadConfigBytes(filepath.Join(dir, "strangler.yaml"), []byte(in))
	if err != nil {
		t.Fatalf("a FIFO flag file is refused by Validate: %v", err)
	}
	_, ok := withinDeadline(5*time.Second, func() { Check(cfg) })
	if !ok {
		unblockFIFO(fifo)
		time.Sleep(100 * time.Millisecond)
		t.Fatalf("flags.file naming a FIFO passes Validate (config.go Stat: not a directory) and Check (flags.Load, flags/file.go:41) blocked for 5 s: validate and serve hang")
	}
}

// admin_token_file: /dev/zero: readToken's os.ReadFile never reaches EOF
// and grows its buffer until the process runs out of memory. Run in a
// child limited to 1 GiB more address space than it has mapped.
func TestHostileConfigTokenFileDevZero(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip(err)
	}
	if os.Getenv("STRANGLER_TEST_DEVZERO_CHILD") == "1" {
		// 1 GiB above what the process has mapped so far.
		statm, err := os.ReadFile("/proc/self/statm")
		if err != nil {
			t.Skip(err)
		}
		var pages uint64
		fmt.Sscan(string(statm), &pages)
		as := pages*uint64(os.Getpagesize()) + 1<<30
		lim := &syscall.Rlimit{Cur: as, Max: as}
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
			t.Skip(err)
		}
		dir := hostileDir(t)
		in := hostileHeader(dir) + "admin_token_file: /dev/zero\n"
		_, ok := withinDeadline(5*time.Second, func() {
			loadConfigBytes(filepath.Join(dir, "strangler.yaml"), []byte(in))
		})
		if !ok {
			t.Fatal("child: did not end within 5 s")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileConfigTokenFileDevZero$", "-test.v")
	cmd.Env = append(os.Environ(), "STRANGLER_TEST_DEVZERO_CHILD=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		why := "it did not end within 5 s"
		if strings.Contains(string(out), "out of memory") {
			why = "it ran out of memory (address space limited to 1 GiB more than at start)"
		}
		t.Fatalf("admin_token_file: /dev/zero: loadConfigBytes (Validate → readToken) reads without bound: %s after %v; validate, serve and reload would exhaust memory", why, time.Since(start).Round(time.Millisecond))
	}
}

// hostileHeader is the valid part of a hostile config: listen, monolith
// and the flag file in dir.
func hostileHeader(dir string) string {
	return "listen: 127.0.0.1:8080\nmonolith: http://m\nflags: {file: " + filepath.Join(dir, "flags.json") + "}\n"
}
