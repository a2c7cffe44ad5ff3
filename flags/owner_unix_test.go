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
	path, info, st := rampOwnedFile(t, 0o755, 0, 0, 0o600, proxyUID, proxyGID)
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
	_, _, st := rampOwnedFile(t, 0o755|os.ModeSetgid, 0, 65534, 0o640, 0, 0)
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("after Ramp the file is %d:%d, want 0:0 (the old file's)", st.Uid, st.Gid)
	}
}

// rampOwnedFile writes a flag file with mode and owner uid:gid in a new
// folder with dirMode and owner dirUID:dirGID, ramps it to 0, and returns
// its path and what it is after. Not t.TempDir: its parent is 0700, and
// another user must reach the file.
func rampOwnedFile(t *testing.T, dirMode os.FileMode, dirUID, dirGID int, mode os.FileMode, uid, gid int) (string, os.FileInfo, *syscall.Stat_t) {
	t.Helper()
	dir, err := os.MkdirTemp("", "flags-ramp-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, dirUID, dirGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(path, []byte(flagFile("10")), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ramp(path, "orders", 0); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, info, info.Sys().(*syscall.Stat_t)
}
