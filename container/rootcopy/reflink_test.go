package rootcopy

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCopyReflinks: on XFS (a loop file made here) the copy clones every
// file's extents: FICLONE is the method, the content is the layer's, and
// the filesystem's used space grows by metadata only.
func TestCopyReflinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop filesystem")
	}
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Skip("no mkfs.xfs (Debian's xfsprogs) to make an XFS with reflinks to test on")
	}
	img := filepath.Join(t.TempDir(), "xfs.img")
	f, err := os.Create(img)
	must(t, err)
	must(t, f.Truncate(512<<20))
	must(t, f.Close())
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount an XFS loop file here (%v: %s)", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })

	layer := filepath.Join(mnt, "layer")
	must(t, os.MkdirAll(filepath.Join(layer, "data"), 0o755))
	rng := rand.New(rand.NewChaCha8([32]byte{}))
	want := map[string][]byte{}
	for i := range 8 {
		b := make([]byte, 4<<20)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("data/f%d", i)
		want[name] = b
		must(t, os.WriteFile(filepath.Join(layer, name), b, 0o644))
	}
	unix.Sync()
	before := used(t, mnt)
	st, err := Copy(context.Background(), []string{layer}, filepath.Join(mnt, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	grown := used(t, mnt) - before
	t.Logf("copied %d bytes in %v by %s; the filesystem grew by %d bytes", st.Bytes, st.Duration, st.Method, grown)
	if st.Method != MethodReflink {
		t.Errorf("method %q, want %q", st.Method, MethodReflink)
	}
	if grown > 4<<20 {
		t.Errorf("the filesystem grew by %d bytes for %d bytes of cloned content", grown, st.Bytes)
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(mnt, "copy", name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s: content differs (%v)", name, err)
		}
	}
}

func used(t *testing.T, p string) int64 {
	t.Helper()
	var s unix.Statfs_t
	must(t, unix.Statfs(p, &s))
	return int64(s.Blocks-s.Bfree) * s.Bsize
}
