package rootcopy

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// opaqueXattr marks a directory of a layer whose lower layers' content is
// hidden (image/unpack writes the OCI ".wh..wh..opq" marker as this).
const opaqueXattr = "trusted.overlay.opaque"

// node is one name of the merged view: where it comes from (the topmost
// layer that has it) and, for a directory, every layer directory whose
// entries merge into it, top first.
type node struct {
	name string
	path string // in the topmost layer that has the name
	st   unix.Stat_t
	// dirs, for a directory: path and the same directory in lower layers
	// down to the first opaque one or the first layer where the name is
	// not a directory (a file or a whiteout ends the merge, as in
	// overlayfs' lookup).
	dirs []string
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// isWhiteout is overlayfs' whiteout: a character device 0/0.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque reports the opaque marker on a layer's directory.
func isOpaque(dir string) (bool, error) {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(dir, opaqueXattr, buf)
	switch {
	case err == nil:
		return n == 1 && buf[0] == 'y', nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return false, nil
	}
	return false, &os.PathError{Op: "getxattr " + opaqueXattr, Path: dir, Err: err}
}

// rootNode is the merged root: the top layer's root directory merged with
// every layer's until an opaque one.
func rootNode(layers []string) (*node, error) {
	if len(layers) == 0 {
		return nil, errors.New("image has no layers")
	}
	n := &node{name: ".", path: layers[0]}
	if err := unix.Lstat(layers[0], &n.st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: layers[0], Err: err}
	}
	for _, l := range layers {
		n.dirs = append(n.dirs, l)
		if opaque, err := isOpaque(l); err != nil || opaque {
			return n, err
		}
	}
	return n, nil
}

// children lists the merged directory dir as overlayfs shows it: each name
// from the topmost of dir.dirs that has it, whiteouts hiding the name below
// them and shown nowhere. The order is the layers' readdir order.
func children(dir *node) ([]*node, error) {
	var out []*node
	seen := map[string]bool{}
	for i, d := range dir.dirs {
		names, err := readNames(d)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if seen[name] {
				continue
			}
			seen[name] = true
			n := &node{name: name, path: filepath.Join(d, name)}
			if err := unix.Lstat(n.path, &n.st); err != nil {
				return nil, &os.PathError{Op: "lstat", Path: n.path, Err: err}
			}
			if isWhiteout(&n.st) {
				continue
			}
			if isDir(&n.st) {
				if n.dirs, err = mergedDirs(n.path, dir.dirs[i+1:], name); err != nil {
					return nil, err
				}
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// mergedDirs is top followed by the directories named name in lower (the
// parent's lower layer directories), as far as they merge.
func mergedDirs(top string, lower []string, name string) ([]string, error) {
	dirs := []string{top}
	opaque, err := isOpaque(top)
	if err != nil || opaque {
		return dirs, err
	}
	for _, l := range lower {
		p := filepath.Join(l, name)
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if !isDir(&st) {
			break // a file or a whiteout hides the rest
		}
		dirs = append(dirs, p)
		if opaque, err := isOpaque(p); err != nil || opaque {
			return dirs, err
		}
	}
	return dirs, nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
