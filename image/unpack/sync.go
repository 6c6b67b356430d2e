package unpack

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SyncDir flushes the whole filesystem holding dir with syncfs(2). Apply
// deliberately does not fsync each file; one syncfs before the caller
// renames the layer into place is far cheaper and gives the same guarantee.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
