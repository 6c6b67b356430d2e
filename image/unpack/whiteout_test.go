package unpack

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 && st.Uid == 0 && st.Gid == 0
}

func TestApplyWhiteouts(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		entries []entry
		path    string
	}{
		{"top level", []entry{file(".wh.gone", "")}, "gone"},
		{"in existing dir", []entry{dir("etc"), file("etc/.wh.hosts", "")}, "etc/hosts"},
		{"parent implied", []entry{file("usr/share/.wh.doc", "")}, "usr/share/doc"},
		{"dotted name", []entry{file(".wh..bashrc", "")}, ".bashrc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustApply(t, tt.entries...)
			if st := lstat(t, filepath.Join(d, tt.path)); !isWhiteout(st) {
				t.Errorf("%s is not a 0:0 char device (mode %o rdev %d)", tt.path, st.Mode, st.Rdev)
			}
			// The marker itself must never be materialised.
			matches, _ := filepath.Glob(filepath.Join(d, "*", ".wh.*"))
			top, _ := filepath.Glob(filepath.Join(d, ".wh.*"))
			if len(matches)+len(top) > 0 {
				t.Errorf("whiteout marker files left behind: %v %v", matches, top)
			}
		})
	}
}

func TestApplyOpaqueDir(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		entries []entry
		dir     string
	}{
		{"after dir entry", []entry{dir("d"), file("d/.wh..wh..opq", ""), file("d/new", "x")}, "d"},
		{"dir implied", []entry{file("a/b/.wh..wh..opq", "")}, "a/b"},
		{"root", []entry{file(".wh..wh..opq", "")}, "."},
		{"dir entry after marker keeps it", []entry{file("d/.wh..wh..opq", ""), dir("d")}, "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustApply(t, tt.entries...)
			buf := make([]byte, 8)
			n, err := unix.Lgetxattr(filepath.Join(d, tt.dir), overlayOpaqueXattr, buf)
			if errors.Is(err, unix.ENOTSUP) {
				t.Skip("test filesystem does not support trusted.* xattrs")
			}
			if err != nil || string(buf[:n]) != "y" {
				t.Fatalf("%s = %q, %v; want y", overlayOpaqueXattr, buf[:max(n, 0)], err)
			}
			if st := lstat(t, filepath.Join(d, tt.dir)); st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("%s is not a directory", tt.dir)
			}
		})
	}
}

func TestApplyIgnoresAufsMetadata(t *testing.T) {
	d := mustApply(t, file(".wh..wh.plnk/1234.5", ""), file("a", "x"))
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(d, ".wh..wh.plnk"), &st); err == nil {
		t.Error("AUFS metadata materialised")
	}
}
