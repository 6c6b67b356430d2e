package spec

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// probeRecursiveReadOnly checks that mount_setattr can make a mount tree
// read-only, which is how libcontainer applies the "rro" option. A kernel
// version check is not enough: seccomp filters and backports make the
// syscall's presence the only reliable answer. The probe works on a
// detached tmpfs, so it leaves nothing in any mount table.
func probeRecursiveReadOnly() error {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount tmpfs: %w", err)
	}
	defer unix.Close(mfd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}
