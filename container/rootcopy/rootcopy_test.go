package rootcopy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// layer builds one layer directory in overlayfs form, as image/unpack
// leaves it: whiteouts are 0/0 character devices, opaque directories carry
// trusted.overlay.opaque=y.
type layer struct {
	t   *testing.T
	dir string
}

func newLayers(t *testing.T, n int) []*layer {
	if os.Geteuid() != 0 {
		t.Skip("layers hold whiteouts (device nodes), other owners and trusted.* xattrs: needs root")
	}
	base := t.TempDir()
	var ls []*layer
	for i := range n {
		d := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, &layer{t: t, dir: d})
	}
	return ls
}

func dirs(ls []*layer) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.dir)
	}
	return out
}

func (l *layer) p(rel string) string {
	p := filepath.Join(l.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *layer) file(rel, data string) string {
	p := l.p(rel)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *layer) mkdir(rel string) string {
	p := l.p(rel)
	if err := os.Mkdir(p, 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *layer) whiteout(rel string) {
	if err := unix.Mknod(l.p(rel), unix.S_IFCHR, 0); err != nil {
		l.t.Fatal(err)
	}
}

func (l *layer) opaque(rel string) {
	p := l.p(rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := unix.Setxattr(p, opaqueXattr, []byte("y"), 0); err != nil {
		l.t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// capV2 is a security.capability value (VFS_CAP_REVISION_2, effective)
// granting CAP_NET_RAW, as setcap writes it.
func capV2() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_RAW)
	return b
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// testImage is three layers (top first) with every case overlayfs resolves:
// file and directory whiteouts, an opaque directory, a directory over a
// file and a file over a directory, a whiteout in a middle layer that a
// higher layer's directory does not see past, hard links (one of whose
// names an upper layer hides), and in the top layer symlinks, a fifo, a
// device node, a sparse file, other owners, setuid, xattrs and times.
func testImage(t *testing.T) []string {
	ls := newLayers(t, 3)
	top, mid, bot := ls[0], ls[1], ls[2]

	bot.file("etc/keep", "keep\n")
	bot.file("etc/gone", "gone\n")
	bot.file("etc/replaced", "bottom\n")
	bot.file("dirgone/x", "x\n")
	bot.file("opaque/old", "old\n")
	bot.file("opaque/sub/old2", "old2\n")
	bot.file("merge/a", "a\n")
	bot.file("wasfile", "file\n")
	bot.file("wasdir/inner", "inner\n")
	bot.file("deep/hidden/x", "below the middle whiteout\n")
	bot.file("links/one", "linked\n")
	must(t, os.Link(bot.p("links/one"), bot.p("links/two")))
	must(t, os.Link(bot.p("links/one"), bot.p("links/three")))

	mid.whiteout("etc/gone")
	mid.whiteout("dirgone")
	mid.file("merge/b", "b\n")
	mid.whiteout("deep/hidden")
	mid.file("links/two", "replaced in the middle\n")

	top.file("etc/replaced", "top\n")
	top.opaque("opaque")
	top.file("opaque/new", "new\n")
	top.file("merge/c", "c\n")
	top.mkdir("wasfile")
	top.file("wasfile/now", "a directory now\n")
	top.file("wasdir", "a file now\n")
	top.file("deep/hidden/y", "above the middle whiteout\n")
	top.whiteout("mid-only-whiteout") // hides nothing, shows nothing
	must(t, os.Symlink("../etc/keep", top.p("sym/rel")))
	must(t, os.Symlink("/etc/keep", top.p("sym/abs")))
	must(t, unix.Mkfifo(top.p("dev/fifo"), 0o620))
	must(t, unix.Mknod(top.p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	sparse := top.p("data/sparse")
	f, err := os.Create(sparse)
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{'s'}, 4096), 512<<10)
	must(t, err)
	must(t, f.Truncate(1<<20))
	must(t, f.Close())
	owned := top.file("data/owned", "owned\n")
	must(t, os.Chown(owned, 1234, 5678))
	private := top.mkdir("data/private")
	must(t, os.Chown(private, 1000, 1000))
	must(t, os.Chmod(private, 0o700))
	suid := top.file("bin/suid", "#!/bin/true\n")
	must(t, unix.Chmod(suid, 0o4755))
	ping := top.file("bin/ping", "ping\n")
	must(t, unix.Setxattr(ping, "security.capability", capV2(), 0))
	must(t, unix.Setxattr(ping, "user.note", []byte("file xattr"), 0))
	must(t, unix.Setxattr(top.p("data"), "user.note", []byte("dir xattr"), 0))
	// Times last: creating entries changed their directories'.
	for i, p := range []string{owned, private, suid, filepath.Join(top.dir, "data"), filepath.Join(top.dir, "sym")} {
		tm := epoch.Add(time.Duration(i) * time.Hour)
		must(t, os.Chtimes(p, tm, tm))
	}
	must(t, unix.Lutimes(top.p("sym/rel"), []unix.Timeval{{Sec: epoch.Unix()}, {Sec: epoch.Unix()}}))
	return dirs(ls)
}

func TestCopyMergedView(t *testing.T) {
	layers := testImage(t)
	dst := filepath.Join(t.TempDir(), "root")
	st, err := Copy(context.Background(), layers, dst)
	if err != nil {
		t.Fatal(err)
	}
	got := tree(t, dst)
	want := []string{
		"bin/", "bin/ping", "bin/suid",
		"data/", "data/owned", "data/private/", "data/sparse",
		"deep/", "deep/hidden/", "deep/hidden/y",
		"dev/", "dev/fifo", "dev/null",
		"etc/", "etc/keep", "etc/replaced",
		"links/", "links/one", "links/three", "links/two",
		"merge/", "merge/a", "merge/b", "merge/c",
		"opaque/", "opaque/new",
		"sym/", "sym/abs", "sym/rel",
		"wasdir", "wasfile/", "wasfile/now",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("copy holds\n%v\nwant\n%v", got, want)
	}
	for p, content := range map[string]string{
		"etc/replaced": "top\n", "links/two": "replaced in the middle\n", "links/one": "linked\n",
		"wasdir": "a file now\n", "deep/hidden/y": "above the middle whiteout\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != content {
			t.Errorf("%s: %q, %v; want %q", p, b, err, content)
		}
	}
	// links/one and three stay one inode; two is the middle layer's file.
	one, three, two := lstat(t, dst, "links/one"), lstat(t, dst, "links/three"), lstat(t, dst, "links/two")
	if one.Ino != three.Ino || one.Nlink != 2 || two.Ino == one.Ino || two.Nlink != 1 {
		t.Errorf("hard links: one %d/%d three %d/%d two %d/%d", one.Ino, one.Nlink, three.Ino, three.Nlink, two.Ino, two.Nlink)
	}
	if s := lstat(t, dst, "data/owned"); s.Uid != 1234 || s.Gid != 5678 {
		t.Errorf("owner %d:%d, want 1234:5678", s.Uid, s.Gid)
	}
	if s := lstat(t, dst, "data/private"); s.Uid != 1000 || s.Mode&0o7777 != 0o700 {
		t.Errorf("private dir %d %o", s.Uid, s.Mode&0o7777)
	}
	if s := lstat(t, dst, "bin/suid"); s.Mode&0o7777 != 0o4755 {
		t.Errorf("setuid lost: %o", s.Mode&0o7777)
	}
	if s := lstat(t, dst, "dev/null"); s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device node %o %d", s.Mode, s.Rdev)
	}
	if s := lstat(t, dst, "data/sparse"); s.Size != 1<<20 || s.Blocks*512 >= 1<<20 {
		t.Errorf("sparse file: size %d, %d bytes allocated", s.Size, s.Blocks*512)
	}
	if v := getxattr(t, filepath.Join(dst, "bin/ping"), "security.capability"); !bytes.Equal(v, capV2()) {
		t.Errorf("security.capability %x, want %x", v, capV2())
	}
	if v := getxattr(t, filepath.Join(dst, "data"), "user.note"); string(v) != "dir xattr" {
		t.Errorf("directory xattr %q", v)
	}
	if v := getxattr(t, filepath.Join(dst, "opaque"), opaqueXattr); v != nil {
		t.Errorf("the opaque marker was copied: %q", v)
	}
	if s := lstat(t, dst, "data/private"); s.Mtim.Sec != epoch.Add(time.Hour).Unix() {
		t.Errorf("directory mtime %v", time.Unix(s.Mtim.Unix()))
	}
	if s := lstat(t, dst, "sym"); s.Mtim.Sec != epoch.Add(4*time.Hour).Unix() {
		t.Errorf("mtime of a directory with entries %v", time.Unix(s.Mtim.Unix()))
	}
	if s := lstat(t, dst, "sym/rel"); s.Mtim.Sec != epoch.Unix() {
		t.Errorf("symlink mtime %v", time.Unix(s.Mtim.Unix()))
	}
	if st.Files != 15 || st.HardLinks != 1 || st.Symlinks != 2 || st.Others != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestCopyMatchesOverlay compares the copy with what the kernel's overlayfs
// shows of the same layers: names, types, owners, modes, sizes, content,
// link targets, devices, times, xattrs and hard-link groups.
func TestCopyMatchesOverlay(t *testing.T) {
	layers := testImage(t)
	mnt := filepath.Join(t.TempDir(), "overlay")
	must(t, os.Mkdir(mnt, 0o755))
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(layers, ":")); err != nil {
		t.Skipf("cannot mount an overlay of the test layers to compare with (%v)", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	dst := filepath.Join(t.TempDir(), "root")
	if _, err := Copy(context.Background(), layers, dst); err != nil {
		t.Fatal(err)
	}
	want, got := describe(t, mnt), describe(t, dst)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("copy differs from the overlay:\ncopy:\n%s\noverlay:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// describe renders every entry under root as one line of what a container
// can see of it, and hard-link groups by the first name of each inode.
func describe(t *testing.T, root string) []string {
	var out []string
	first := map[uint64]string{}
	for _, rel := range tree(t, root) {
		rel = strings.TrimSuffix(rel, "/")
		p := filepath.Join(root, rel)
		s := lstat(t, root, rel)
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d mtime=%d.%09d", rel, s.Mode, s.Uid, s.Gid, s.Mtim.Sec, s.Mtim.Nsec)
		switch s.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			must(t, err)
			line += fmt.Sprintf(" size=%d content=%q", s.Size, b)
			if f, ok := first[s.Ino]; ok {
				line += " linkof=" + f
			} else {
				first[s.Ino] = rel
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			must(t, err)
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d", s.Rdev)
		}
		attrs, err := xattrs(p)
		must(t, err)
		var names []string
		for k, v := range attrs {
			names = append(names, fmt.Sprintf("%s=%x", k, v))
		}
		sort.Strings(names)
		out = append(out, line+" xattrs="+strings.Join(names, ","))
	}
	return out
}

// tree lists root's entries, relative and sorted, directories with a
// trailing slash.
func tree(t *testing.T, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	must(t, err)
	sort.Strings(out)
	return out
}

func lstat(t *testing.T, root, rel string) unix.Stat_t {
	t.Helper()
	var s unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, rel), &s))
	return s
}

func getxattr(t *testing.T, p, name string) []byte {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if errors.Is(err, unix.ENODATA) {
		return nil
	}
	must(t, err)
	return buf[:n]
}

// TestCopyFailsCleanly: an unreadable layer file fails the copy with the
// path in the error, and a cancelled context stops it.
func TestCopyErrors(t *testing.T) {
	layers := testImage(t)
	if _, err := Copy(context.Background(), layers, filepath.Join(t.TempDir(), "missing", "root")); err == nil {
		t.Error("copied into a directory whose parent is missing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Copy(ctx, layers, filepath.Join(t.TempDir(), "root")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled copy: %v", err)
	}
	if _, err := Copy(context.Background(), nil, filepath.Join(t.TempDir(), "root")); err == nil {
		t.Error("copied an image without layers")
	}
}

// TestCopyFullDisk: a filesystem that fills up fails the copy with ENOSPC
// (which the caller turns into ResourceExhausted).
func TestCopyFullDisk(t *testing.T) {
	layers := testImage(t)
	big := filepath.Join(layers[0], "data", "big")
	must(t, os.WriteFile(big, bytes.Repeat([]byte{1}, 2<<20), 0o644))
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v)", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	_, err := Copy(context.Background(), layers, filepath.Join(small, "root"))
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("copy onto a full filesystem: %v, want ENOSPC", err)
	}
}
