//go:build integration

package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// whiteoutImage has a file and a directory whiteout, an opaque directory
// and a hard link in its layers; see hack/images.
const whiteoutImage = "crisp-test/whiteout:1"

// TestRootfsOverlay: a container's writable layer is mounted volatile
// (README "Root filesystem speed") and the root still behaves as the image
// and POSIX say: the image's whiteouts, opaque directory and hard link;
// copy-up, deletion, new hard links and xattrs in the container; another
// container of the image sees none of it; all of it survives restarts of
// crisp (clean and kill -9), and a writable layer unmounted behind crisp's
// back mounts again (the kernel's volatile marker is cleared).
func TestRootfsOverlay(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, whiteoutImage)
	pod, podCfg := ctrPod(t, d, "rootfs")
	cfg := func(name string) *runtimeapi.ContainerConfig {
		c := ctrConfig(name, "sleep 3600")
		c.Image = &runtimeapi.ImageSpec{Image: whiteoutImage, UserSpecifiedImage: whiteoutImage}
		return c
	}
	sh := func(id, script string) string {
		t.Helper()
		r := execSync(t, d, id, 30, "sh", "-c", script)
		if r.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s%s", script, r.ExitCode, r.Stdout, r.Stderr)
		}
		return string(r.Stdout)
	}
	expect := func(id, what, script, want string) {
		t.Helper()
		if got := sh(id, script); got != want {
			t.Errorf("%s: %s printed %q, want %q", what, script, got, want)
		}
	}
	rootfs := func(id string) string { return filepath.Join(d.State, "containers", id, "rootfs") }

	a := runCtr(t, d, pod, podCfg, cfg("a"))
	requireVolatile(t, rootfs(a))
	// The image as its layers say.
	expect(a, "whiteouts", "ls -a /data", ".\n..\nkeep.txt\nlinks\nopaque\nplain\n")
	expect(a, "opaque directory", "ls -a /data/opaque", ".\n..\nnew.txt\n")
	expect(a, "merged directory", "ls /data/plain", "a.txt\nb.txt\n")
	expect(a, "image hard link", "cd /data/links && [ $(stat -c %i original.txt) = $(stat -c %i hardlink.txt) ] && stat -c %h original.txt", "2\n")
	// What the container changes.
	expect(a, "copy-up", "echo more >>/data/keep.txt && cat /data/keep.txt", "keep\nmore\n")
	expect(a, "whiteout made in the container", "rm /data/plain/a.txt && ls /data/plain", "b.txt\n")
	expect(a, "opaque directory made in the container", "rm -r /data/opaque && mkdir /data/opaque && ls -a /data/opaque", ".\n..\n")
	expect(a, "new hard link", "cd /data && ln keep.txt keep-link && echo linked >>keep-link && [ $(stat -c %i keep.txt) = $(stat -c %i keep-link) ] && tail -1 keep.txt", "linked\n")
	// xattrs (busybox has no setfattr): set from the node through the
	// mount, on an image file (copied up with it) and on a new file.
	sh(a, "echo new >/data/new.txt")
	for _, f := range []string{"data/plain/b.txt", "data/new.txt"} {
		if err := unix.Setxattr(filepath.Join(rootfs(a), f), "user.crisp", []byte(f), 0); err != nil {
			t.Fatalf("setxattr %s: %v", f, err)
		}
	}
	checkA := func(when string) {
		t.Helper()
		requireVolatile(t, rootfs(a))
		expect(a, "changes "+when, "cat /data/keep.txt; ls -a /data/opaque; ls /data/plain", "keep\nmore\nlinked\n.\n..\nb.txt\n")
		for _, f := range []string{"data/plain/b.txt", "data/new.txt"} {
			buf := make([]byte, 64)
			n, err := unix.Getxattr(filepath.Join(rootfs(a), f), "user.crisp", buf)
			if err != nil || string(buf[:n]) != f {
				t.Errorf("xattr of %s %s: %q, %v", f, when, buf[:max(n, 0)], err)
			}
		}
	}
	checkA("right away")

	// Another container of the image starts from the image, not from a's
	// writable layer.
	b := runCtr(t, d, pod, podCfg, cfg("b"))
	expect(b, "another container", "cat /data/keep.txt; ls /data/plain; [ -e /data/new.txt ] || echo no new.txt", "keep\na.txt\nb.txt\nno new.txt\n")

	d.Restart(t)
	checkA("after a restart of crisp")
	d.Kill9AndRestart(t)
	checkA("after kill -9 of crisp")

	// A created container's layer, unmounted behind crisp's back, leaves
	// the kernel's volatile marker; start-up mounts it again, with what
	// was written before.
	c := createCtr(t, d, pod, podCfg, cfg("c"))
	requireVolatile(t, rootfs(c))
	if err := os.WriteFile(filepath.Join(rootfs(c), "before-remount"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Stop(t)
	if err := unix.Unmount(rootfs(c), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root, "containers", c, "fs", "work", "work", "incompat", "volatile")); err != nil {
		t.Fatalf("the kernel left no volatile marker (is the layer volatile?): %v", err)
	}
	d.StartAgain(t)
	requireVolatile(t, rootfs(c))
	startCtr(t, d, c)
	expect(c, "file written before the remount", "cat /before-remount", "kept\n")
}

// requireVolatile fails unless the overlay at p is mounted volatile
// (shown as "volatile" or, since Linux 6.7, "fsync=volatile").
func requireVolatile(t *testing.T, p string) {
	t.Helper()
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != p {
			continue
		}
		opts := f[len(f)-1]
		if !strings.Contains(line, " - overlay ") || !strings.Contains(","+opts+",", ",volatile,") && !strings.Contains(opts, "fsync=volatile") {
			t.Fatalf("%s is mounted %q, want a volatile overlay", p, line)
		}
		return
	}
	t.Fatalf("%s is not mounted", p)
}
