//go:build unix

package flags

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ReadFile reads regular files (and symlinks to them) up to its bound,
// and refuses at once what os.ReadFile would wait on forever (a FIFO) or
// read without end (/dev/zero), a directory, and a file over the bound.
func TestReadFileRefusesWhatIsNotASmallRegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regular := filepath.Join(dir, "f.json")
	if err := os.WriteFile(regular, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		path, want string
		max        int64
	}{
		{regular, "", 16},
		{link, "", 16},
		{regular, "more than the 1 bytes", 1},
		{fifo, "not a regular file", 16},
		{"/dev/zero", "not a regular file", 16},
		{dir, "is a directory", 16},
		{filepath.Join(dir, "missing"), "no such file", 16},
	} {
		b, err := ReadFile(tc.path, tc.max)
		switch {
		case tc.want == "" && (err != nil || string(b) != "{}"):
			t.Errorf("%s: %q, %v; want {}", tc.path, b, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v; want an error with %q", tc.path, err, tc.want)
		}
	}
}
