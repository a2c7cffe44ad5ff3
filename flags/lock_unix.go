//go:build unix && !solaris && !aix

package flags

import (
	"fmt"
	"os"
	"syscall"
)

// flockDir holds an exclusive lock on dir until unlock is called: two
// Ramps on files of one directory take turns, so that neither writes a
// file read before the other's rename (a lost update could undo another
// operator's rollback). The directory is locked, not the file, because
// the file is replaced, and a lock file would be one more file beside the
// flags. Other editors (a text editor, kubectl) do not take the lock.
func flockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { d.Close() }, nil // closing the last descriptor releases the lock
}
