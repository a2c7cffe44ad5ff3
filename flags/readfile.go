package flags

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Bounds of the files the proxy reads, far above any real one.
const (
	// MaxFlagFile bounds a flag file.
	MaxFlagFile = 32 << 20
	// MaxConfigFile bounds a config file.
	MaxConfigFile = 16 << 20
	// MaxTokenFile bounds a token file.
	MaxTokenFile = 64 << 10
)

// ReadFile reads the regular file at path (a symlink to one, as in a
// Kubernetes volume, is followed) of at most max bytes. It is how the
// proxy reads its config, flag and token files: os.ReadFile of a FIFO
// waits for a writer forever, and of /dev/zero grows until memory runs
// out, and either would stop a reload, or the proxy, for good.
func ReadFile(path string, max int64) ([]byte, error) {
	// Non-blocking: opening a FIFO would otherwise wait for a writer. The
	// check below refuses it; a regular file reads as usual.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err // names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d bytes a file of this kind may have", path, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max { // it grew while read
		return nil, fmt.Errorf("%s is more than the %d bytes a file of this kind may have", path, max)
	}
	return b, nil
}

func notRegular(path string, fi os.FileInfo) error {
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
}
