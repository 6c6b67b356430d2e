package proto

import (
	"os"
	"path/filepath"
	"time"

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

// WaitBundleUnlocked waits until nobody holds the bundle lock, polling for
// at most timeout, and reports whether that happened. A bundle without a
// lock file has never been locked.
func WaitBundleUnlocked(bundle string, timeout time.Duration) bool {
	f, err := os.OpenFile(filepath.Join(bundle, LockFile), os.O_RDWR, 0)
	if err != nil {
		return true
	}
	defer f.Close()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
