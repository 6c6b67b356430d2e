// Package idmap makes idmapped bind mounts: mounts through which file
// ownership is translated by a user namespace's mapping (mount_setattr with
// MOUNT_ATTR_IDMAP, Linux 5.12; overlayfs accepts such mounts as layers since
// 5.19). A pod with its own user namespace sees image layers owned by its own
// root this way, without a chown'ed copy of the image.
package idmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Bind mounts src at dst, an existing directory, with on-disk ids read as ids
// of userns: a file owned by 0 appears owned by the host id that userns maps
// 0 to. The mount is not recursive; submounts of src are not carried over.
func Bind(src, dst string, userns *os.File) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open_tree", Path: src, Err: err}
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("idmap %s: the filesystem does not support idmapped mounts on this kernel: %w", src, err)
		}
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach idmapped mount of %s at %s: %w", src, dst, err)
	}
	return nil
}

// BindLayers binds each of dirs idmapped at scratch/<index> and returns those
// paths, in order, for an overlay's lowerdir. The caller mounts the overlay
// and then calls release: overlayfs keeps private clones of its layers, so
// the binds and scratch are only needed while it mounts. release is safe to
// call on error paths and more than once.
func BindLayers(dirs []string, scratch string, userns *os.File) (paths []string, release func() error, err error) {
	release = func() error { return Release(scratch) }
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, release, err
	}
	for i, d := range dirs {
		p := filepath.Join(scratch, strconv.Itoa(i))
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, release, err
		}
		if err := Bind(d, p, userns); err != nil {
			return nil, release, errors.Join(err, release())
		}
		paths = append(paths, p)
	}
	return paths, release, nil
}

// Release detaches whatever BindLayers left under scratch and removes it;
// start-up calls it for the scratch of a create a crash interrupted.
func Release(scratch string) error {
	entries, err := os.ReadDir(scratch)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(scratch, e.Name())
		// Detached, not unmounted: a concurrent reader of the mount
		// table must not make this fail, and nothing writes through it.
		if err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(scratch); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
