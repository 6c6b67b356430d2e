// Package unpack extracts OCI image layers into directories that are used
// directly as overlayfs lower directories.
package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

// bufPool amortises the copy buffer across files and concurrent layer pulls;
// 128 KiB is large enough that syscall overhead stops mattering.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// Apply extracts an (uncompressed) OCI layer tar stream into dir, which must be an empty
// directory, converting OCI whiteouts to overlayfs form so dir can be an overlayfs lowerdir.
// It returns the total bytes of regular file content written.
func Apply(ctx context.Context, r io.Reader, dir string, lim Limits) (int64, error) {
	root, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	// An earlier entry may legitimately be replaced by a later one, but
	// anything the layer did not create must never be touched, hence empty.
	if names, err := root.Readdirnames(1); err != nil && err != io.EOF {
		return 0, fmt.Errorf("read %s: %w", dir, err)
	} else if len(names) > 0 {
		return 0, fmt.Errorf("apply layer: %s is not empty", dir)
	}

	a := &applier{root: int(root.Fd()), dirIdx: map[string]int{}}
	r = &limitedReader{r: r, max: lim.MaxBytes}
	tr := tar.NewReader(r)
	var entries int
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return a.written, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.written, fmt.Errorf("read layer tar: %w", err)
		}
		if entries++; lim.MaxEntries > 0 && entries > lim.MaxEntries {
			return a.written, tooLarge("more than %d entries (max_layer_entries)", lim.MaxEntries)
		}
		if isRegular(hdr) {
			if size += hdr.Size; lim.MaxBytes > 0 && size > lim.MaxBytes {
				return a.written, tooLarge("files of more than %d bytes in all, sparse ones at full size (max_layer_bytes)", lim.MaxBytes)
			}
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.written, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	if err := a.applyDirTimes(); err != nil {
		return a.written, err
	}
	// The tar end marker can precede the end of the stream (padding); the
	// caller usually digests r as it is read, so consume it fully.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return a.written, fmt.Errorf("read layer tar: %w", err)
	}
	return a.written, nil
}

// Limits bound what one layer may unpack to, against layers made to
// exhaust a node (a small compressed stream that expands to terabytes, or
// millions of files that use up inodes). Zero fields are unbounded.
type Limits struct {
	// MaxBytes bounds both the uncompressed stream and the sum of its
	// files' sizes (a sparse file counts at its full size: the tar reader
	// expands it, and reading the zeros takes as long as writing them).
	MaxBytes int64
	// MaxEntries bounds the tar entries.
	MaxEntries int
}

// tooLarge is a layer over a limit: ResourceExhausted, naming the setting.
func tooLarge(format string, args ...any) error {
	return fmt.Errorf("layer over its limit: %s: %w", fmt.Sprintf(format, args...), errdefs.ErrResourceExhausted)
}

// limitedReader fails once more than max bytes were read (max 0: never).
type limitedReader struct {
	r         io.Reader
	read, max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.max > 0 && l.read > l.max {
		return n, tooLarge("more than %d uncompressed bytes (max_layer_bytes)", l.max)
	}
	return n, err
}

type dirTime struct {
	name string
	ts   [2]unix.Timespec
}

type applier struct {
	root    int
	written int64
	// Directory times are applied last because creating children updates
	// the parent's mtime; dirIdx lets a duplicate entry overwrite the
	// recorded time in place.
	dirTimes []dirTime
	dirIdx   map[string]int
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	parent, base := path.Dir(name), path.Base(name)
	if isAufsMeta(name) {
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(parent, base)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return errors.New("layer root must be a directory")
	}

	var target string
	if hdr.Typeflag == tar.TypeLink {
		if target, err = cleanName(hdr.Linkname); err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if target == name {
			// Some tools emit a file as a link to itself; it already exists.
			return nil
		}
	}

	pfd, err := openDir(a.root, parent, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	var st unix.Stat_t
	err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
	case err != nil:
		return &os.PathError{Op: "fstatat", Path: name, Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR && hdr.Typeflag == tar.TypeDir:
		// A repeated directory entry only updates metadata; its
		// children from earlier entries stay.
	default:
		if err := removeAt(pfd, base); err != nil {
			return err
		}
	}

	switch {
	case isRegular(hdr):
		return a.regular(pfd, base, hdr, tr)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.directory(pfd, name, hdr)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return &os.PathError{Op: "symlinkat", Path: name, Err: err}
		}
		return setPathMeta(pfd, base, hdr, false)
	case tar.TypeLink:
		return a.hardlink(pfd, base, target)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			mode = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, mode|0o600, dev); err != nil {
			return &os.PathError{Op: "mknodat", Path: name, Err: err}
		}
		return setPathMeta(pfd, base, hdr, true)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

// isRegular: the tar reader expands sparse files, but old-GNU ones keep
// their own type flag.
func isRegular(hdr *tar.Header) bool {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return true
	}
	return false
}

func (a *applier) regular(pfd int, base string, hdr *tar.Header, tr io.Reader) error {
	// O_EXCL|O_NOFOLLOW: any previous entry was removed above, so an
	// existing name here can only be a race and must not be followed.
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "openat", Path: base, Err: err}
	}
	f := os.NewFile(uintptr(fd), base)
	bufp := bufPool.Get().(*[]byte)
	// The wrappers hide ReadFrom/WriteTo so the pooled buffer is actually
	// used instead of a fresh 32 KiB allocation per file.
	w := &holeWriter{fd: fd}
	n, err := io.CopyBuffer(w, struct{ io.Reader }{tr}, *bufp)
	bufPool.Put(bufp)
	a.written += n
	if err == nil {
		err = w.finish()
	}
	if err == nil {
		err = setFdMeta(fd, hdr)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (a *applier) directory(pfd int, name string, hdr *tar.Header) error {
	base := path.Base(name)
	// 0700 until the real mode is applied, so the directory is never
	// briefly more permissive than the layer says.
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
		return &os.PathError{Op: "mkdirat", Path: name, Err: err}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	err = setFdMeta(fd, hdr)
	unix.Close(fd)
	if err != nil {
		return err
	}
	dt := dirTime{name: name, ts: timespecs(hdr)}
	if i, ok := a.dirIdx[name]; ok {
		a.dirTimes[i] = dt
	} else {
		a.dirIdx[name] = len(a.dirTimes)
		a.dirTimes = append(a.dirTimes, dt)
	}
	return nil
}

// hardlink links to an entry extracted earlier from this same layer. The
// target is resolved inside the root, so "/etc/passwd" means the layer's own
// file, and one that does not exist yet is an error.
func (a *applier) hardlink(pfd int, base, target string) error {
	tfd, err := openDir(a.root, path.Dir(target), false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	defer unix.Close(tfd)
	// No AT_SYMLINK_FOLLOW: linking to a symlink links the symlink itself,
	// as tar does, rather than whatever it points to.
	if err := unix.Linkat(tfd, path.Base(target), pfd, base, 0); err != nil {
		return &os.LinkError{Op: "linkat", Old: target, New: base, Err: err}
	}
	// The inode, and so its metadata, is shared with the target entry.
	return nil
}

func (a *applier) applyDirTimes() error {
	for i := len(a.dirTimes) - 1; i >= 0; i-- {
		dt := a.dirTimes[i]
		pfd, err := openDir(a.root, path.Dir(dt.name), false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue // replaced by a later entry
		}
		if err != nil {
			return fmt.Errorf("layer entry %q: %w", dt.name, err)
		}
		base := path.Base(dt.name)
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.UtimesNanoAt(pfd, base, dt.ts[:], unix.AT_SYMLINK_NOFOLLOW)
			if err != nil {
				unix.Close(pfd)
				return fmt.Errorf("layer entry %q: utimensat: %w", dt.name, err)
			}
		}
		unix.Close(pfd)
	}
	return nil
}

// setFdMeta applies ownership, mode and xattrs in that order: chown clears
// setuid/setgid and security.capability, so both must come after it.
func setFdMeta(fd int, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("fchown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if err := unix.Fchmod(fd, perm(hdr)); err != nil {
		return fmt.Errorf("fchmod: %w", err)
	}
	return setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

// setPathMeta is for entries that cannot be opened for writing (symlinks,
// devices, fifos). base was just created by us in pfd, so the non-following
// *at calls act on exactly that inode.
func setPathMeta(pfd int, base string, hdr *tar.Header, chmod bool) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lchown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	// Symlink permissions are meaningless on Linux and cannot be changed.
	if chmod {
		if err := unix.Fchmodat(pfd, base, perm(hdr), 0); err != nil {
			return fmt.Errorf("fchmodat: %w", err)
		}
	}
	// /proc/self/fd/N is the already-confined parent; lsetxattr does not
	// follow the final component.
	p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	ts := timespecs(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimensat: %w", err)
	}
	return nil
}

func perm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// timespecs avoids UnixNano, which overflows outside 1678..2262 and such
// timestamps do occur in layers.
func timespecs(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{ts(atime), ts(hdr.ModTime)}
}

func ts(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
