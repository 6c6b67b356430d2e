package proto

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockBundle takes an exclusive flock on the bundle's lock file.
// libcontainer has no cross-process locking, and both the monitor (create,
// start) and the daemon (signal, exec, update, destroy) operate on the same
// container state, so each libcontainer operation runs under this lock.
func LockBundle(bundle string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(bundle, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
