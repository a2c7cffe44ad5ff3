//go:build unix

package flags

import (
	"fmt"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group that info describes. The proxy
// often runs as a user of its own and reads a file that only that user
// (or group) may read; whoever runs Ramp, root included, must not take the
// file away from it. When the change is not allowed (a user other than
// root, or one not in the group), the error says so and the caller leaves
// the old file in place.
func keepOwner(f *os.File, info os.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // not a file system with Unix owners
	}
	if now, err := f.Stat(); err == nil {
		// The new file's own owner and group: a setgid directory gives it
		// the directory's group, not the process's.
		if ns, ok := now.Sys().(*syscall.Stat_t); ok && ns.Uid == st.Uid && ns.Gid == st.Gid {
			return nil // it has them already
		}
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("the new file cannot keep the owner %d:%d of the old one "+
			"(run as that user, or as root), so the file is left unchanged: %w", st.Uid, st.Gid, err)
	}
	return nil
}
