//go:build unix

package flags

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The proxy often runs as its own user and reads a flag file only that
// user may read. A Ramp run as root (sudo at 3 AM) must leave the file to
// that user, or every proxy keeps its old flags and the rollback never
// happens.
func TestRampKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file to another user")
	}
	t.Parallel()
	const proxyUID, proxyGID = 65534, 65534 // nobody
	// Not t.TempDir: its parent is 0700, and the proxy's user must reach
	// the file.
	dir, err := os.MkdirTemp("", "flags-ramp-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(path, []byte(flagFile("10")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, proxyUID, proxyGID); err != nil {
		t.Fatal(err)
	}

	if _, err := Ramp(path, "orders", 0); err != nil {
		t.Fatal(err)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid != proxyUID || st.Gid != proxyGID || info.Mode().Perm() != 0o600 {
		t.Errorf("after Ramp the file is %d:%d %v, want %d:%d -rw-------", st.Uid, st.Gid, info.Mode().Perm(), proxyUID, proxyGID)
	}
	// What the proxy, running as that user, now reads.
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat to read the file as the proxy's user")
	}
	cmd := exec.Command(cat, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: proxyUID, Gid: proxyGID}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the proxy's user cannot read the file after Ramp: %v", err)
	}
	if want := flagFile("0"); string(out) != want {
		t.Errorf("the proxy's user reads %s, want %s", out, want)
	}
}

// In a setgid folder a new file takes the folder's group, not the
// process's: Ramp must still give the file its old group (here it would
// have given group 65534 read access to a root:root 0640 file).
func TestRampKeepsGroupInASetgidFolder(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 || os.Getegid() != 0 {
		t.Skip("needs root")
	}
	dir, err := os.MkdirTemp("", "flags-ramp-setgid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, 0, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(path, []byte(flagFile("10")), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Ramp(path, "orders", 0); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("after Ramp the file is %d:%d, want 0:0 (the old file's)", st.Uid, st.Gid)
	}
}
