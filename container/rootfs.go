package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A container's writable layer lives in its persistent directory, so that it
// survives daemon restarts and reboots (kubelet may restart a container and
// expects nothing, but crictl users do); the mountpoint is volatile.
func (m *Manager) upperDir(id string) string { return filepath.Join(m.store.dir(id), "fs", "upper") }
func (m *Manager) workDir(id string) string  { return filepath.Join(m.store.dir(id), "fs", "work") }
func (m *Manager) rootfsDir(id string) string {
	return filepath.Join(m.stateDir, "containers", id, "rootfs")
}

// maxMountData is the kernel's limit for mount(2)'s data argument (a page).
const maxMountData = 4095

// overlayData renders the overlay mount options. lower is top layer first.
func overlayData(lower []string, upper, work string) (string, error) {
	if len(lower) == 0 {
		return "", errors.New("image has no layers")
	}
	for _, p := range append(append([]string{}, lower...), upper, work) {
		// overlayfs splits options on ',' and lowerdir on ':'; crisp's
		// own paths never contain them, but a root configured with them
		// must fail clearly instead of mounting something else.
		if strings.ContainsAny(p, ",:") {
			return "", fmt.Errorf("overlay path %q contains ',' or ':'", p)
		}
	}
	data := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(data) > maxMountData {
		return "", fmt.Errorf("overlay mount options for %d layers are %d bytes, over the kernel's %d", len(lower), len(data), maxMountData)
	}
	return data, nil
}

// mountRootfs mounts the container's overlay at target, creating the upper
// and work directories. Mounting an already mounted target is a no-op, so
// start-up can call it for every container.
func (m *Manager) mountRootfs(id string, lower []string, target string) error {
	upper, work := m.upperDir(id), m.workDir(id)
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if mounted(target) {
		return nil
	}
	data, err := overlayData(lower, upper, work)
	if err != nil {
		return err
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount rootfs overlay at %s: %w", target, err)
	}
	return nil
}

// unmountRootfs unmounts the overlay (and anything below it) and removes
// the mountpoint's directories. Not mounted is fine.
func (m *Manager) unmountRootfs(id, target string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Unmount(target, 0)
		if err == nil && mounted(target) {
			continue // stacked mounts: unmount the next one
		}
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			err = nil
			break
		}
		if err != unix.EBUSY {
			break
		}
		// A process that is exiting may still hold it for a moment.
		time.Sleep(20 * time.Millisecond)
	}
	if err == unix.EBUSY {
		// Lazy: kubelet must be able to remove the container; the mount
		// goes once its last user does.
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount rootfs %s: %w", target, err)
	}
	if err := os.RemoveAll(filepath.Dir(target)); err != nil {
		return err
	}
	return nil
}

// mounted reports whether p is a mountpoint: its device differs from its
// parent's. Overlay mounts always get a device of their own.
func mounted(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
