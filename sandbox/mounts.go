package sandbox

import (
	"errors"
	"fmt"
	"os"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// makeSharedMountpoint turns dir into a mount point of its own shared peer
// group, as iproute2 does for /run/netns. Pin files and shm mounts made below
// it are copied into every mount namespace created later (containers'); being
// shared, the unmount at Stop propagates into those copies too, so no copy
// keeps a pod's namespace or tmpfs alive after the pod is gone.
func makeSharedMountpoint(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return err
	}
	if !mounted {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
	}
	// Private first: a fresh peer group, so pods' mounts do not also show up
	// in whatever mount the state dir sits on.
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// unmount detaches whatever is mounted on path; nothing mounted, or no path
// at all (the state dir was a tmpfs and the node rebooted), is success.
func unmount(path string) error {
	for {
		err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			// Stacked mounts (a crash between mount and record) need
			// several rounds.
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			// Someone has it open; detach now and let the kernel free
			// it when they are done: the pod is going away regardless.
			if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", path, err)
			}
			continue
		default:
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
}
