//go:build unix && !solaris && !aix

package flags

import (
	"fmt"
	"os"
	"syscall"
	"time"
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
	// Never wait for good: a ramp suspended with Ctrl-Z, or stuck on a
	// network file system, holds the lock for as long as it likes, and a
	// rollback must still go through (without the lock, and saying so).
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR || time.Now().After(deadline) {
			break
		}
		time.Sleep(lockPoll)
	}
	if err == syscall.EWOULDBLOCK {
		d.Close()
		return nil, fmt.Errorf("locking %s: another process held it for %v", dir, lockWait)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { d.Close() }, nil // closing the last descriptor releases the lock
}
