package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// shmSize is Docker's and kubelet's default /dev/shm size.
const shmSize = 64 << 20

// hostShm is what host IPC pods share.
const hostShm = "/dev/shm"

// mountShm gives the pod the /dev/shm its containers share. POSIX shared
// memory belongs with the IPC namespace, so a pod with its own IPC
// namespace gets its own tmpfs, owned by the pod's root when the pod has
// its own user namespace.
func mountShm(path string, ns NamespaceOptions) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=1777,size=%d", shmSize)
	if uid, gid, ok := ns.RootIDs(); ok {
		opts += fmt.Sprintf(",uid=%d,gid=%d", uid, gid)
	}
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount pod shm at %s: %w", path, err)
	}
	return nil
}

func unmountShm(path string) error {
	if err := unmount(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
