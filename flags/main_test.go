package flags

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// flagd provider v0.6.0: Provider.handleEvents ranges over the
		// in-process service's event channel, which Shutdown never closes,
		// so one goroutine per closed provider stays blocked forever.
		goleak.IgnoreTopFunction("github.com/open-feature/go-sdk-contrib/providers/flagd/pkg.(*Provider).handleEvents"),
	)
}

// plain is a flag file with one flag without targeting.
const plain = `{"flags":{"orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"}}}`

// flagFile returns a file with one plain flag "orders" set to v.
func flagFile(v string) string {
	return `{"flags":{"orders":{"state":"ENABLED","variants":{"on":` + v + `},"defaultVariant":"on"}}}`
}

// writeFlags writes content to dir/flags.json and returns the path.
func writeFlags(t testing.TB, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// reloads records the callbacks of a Source.
type reloads struct {
	mu      sync.Mutex
	changes int
	errs    []error
}

func (r *reloads) changeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes
}

func (r *reloads) errorCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs)
}

func (r *reloads) lastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return nil
	}
	return r.errs[len(r.errs)-1]
}

// open starts a Source on path and closes it when the test ends.
func open(t testing.TB, path string) (*Source, *reloads) {
	t.Helper()
	r := &reloads{}
	s, err := Open(context.Background(), Options{
		File:   path,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnChange: func() {
			r.mu.Lock()
			r.changes++
			r.mu.Unlock()
		},
		OnReloadError: func(err error) {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s, r
}

// eventuallyWithin is how long eventually waits. A passing test waits
// only as long as it takes; the bound is for a loaded CI machine under
// -race, where 5 s was once not enough for a flagd daemon's change to
// reach the provider.
const eventuallyWithin = 20 * time.Second

// eventually polls cond every 10 ms until it holds or eventuallyWithin
// has passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventuallyWithin)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", eventuallyWithin, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// percentIs reports whether the flag's cached or evaluated value is want.
func percentIs(f *Flag, want float64) func() bool {
	return func() bool {
		v, err := f.Percent(context.Background(), "k", Attrs{})
		return err == nil && v == want
	}
}
