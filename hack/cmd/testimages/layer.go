package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one tar entry of a layer being built.
type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	data     []byte // regular file content, or nil when src is set
	src      string // host file to read the content from
	link     string // symlink target or hard-link target (layer path)
	// xattrs become PAX SCHILY.xattr records; major and minor are a
	// device node's numbers.
	xattrs       map[string]string
	major, minor int64
}

// layerFS describes the content of one layer. Paths are absolute inside the
// image ("/bin/sh"). Missing parent directories are added (0755, root).
// The produced tar is deterministic: fixed mtime, root ownership unless
// given, entries sorted by path with hard links last (after their targets).
type layerFS struct {
	desc    string // used as the history "created_by"
	entries map[string]*entry
}

func newLayer(desc string) *layerFS {
	return &layerFS{desc: desc, entries: map[string]*entry{}}
}

func clean(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

func (l *layerFS) put(p string, e *entry) { l.entries[clean(p)] = e }

func (l *layerFS) Dir(p string, mode int64) { l.put(p, &entry{typ: tar.TypeDir, mode: mode}) }

func (l *layerFS) DirOwned(p string, mode int64, uid, gid int) {
	l.put(p, &entry{typ: tar.TypeDir, mode: mode, uid: uid, gid: gid})
}

func (l *layerFS) File(p string, mode int64, data string) {
	l.put(p, &entry{typ: tar.TypeReg, mode: mode, data: []byte(data)})
}

func (l *layerFS) FileBytes(p string, mode int64, data []byte) {
	l.put(p, &entry{typ: tar.TypeReg, mode: mode, data: data})
}

func (l *layerFS) FileFrom(p string, mode int64, src string) {
	l.put(p, &entry{typ: tar.TypeReg, mode: mode, src: src})
}

func (l *layerFS) Symlink(p, target string) {
	l.put(p, &entry{typ: tar.TypeSymlink, mode: 0o777, link: target})
}

// Hardlink adds p as a hard link to target (a path in this same layer).
func (l *layerFS) Hardlink(p, target string) {
	l.put(p, &entry{typ: tar.TypeLink, mode: 0o755, link: clean(target)})
}

// FileOwned adds a regular file with an owner other than root.
func (l *layerFS) FileOwned(p string, mode int64, uid, gid int, data string) {
	l.put(p, &entry{typ: tar.TypeReg, mode: mode, uid: uid, gid: gid, data: []byte(data)})
}

// Node adds a device node or fifo (typ tar.TypeChar, TypeBlock, TypeFifo).
func (l *layerFS) Node(p string, typ byte, mode, major, minor int64) {
	l.put(p, &entry{typ: typ, mode: mode, major: major, minor: minor})
}

// Xattr sets an extended attribute on the entry p, which must exist.
func (l *layerFS) Xattr(p, name, value string) {
	e := l.entries[clean(p)]
	if e.xattrs == nil {
		e.xattrs = map[string]string{}
	}
	e.xattrs[name] = value
}

// Whiteout deletes p (from lower layers).
func (l *layerFS) Whiteout(p string) {
	p = clean(p)
	l.File(path.Join(path.Dir(p), ".wh."+path.Base(p)), 0o644, "")
}

// Opaque hides the lower layers' content of directory dir.
func (l *layerFS) Opaque(dir string) {
	l.Dir(dir, 0o755)
	l.File(path.Join(clean(dir), ".wh..wh..opq"), 0o644, "")
}

// AddTree copies a host directory tree (e.g. an extracted .deb) into the
// layer, keeping modes but not ownership or times. Only paths below one of
// the include prefixes (relative, e.g. "usr/lib/") are taken.
func (l *layerFS) AddTree(root string, include ...string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		ok := false
		for _, inc := range include {
			if strings.HasPrefix(rel+"/", inc) || strings.HasPrefix(inc, rel+"/") {
				ok = true
				break
			}
		}
		if !ok {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		mode := int64(fi.Mode().Perm())
		if fi.Mode()&fs.ModeSetuid != 0 {
			mode |= 0o4000
		}
		if fi.Mode()&fs.ModeSetgid != 0 {
			mode |= 0o2000
		}
		if fi.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		switch {
		case fi.IsDir():
			// Directories that are only on the way to an include prefix
			// are still added, with their real mode.
			l.Dir(rel, mode)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			l.Symlink(rel, t)
		case fi.Mode().IsRegular():
			l.FileFrom(rel, mode, p)
		}
		return nil
	})
}

// Tar renders the layer as an uncompressed, deterministic tar stream.
func (l *layerFS) Tar() ([]byte, error) {
	// Add missing parent directories.
	for p := range l.entries {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := l.entries[d]; !ok {
				l.entries[d] = &entry{typ: tar.TypeDir, mode: 0o755}
			}
		}
	}
	var names, links []string
	for p, e := range l.entries {
		if e.typ == tar.TypeLink {
			links = append(links, p)
		} else {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	sort.Strings(links)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range append(names, links...) {
		e := l.entries[p]
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     p,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
			Devmajor: e.major,
			Devminor: e.minor,
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		var data []byte
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.link
			if e.typ == tar.TypeLink {
				if t, ok := l.entries[e.link]; !ok || t.typ != tar.TypeReg {
					return nil, fmt.Errorf("hard link %s -> %s: target is not a regular file of this layer", p, e.link)
				}
				h.Mode = l.entries[e.link].mode
			}
		case tar.TypeReg:
			data = e.data
			if e.src != "" {
				b, err := os.ReadFile(e.src)
				if err != nil {
					return nil, err
				}
				data = b
			}
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if len(data) > 0 {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blob is a built, gzip-compressed layer stored in the cache.
type blob struct {
	desc   string
	file   string // <cache>/layers/<diffid>.tar.gz
	diffID string

	mu     sync.Mutex
	layers map[types.MediaType]v1.Layer
}

// Layer returns the blob as a v1.Layer with the given media type.
func (b *blob) Layer(mt types.MediaType) (v1.Layer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.layers[mt]; ok {
		return l, nil
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(b.file) }, tarball.WithMediaType(mt))
	if err != nil {
		return nil, err
	}
	if b.layers == nil {
		b.layers = map[types.MediaType]v1.Layer{}
	}
	b.layers[mt] = l
	return l, nil
}

// Build renders l and stores it gzip-compressed in the layer cache, keyed by
// its diffID (sha256 of the uncompressed tar), so compression happens once.
func (l *layerFS) Build(cacheDir string) (*blob, error) {
	raw, err := l.Tar()
	if err != nil {
		return nil, fmt.Errorf("layer %q: %w", l.desc, err)
	}
	return storeBlob(cacheDir, l.desc, raw)
}

func storeBlob(cacheDir, desc string, raw []byte) (*blob, error) {
	sum := sha256.Sum256(raw)
	diffID := hex.EncodeToString(sum[:])
	dir := filepath.Join(cacheDir, "layers")
	file := filepath.Join(dir, diffID+".tar.gz")
	if _, err := os.Stat(file); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
		if _, err := zw.Write(raw); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, gz.Bytes(), 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, file); err != nil {
			return nil, err
		}
	}
	return &blob{desc: desc, file: file, diffID: "sha256:" + diffID}, nil
}
