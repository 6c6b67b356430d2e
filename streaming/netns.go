package streaming

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

// inNetNS runs fn on an OS thread that has joined the network namespace at
// path. Sockets fn creates stay in that namespace for their whole life, so
// fn must create every socket it needs before returning, and must not start
// goroutines that create sockets (they would run on other threads).
//
// fn runs on a goroutine of its own so that, if the thread cannot be moved
// back to the daemon's namespace, the thread can be left locked: the Go
// runtime then ends it with the goroutine instead of reusing a thread that
// sits in a pod's namespace.
func inNetNS(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.FailedPrecondition("network namespace %s is gone", path)
		}
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()
	// A pin that was unmounted leaves a plain file behind; say so rather
	// than let setns fail with EINVAL.
	if t, err := unix.IoctlRetInt(int(target.Fd()), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		return errdefs.FailedPrecondition("%s is not a network namespace (pod stopped?)", path)
	}

	result := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			goruntime.UnlockOSThread()
			result <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			result <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still locked: the thread dies with this goroutine.
			result <- errors.Join(fnErr, fmt.Errorf("return from network namespace %s: %w", path, err))
			return
		}
		goruntime.UnlockOSThread()
		result <- fnErr
	}()
	return <-result
}
