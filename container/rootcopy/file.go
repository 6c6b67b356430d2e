package rootcopy

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Methods of copying file content, fastest first; Stats.Method reports the
// slowest one a copy needed.
const (
	MethodReflink   = "reflink"         // FICLONE: XFS, btrfs; shares extents
	MethodCopyRange = "copy_file_range" // in-kernel copy (ext4 and others)
	MethodReadWrite = "read/write"      // through user space (another filesystem, old kernel)
)

// dataCopier copies file content, remembering which method the
// filesystem refused so that it is not asked again for every file.
type dataCopier struct {
	noReflink, noCopyRange atomic.Bool
	usedReflink            atomic.Bool
	usedCopyRange          atomic.Bool
	usedReadWrite          atomic.Bool
}

func (c *dataCopier) method() string {
	switch {
	case c.usedReadWrite.Load():
		return MethodReadWrite
	case c.usedCopyRange.Load():
		return MethodCopyRange
	case c.usedReflink.Load():
		return MethodReflink
	}
	return "" // no content to copy
}

// unsupported are the errors of a method the filesystems at hand do not
// offer (as opposed to a failed copy).
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
}

// copyData gives dst (empty) the content of src, size bytes. A reflink
// shares every extent and keeps holes; otherwise a file with fewer blocks
// than its size is copied extent by extent (SEEK_DATA), so holes stay
// holes, and the end is set by truncate.
func (c *dataCopier) copyData(dst, src *os.File, size int64, sparse bool) error {
	if size == 0 {
		return nil
	}
	if !c.noReflink.Load() {
		err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
		if err == nil {
			c.usedReflink.Store(true)
			return nil
		}
		if !unsupported(err) {
			return &os.PathError{Op: "ficlone", Path: dst.Name(), Err: err}
		}
		c.noReflink.Store(true)
	}
	if !sparse {
		return c.copyRange(dst, src, 0, size)
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(src.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return &os.PathError{Op: "seek data", Path: src.Name(), Err: err}
		}
		hole, err := unix.Seek(int(src.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return &os.PathError{Op: "seek hole", Path: src.Name(), Err: err}
		}
		hole = min(hole, size)
		if err := c.copyRange(dst, src, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	return nil
}

// copyRange copies n bytes at off from src to the same offset in dst.
func (c *dataCopier) copyRange(dst, src *os.File, off, n int64) error {
	end := off + n
	if !c.noCopyRange.Load() {
		roff, woff := off, off
		for roff < end {
			k, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(end-roff), 0)
			if err != nil && roff == off && unsupported(err) {
				c.noCopyRange.Store(true)
				break
			}
			if err != nil {
				return &os.PathError{Op: "copy_file_range", Path: dst.Name(), Err: err}
			}
			if k == 0 {
				return &os.PathError{Op: "copy_file_range", Path: src.Name(), Err: io.ErrUnexpectedEOF}
			}
		}
		if roff == end {
			c.usedCopyRange.Store(true)
			return nil
		}
	}
	c.usedReadWrite.Store(true)
	buf := make([]byte, min(n, 1<<20))
	for off < end {
		k, err := src.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if k > 0 {
			if _, werr := dst.WriteAt(buf[:k], off); werr != nil {
				return werr
			}
			off += int64(k)
		}
		if err != nil && off < end {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// xattrs lists the extended attributes of p (not following a symlink),
// without overlayfs' own: the merged view hides those.
func xattrs(p string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || size == 0 {
		return nil, pathErr("listxattr", p, err)
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, pathErr("listxattr", p, err)
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		n, err := unix.Lgetxattr(p, name, nil)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, pathErr("getxattr "+name, p, err)
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(p, name, v); err != nil {
			return nil, pathErr("getxattr "+name, p, err)
		}
		out[name] = v[:n]
	}
	return out, nil
}

func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: p, Err: err}
}

// setMeta gives dst (created by this package, not following a symlink)
// src's owner, mode, extended attributes and times, in the order that
// keeps each: chown clears setuid bits and file capabilities, so mode
// and xattrs follow it; times go last.
func setMeta(dst string, st *unix.Stat_t, attrs map[string][]byte) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return pathErr("lchown", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return pathErr("chmod", dst, err)
		}
	}
	for name, v := range attrs {
		if err := unix.Lsetxattr(dst, name, v, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			// ENOTSUP: a namespace this filesystem lacks (the
			// layers' may have it); unpacking skips those too.
			return pathErr("setxattr "+name, dst, err)
		}
	}
	return setTimes(dst, st)
}

func setTimes(dst string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return pathErr("utimensat", dst, unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW))
}
