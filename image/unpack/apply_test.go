package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestApplyRegularFiles(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name     string
		mode     int64
		uid, gid int
	}{
		{"plain", 0o644, 0, 0},
		{"owned", 0o640, 1000, 2000},
		// Non-root owner proves chmod runs after chown, which clears setuid.
		{"setuid", 0o4755, 1000, 1000},
		{"setgid", 0o2755, 0, 50},
		{"sticky", 0o1755, 0, 0},
		{"noperm", 0o000, 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := file("bin/"+tt.name, "content of "+tt.name)
			e.Mode, e.Uid, e.Gid = tt.mode, tt.uid, tt.gid
			d, n, err := applyEntries(t, e)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(len(e.body)); n != want {
				t.Errorf("written = %d, want %d", n, want)
			}
			p := filepath.Join(d, "bin", tt.name)
			if got := readFile(t, p); got != e.body {
				t.Errorf("content = %q", got)
			}
			st := lstat(t, p)
			if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != uint32(tt.mode) {
				t.Errorf("mode = %o, want regular %o", st.Mode, tt.mode)
			}
			if int(st.Uid) != tt.uid || int(st.Gid) != tt.gid {
				t.Errorf("owner = %d:%d, want %d:%d", st.Uid, st.Gid, tt.uid, tt.gid)
			}
			if got := time.Unix(st.Mtim.Unix()); !got.Equal(epoch) {
				t.Errorf("mtime = %v, want %v", got, epoch)
			}
		})
	}
}

func TestApplyWrittenBytes(t *testing.T) {
	big := string(bytes.Repeat([]byte("x"), 300<<10)) // spans several pooled buffers
	_, n, err := applyEntries(t, file("a", "12345"), dir("d"), symlink("s", "a"), file("d/big", big), hardlink("h", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(5 + len(big)); n != want {
		t.Errorf("written = %d, want %d", n, want)
	}
}

func TestApplyDirMtimes(t *testing.T) {
	t1 := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	t2 := time.Date(2002, 2, 3, 4, 5, 6, 8, time.UTC)
	a, b := dir("a"), dir("a/b")
	a.ModTime, b.ModTime = t1, t2
	a.Mode = 0o1777
	d := mustApply(t, a, b, file("a/b/f", "x"), file("a/g", "y"), dir("a/b/c"), file("a/implicit/f", "z"))
	for p, want := range map[string]time.Time{"a": t1, "a/b": t2} {
		st := lstat(t, filepath.Join(d, p))
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
			t.Errorf("%s mtime = %v, want %v", p, got, want)
		}
	}
	if st := lstat(t, filepath.Join(d, "a")); st.Mode&0o7777 != 0o1777 {
		t.Errorf("a mode = %o, want 1777", st.Mode&0o7777)
	}
}

func TestApplySymlinks(t *testing.T) {
	requireRoot(t)
	mt := time.Date(2010, 1, 1, 0, 0, 0, 42, time.UTC)
	abs := symlink("abs", "/etc/passwd")
	abs.Uid, abs.Gid, abs.ModTime = 7, 8, mt
	d := mustApply(t, abs, symlink("rel", "../x/y"), symlink("dangling", "nowhere"), dir("dir"), symlink("dir/up", ".."))
	for name, want := range map[string]string{"abs": "/etc/passwd", "rel": "../x/y", "dangling": "nowhere", "dir/up": ".."} {
		got, err := os.Readlink(filepath.Join(d, name))
		if err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", name, got, err, want)
		}
	}
	st := lstat(t, filepath.Join(d, "abs"))
	if st.Uid != 7 || st.Gid != 8 {
		t.Errorf("symlink owner = %d:%d, want 7:8", st.Uid, st.Gid)
	}
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(mt) {
		t.Errorf("symlink mtime = %v, want %v", got, mt)
	}
}

func TestApplyHardLinks(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		link    string
	}{
		{"sibling", []entry{file("a", "data"), hardlink("b", "a")}, "b"},
		{"absolute target", []entry{file("a", "data"), hardlink("d/b", "/a")}, "d/b"},
		{"through dir", []entry{dir("x"), file("x/a", "data"), hardlink("b", "./x/a")}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustApply(t, tt.entries...)
			var src string
			for _, e := range tt.entries {
				if e.Typeflag == tar.TypeReg {
					src = e.Name
				}
			}
			s1, s2 := lstat(t, filepath.Join(d, src)), lstat(t, filepath.Join(d, tt.link))
			if s1.Ino != s2.Ino || s1.Nlink != 2 {
				t.Errorf("not hard linked: ino %d vs %d, nlink %d", s1.Ino, s2.Ino, s1.Nlink)
			}
		})
	}
	if _, _, err := applyEntries(t, hardlink("b", "missing")); err == nil {
		t.Error("hard link to a not-yet-extracted target succeeded")
	}
}

func TestApplyDevices(t *testing.T) {
	requireRoot(t)
	chr := entry{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	blk := entry{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loopx", Mode: 0o660, Gid: 6, Devmajor: 7, Devminor: 200}}
	fifo := entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o620, Uid: 5}}
	d := mustApply(t, chr, blk, fifo)
	for _, tt := range []struct {
		e    entry
		kind uint32
	}{{chr, unix.S_IFCHR}, {blk, unix.S_IFBLK}, {fifo, unix.S_IFIFO}} {
		st := lstat(t, filepath.Join(d, tt.e.Name))
		if st.Mode&unix.S_IFMT != tt.kind || st.Mode&0o7777 != uint32(tt.e.Mode) {
			t.Errorf("%s mode = %o", tt.e.Name, st.Mode)
		}
		if tt.kind != unix.S_IFIFO && (unix.Major(st.Rdev) != uint32(tt.e.Devmajor) || unix.Minor(st.Rdev) != uint32(tt.e.Devminor)) {
			t.Errorf("%s rdev = %d:%d", tt.e.Name, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if int(st.Uid) != tt.e.Uid || int(st.Gid) != tt.e.Gid {
			t.Errorf("%s owner = %d:%d", tt.e.Name, st.Uid, st.Gid)
		}
	}
}

func TestApplyXattrs(t *testing.T) {
	requireRoot(t)
	// A valid VFS_CAP_REVISION_2 blob granting effective CAP_NET_BIND_SERVICE;
	// the kernel rejects malformed ones.
	capv2 := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f := file("bin/ping", "elf")
	f.Uid, f.Mode = 1000, 0o4755
	f.PAXRecords = map[string]string{
		"SCHILY.xattr.user.comment":             "hello",
		"SCHILY.xattr.security.capability":      capv2,
		"SCHILY.xattr.trusted.overlay.redirect": "/etc",
	}
	dd := dir("d")
	dd.PAXRecords = map[string]string{"SCHILY.xattr.user.d": "dirval"}
	l := symlink("l", "bin/ping")
	l.PAXRecords = map[string]string{"SCHILY.xattr.trusted.l": "linkval", "SCHILY.xattr.user.ignored": "x"}
	d := mustApply(t, f, dd, l)

	get := func(p, name string) (string, error) {
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(filepath.Join(d, p), name, buf)
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	for _, tt := range []struct{ path, name, want string }{
		{"bin/ping", "user.comment", "hello"},
		{"bin/ping", "security.capability", capv2},
		{"d", "user.d", "dirval"},
		{"l", "trusted.l", "linkval"},
	} {
		if got, err := get(tt.path, tt.name); err != nil || got != tt.want {
			t.Errorf("%s %s = %q, %v; want %q", tt.path, tt.name, got, err, tt.want)
		}
	}
	if _, err := get("bin/ping", "trusted.overlay.redirect"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("layer-supplied overlay xattr was applied (err %v)", err)
	}
	if st := lstat(t, filepath.Join(d, "bin/ping")); st.Mode&0o7777 != 0o4755 {
		t.Errorf("mode with capability = %o, want 4755", st.Mode&0o7777)
	}
}

func TestApplyDuplicates(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		check   func(t *testing.T, d string)
	}{
		{"file then file", []entry{file("a", "one"), file("a", "two")}, func(t *testing.T, d string) {
			if got := readFile(t, filepath.Join(d, "a")); got != "two" {
				t.Errorf("content = %q", got)
			}
		}},
		{"file then dir", []entry{file("a", "one"), dir("a"), file("a/b", "x")}, func(t *testing.T, d string) {
			if st := lstat(t, filepath.Join(d, "a")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("a is not a dir")
			}
		}},
		{"dir tree then file", []entry{dir("a"), dir("a/b"), file("a/b/c", "x"), file("a", "now a file")}, func(t *testing.T, d string) {
			if got := readFile(t, filepath.Join(d, "a")); got != "now a file" {
				t.Errorf("content = %q", got)
			}
		}},
		{"dir then dir keeps children and updates mode", []entry{dir("a"), file("a/b", "x"), {Header: tar.Header{Typeflag: tar.TypeDir, Name: "a", Mode: 0o700}}}, func(t *testing.T, d string) {
			if st := lstat(t, filepath.Join(d, "a")); st.Mode&0o7777 != 0o700 {
				t.Errorf("mode = %o, want 700", st.Mode&0o7777)
			}
			if got := readFile(t, filepath.Join(d, "a/b")); got != "x" {
				t.Errorf("child lost: %q", got)
			}
		}},
		{"symlink then file replaces link not target", []entry{file("t", "target"), symlink("a", "t"), file("a", "new")}, func(t *testing.T, d string) {
			if got := readFile(t, filepath.Join(d, "t")); got != "target" {
				t.Errorf("symlink target written through: %q", got)
			}
			if st := lstat(t, filepath.Join(d, "a")); st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("a is not a regular file")
			}
		}},
		{"symlink to dir then dir", []entry{dir("real"), symlink("a", "real"), dir("a"), file("a/f", "x")}, func(t *testing.T, d string) {
			if st := lstat(t, filepath.Join(d, "a")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("a is not a dir")
			}
			if _, err := os.Lstat(filepath.Join(d, "real/f")); err == nil {
				t.Errorf("file written through replaced symlink")
			}
		}},
		{"whiteout then file in same layer", []entry{file(".wh.a", ""), file("a", "kept")}, func(t *testing.T, d string) {
			if got := readFile(t, filepath.Join(d, "a")); got != "kept" {
				t.Errorf("content = %q", got)
			}
		}},
		{"file then whiteout in same layer", []entry{file("a", "kept"), file(".wh.a", "")}, func(t *testing.T, d string) {
			if got := readFile(t, filepath.Join(d, "a")); got != "kept" {
				t.Errorf("content = %q", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustApply(t, tt.entries...))
		})
	}
}

func TestApplyRootEntry(t *testing.T) {
	root := dir("./")
	root.Mode = 0o751
	d := mustApply(t, root, file("./a", "x"), file("/b", "y"))
	if st := lstat(t, d); st.Mode&0o7777 != 0o751 {
		t.Errorf("root mode = %o, want 751", st.Mode&0o7777)
	}
	if readFile(t, filepath.Join(d, "a")) != "x" || readFile(t, filepath.Join(d, "b")) != "y" {
		t.Error("entries with ./ and / prefixes not extracted under root")
	}
}

func TestApplyCancelled(t *testing.T) {
	layer := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, bytes.NewReader(buildTar(t, file("a", "x"))), layer, Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(layer, "a")); err == nil {
		t.Error("entry extracted despite cancelled context")
	}
}

// cancelAfterFirst cancels once the first header has been consumed, to
// check cancellation is honoured between entries, not only up front.
type cancelAfterFirst struct {
	r      *bytes.Reader
	cancel func()
	n      int
}

func (c *cancelAfterFirst) Read(p []byte) (int, error) {
	c.n += len(p)
	if c.n > 1024 {
		c.cancel()
	}
	return c.r.Read(p)
}

func TestApplyCancelledMidStream(t *testing.T) {
	layer := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancelAfterFirst{r: bytes.NewReader(buildTar(t, file("a", "x"), file("b", "y"), file("c", "z"))), cancel: cancel}
	if _, err := Apply(ctx, r, layer, Limits{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(layer, "c")); err == nil {
		t.Error("all entries extracted despite cancellation")
	}
}

func TestApplyRejectsNonEmptyDir(t *testing.T) {
	layer := t.TempDir()
	if err := os.WriteFile(filepath.Join(layer, "old"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), bytes.NewReader(buildTar(t, file("a", "x"))), layer, Limits{}); err == nil {
		t.Fatal("Apply into a non-empty dir succeeded")
	}
}

func TestApplyTruncated(t *testing.T) {
	b := buildTar(t, file("a", string(bytes.Repeat([]byte("x"), 4096))))
	if _, err := Apply(context.Background(), bytes.NewReader(b[:len(b)-1024-2048]), t.TempDir(), Limits{}); err == nil {
		t.Fatal("truncated layer applied without error")
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("SyncDir of a missing dir succeeded")
	}
}
