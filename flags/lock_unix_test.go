//go:build unix && !solaris && !aix

package flags

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A ramp whose turn never comes (the lock held by a ramp stopped with
// Ctrl-Z, or stuck on a network file system) goes on after lockWait,
// without the lock, and says so: a rollback at 3 AM must not hang. It
// waited forever. Not parallel: it shortens lockWait.
func TestRampGoesOnWhenTheLockIsHeld(t *testing.T) {
	saved := lockWait
	lockWait = 200 * time.Millisecond
	t.Cleanup(func() { lockWait = saved })
	dir := t.TempDir()
	path := writeFlags(t, dir, rampFile)
	holder, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	type result struct {
		note string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, note, err := Ramp(path, "orders-percent", 0)
		done <- result{note, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || !strings.Contains(r.note, "another process held it") {
			t.Errorf("Ramp = note %q, error %v; want the ramp done, with a note that it did not wait", r.note, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ramp still blocked 10 s after lockWait on a lock held elsewhere")
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if fl := f.flags["orders-percent"]; fl.variants[fl.defaultVariant] != 0.0 {
		t.Errorf("orders-percent reads %v, want 0", fl.variants[fl.defaultVariant])
	}
}
