// Package rootcopy makes a container's native root: a plain directory that
// holds what an overlay of the image's layers would show (whiteouts and
// opaque directories resolved as overlayfs resolves them), with owners,
// modes, extended attributes, hard links, symlinks, device nodes, fifos,
// times and holes as they are in the layers. Small-file work in a plain
// directory costs what it costs on the host; in an overlay every operation
// runs through the VFS twice (README "Root filesystem speed").
//
// File content is cloned where the filesystem can (FICLONE: XFS, btrfs; a
// copy then costs metadata only) and copied in the kernel otherwise
// (copy_file_range: ext4). It must run as root: it creates files of any
// owner, device nodes and trusted.* attributes.
package rootcopy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Stats describe a finished copy.
type Stats struct {
	Dirs, Files, Symlinks, Others int64
	// HardLinks counts names made as links to a file copied before.
	HardLinks int64
	// Bytes is the size of the regular files' content (holes included).
	Bytes int64
	// Method is the slowest way of copying content a file needed ("" when
	// no file had any).
	Method   string
	Duration time.Duration
}

// Workers is how many files are copied at once. The walk (directories,
// links, small metadata) is one goroutine; content and metadata of regular
// files are spread over these, which mostly overlaps the syscalls of one
// file with another's.
var Workers = 4

type devIno struct{ dev, ino uint64 }

type job struct {
	src, dst string
	st       unix.Stat_t
	attrs    map[string][]byte
}

type copier struct {
	ctx   context.Context
	data  dataCopier
	links map[devIno]string // the first name copied of each multiply linked inode
	jobs  chan job
	stats Stats
}

// Copy creates dst (which must not exist) as the merged view of layers
// (top layer first, as overlayfs' lowerdir lists them). On error dst is
// left as far as it got: the caller removes it.
func Copy(ctx context.Context, layers []string, dst string) (Stats, error) {
	start := time.Now()
	root, err := rootNode(layers)
	if err != nil {
		return Stats{}, err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return Stats{}, err
	}
	attrs, err := xattrs(root.path)
	if err != nil {
		return Stats{}, err
	}
	if err := setMeta(dst, &root.st, attrs); err != nil {
		return Stats{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &copier{ctx: ctx, links: map[devIno]string{}, jobs: make(chan job, 256)}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for range max(Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range c.jobs {
				if ctx.Err() != nil {
					continue // drain: the walk stops at its next entry
				}
				if err := c.file(j); err != nil {
					fail(err)
				}
			}
		}()
	}
	if err := c.dir(root, dst); err != nil {
		fail(err)
	}
	close(c.jobs)
	wg.Wait()
	if firstErr != nil {
		return c.stats, firstErr
	}
	c.stats.Dirs++ // the root
	c.stats.Method = c.data.method()
	c.stats.Duration = time.Since(start)
	return c.stats, nil
}

// dir copies the entries of the merged directory n into dst, which exists,
// and then gives dst n's times (creating entries changed them).
func (c *copier) dir(n *node, dst string) error {
	kids, err := children(n)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.entry(k, filepath.Join(dst, k.name)); err != nil {
			return err
		}
	}
	return setTimes(dst, &n.st)
}

func (c *copier) entry(n *node, dst string) error {
	typ := n.st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && n.st.Nlink > 1 {
		// Names of one inode in a layer are one inode in the copy; a
		// name hidden by an upper layer is not copied at all.
		key := devIno{n.st.Dev, n.st.Ino}
		if first, ok := c.links[key]; ok {
			c.stats.HardLinks++
			return pathErr("link", dst, unix.Link(first, dst))
		}
		c.links[key] = dst
	}
	attrs, err := xattrs(n.path)
	if err != nil {
		return err
	}
	switch typ {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		if err := setMeta(dst, &n.st, attrs); err != nil {
			return err
		}
		c.stats.Dirs++
		return c.dir(n, dst)
	case unix.S_IFREG:
		// Created here, so that hard links and the directory's times
		// need not wait for the content, which a worker copies.
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		c.stats.Files++
		c.stats.Bytes += n.st.Size
		select {
		case c.jobs <- job{src: n.path, dst: dst, st: n.st, attrs: attrs}:
			return nil
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(n.path)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		c.stats.Symlinks++
	default: // character and block devices, fifos, sockets
		if err := unix.Mknod(dst, n.st.Mode, int(n.st.Rdev)); err != nil {
			return pathErr("mknod", dst, err)
		}
		c.stats.Others++
	}
	return setMeta(dst, &n.st, attrs)
}

// file copies a regular file's content and then its metadata.
func (c *copier) file(j job) error {
	src, err := os.OpenFile(j.src, os.O_RDONLY|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		src, err = os.Open(j.src) // O_NOATIME needs the owner or CAP_FOWNER
	}
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(j.dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = c.data.copyData(dst, src, j.st.Size, j.st.Blocks*512 < j.st.Size)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setMeta(j.dst, &j.st, j.attrs)
}
