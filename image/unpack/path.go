package unpack

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// errEscape is wrapped in the per-entry error so callers can tell a hostile
// layer apart from an I/O failure with errors.Is.
var errEscape = errors.New("path escapes the layer directory")

// cleanName normalises a tar entry name to a relative, slash-separated path.
// A leading "/" is stripped as GNU tar does, but ".." that still climbs above
// the root afterwards is refused rather than silently clamped, because a
// layer producing such names is either broken or hostile.
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errEscape
	}
	return p, nil
}

// resolveHow resolves every path as if dir were "/": symlinks in the layer
// (absolute or full of "..") are clamped to dir, exactly as they will be
// interpreted inside the container, so no step can leave dir.
var resolveHow = unix.OpenHow{
	Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
}

// openDir opens directory p (relative to rootfd) confined to the root. With
// create, missing ancestors are made with mode 0755 because layers are not
// required to carry entries for every parent directory.
func openDir(rootfd int, p string, create bool) (int, error) {
	for attempt := 0; ; attempt++ {
		how := resolveHow
		fd, err := unix.Openat2(rootfd, p, &how)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR || (err == unix.EAGAIN && attempt < 16):
			// EAGAIN means a concurrent rename raced the resolution; the
			// kernel asks us to retry.
			continue
		case err == unix.ENOENT && create && p != "." && attempt == 0:
			pfd, perr := openDir(rootfd, path.Dir(p), true)
			if perr != nil {
				return -1, perr
			}
			merr := unix.Mkdirat(pfd, path.Base(p), 0o755)
			unix.Close(pfd)
			if merr != nil && merr != unix.EEXIST {
				return -1, &os.PathError{Op: "mkdirat", Path: p, Err: merr}
			}
			// EEXIST here is typically a dangling symlink; the retry
			// reports it as ENOENT.
			continue
		default:
			return -1, &os.PathError{Op: "openat2", Path: p, Err: err}
		}
	}
}

// removeAt deletes name in dirfd, recursing into directories without ever
// following symlinks, so that a later entry can replace an earlier one.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return &os.PathError{Op: "unlinkat", Path: name, Err: err}
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	// Read every name before unlinking any: deleting while iterating lets
	// some filesystems reshuffle the directory and skip entries.
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read dir %s: %w", name, err)
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}
