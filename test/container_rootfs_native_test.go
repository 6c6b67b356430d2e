//go:build integration

package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/sandbox"
	"github.com/crisp-runtime/crisp/test/harness"
)

// rootfsImage is crisp-test/whiteout plus a layer with an opaque
// directory over a merged one, a whiteout of a symlink, xattrs (a file
// capability among them), a hard link, a fifo, a device node, other
// owners, setuid and a sparse file; see hack/images.
const rootfsImage = "crisp-test/rootfs:1"

// nativePod runs a host-network pod whose containers get native roots.
func nativePod(t *testing.T, d *harness.Daemon, name string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := podConfig(name)
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.Annotations = map[string]string{sandbox.RootfsAnnotation: sandbox.RootfsNative}
	return runPod(t, d, cfg), cfg
}

func rootfsCtr(name string) *runtimeapi.ContainerConfig {
	c := ctrConfig(name, "sleep 3600")
	c.Image = &runtimeapi.ImageSpec{Image: rootfsImage, UserSpecifiedImage: rootfsImage}
	return c
}

// listing is what a container sees of its root: every path the image
// controls with type, mode, owner, times, size, link count, link target
// and device numbers. Directories made or changed by the runtime (mount
// points of /proc, /dev, /etc/hosts ...) and the sizes and link counts of
// directories (which overlayfs reports its own way) are left out.
const listing = `cd / && find . -xdev ! -path ./proc ! -path ./sys ! -path './dev*' ! -path ./etc/hosts ! -path ./etc/hostname ! -path ./etc/resolv.conf -print | sort | while read -r f; do
  if [ -d "$f" ] && [ ! -L "$f" ]; then
    case "$f" in ./*/*) stat -c '%n %f %u:%g %Y' "$f";; *) stat -c '%n %f %u:%g' "$f";; esac
  else stat -c '%n %f %u:%g %Y %s %h %t:%T %N' "$f"; fi
done`

// TestRootfsNative: a pod annotated crisp-runtime.io/rootfs=native gets
// roots that are plain directories holding a copy of the image: the
// container sees exactly what an overlay container of the same image sees
// (whiteouts, opaque directories, hard links, xattrs, devices, owners,
// setuid, holes), can write, can be read-only, keeps its root across
// restarts of crisp (clean and kill -9) and a remount, reports the copy
// as its writable layer, and leaves nothing once removed.
func TestRootfsNative(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, rootfsImage)
	ovPod, ovPodCfg := ctrPod(t, d, "overlay")
	pod, podCfg := nativePod(t, d, "native")
	sh := func(id, script string) string {
		t.Helper()
		r := execSync(t, d, id, 60, "sh", "-c", script)
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
	copyOf := func(id string) string { return filepath.Join(d.Root, "containers", id, "fs", "native-"+id) }

	ov := runCtr(t, d, ovPod, ovPodCfg, rootfsCtr("overlay"))
	n := runCtr(t, d, pod, podCfg, rootfsCtr("native"))
	requireNativeRoot(t, rootfs(n))

	// The same view as the overlay's, entry by entry.
	want, got := sh(ov, listing), sh(n, listing)
	if got != want {
		t.Errorf("native root differs from the overlay root:\n%s", lineDiff(want, got))
	}
	if c := strings.Count(got, "\n"); c < 250 {
		t.Errorf("the listing has %d entries; is it listing the image?\n%s", c, got)
	}
	expect(n, "whiteouts and opaque directories", "ls -a /data /data/opaque /data/plain /data/links",
		"/data:\n.\n..\nattrs\ndev\nkeep.txt\nlinks\nopaque\nowned\nplain\nprivate\nsparse\nsuid\n\n/data/links:\n.\n..\nhardlink.txt\noriginal.txt\nsymlink-rel\n\n/data/opaque:\n.\n..\nnew.txt\n\n/data/plain:\n.\n..\nc.txt\n")
	expect(n, "hard links", "cd /data && [ $(stat -c %i links/original.txt) = $(stat -c %i links/hardlink.txt) ] && [ $(stat -c %i attrs/ping) = $(stat -c %i attrs/ping-link) ] && stat -c %h links/original.txt attrs/ping", "2\n2\n")
	expect(n, "devices, owners, setuid", "stat -c '%F %t:%T %a %u:%g' /data/dev/null /data/dev/fifo /data/owned /data/private /data/private/secret /data/suid",
		"character special file 1:3 666 0:0\nfifo 0:0 620 0:0\nregular file 0:0 640 1234:5678\ndirectory 0:0 700 1000:1000\nregular file 0:0 600 1000:1000\nregular file 0:0 4755 0:0\n")
	// xattrs (no getfattr in busybox): read through the containers' roots.
	for _, x := range []struct{ path, name string }{{"data/attrs/ping", "security.capability"}, {"data/attrs/ping", "user.crisp"}, {"data/attrs", "user.crisp"}} {
		o, nat := xattr(t, filepath.Join(rootfs(ov), x.path), x.name), xattr(t, filepath.Join(rootfs(n), x.path), x.name)
		if o == nil || !bytes.Equal(o, nat) {
			t.Errorf("%s of %s: native %q, overlay %q", x.name, x.path, nat, o)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(copyOf(n), "data", "sparse"), &st); err != nil || st.Size != 1<<20 || st.Blocks*512 >= 1<<20 {
		t.Errorf("the copy's sparse file: size %d, %d bytes allocated (%v); want 1 MiB with holes", st.Size, st.Blocks*512, err)
	}
	expect(n, "sparse file content", "tr -d '\\000' </data/sparse | wc -c", "4096\n")

	// Writes land in the copy: it is the container's writable layer.
	sh(n, "echo more >>/data/keep.txt && rm /data/plain/c.txt && rm -r /data/opaque && mkdir /data/opaque && ln /data/keep.txt /data/keep-link && echo new >/data/new.txt")
	if b, err := os.ReadFile(filepath.Join(copyOf(n), "data", "keep.txt")); err != nil || string(b) != "keep\nmore\n" {
		t.Errorf("write through the container's root, in the copy: %q, %v", b, err)
	}
	checkN := func(when string) {
		t.Helper()
		requireNativeRoot(t, rootfs(n))
		expect(n, "writes "+when, "cat /data/keep.txt /data/new.txt; ls -a /data/opaque /data/plain; stat -c %h /data/keep-link",
			"keep\nmore\nnew\n/data/opaque:\n.\n..\n\n/data/plain:\n.\n..\n2\n")
	}
	checkN("right away")
	// The overlay container of the same image saw none of it.
	expect(ov, "the overlay container", "cat /data/keep.txt; ls /data/plain", "keep\nc.txt\n")

	// ContainerStats: the writable layer is the whole copy.
	for _, id := range []string{n, ov} {
		resp, err := d.Runtime.ContainerStats(harness.Ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		wl := resp.GetStats().GetWritableLayer()
		used, inodes := wl.GetUsedBytes().GetValue(), wl.GetInodesUsed().GetValue()
		t.Logf("writable layer of the %s container: %d bytes, %d inodes", map[bool]string{true: "native", false: "overlay"}[id == n], used, inodes)
		if id == n && (used < 4<<20 || used > 32<<20 || inodes < 50) {
			t.Errorf("native root's writable layer %d bytes, %d inodes: want the copy's size (each hard-linked file once)", used, inodes)
		}
	}

	// Read-only: the copy is there, writes are refused.
	roCfg := rootfsCtr("readonly")
	roCfg.Linux.SecurityContext.ReadonlyRootfs = true
	ro := runCtr(t, d, pod, podCfg, roCfg)
	requireNativeRoot(t, rootfs(ro))
	expect(ro, "read-only native root", "cat /data/keep.txt; touch /data/x 2>&1 || echo refused", "keep\ntouch: /data/x: Read-only file system\nrefused\n")

	d.Restart(t)
	checkN("after a restart of crisp")
	d.Kill9AndRestart(t)
	checkN("after kill -9 of crisp")

	// A created container's root unmounted behind crisp's back is bound
	// again at start-up, with what was written to it.
	c := createCtr(t, d, pod, podCfg, rootfsCtr("created"))
	requireNativeRoot(t, rootfs(c))
	if err := os.WriteFile(filepath.Join(rootfs(c), "before-remount"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Stop(t)
	if err := unix.Unmount(rootfs(c), 0); err != nil {
		t.Fatal(err)
	}
	d.StartAgain(t)
	requireNativeRoot(t, rootfs(c))
	startCtr(t, d, c)
	expect(c, "file written before the remount", "cat /before-remount", "kept\n")

	// Removal leaves nothing: no copy, no mount, no state.
	ids := []string{n, ro, c, ov}
	for _, p := range []string{pod, ovPod} {
		stopPod(t, d, p)
		removePod(t, d, p)
	}
	for _, id := range ids {
		for _, p := range []string{filepath.Join(d.Root, "containers", id), filepath.Join(d.State, "containers", id)} {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("left after removing the pods: %s (%v)", p, err)
			}
		}
	}
	if info := readFile(t, "/proc/self/mountinfo"); strings.Contains(info, filepath.Join(d.State, "containers")+"/") {
		t.Errorf("container mounts left after removing the pods:\n%s", info)
	}
}

// TestRootfsNativeRefused: a value of the annotation that names no root
// filesystem is InvalidArgument naming the annotation and the values it
// takes, on a pod or on a container, and creates nothing; a copy that
// does not fit is ResourceExhausted naming the filesystem, leaves nothing,
// and the same container is created once there is space.
func TestRootfsNativeRefused(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t, harness.WithRootSize("64m"))
	pull(t, d, rootfsImage)
	wantInvalid := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), sandbox.RootfsAnnotation) || !strings.Contains(err.Error(), `"native"`) {
			t.Errorf("%s: %v, want InvalidArgument naming %s and its values", what, err, sandbox.RootfsAnnotation)
		}
		t.Logf("%s: %v", what, err)
	}
	bad := podConfig("bad")
	bad.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	bad.Annotations = map[string]string{sandbox.RootfsAnnotation: "nativ"}
	_, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: bad})
	wantInvalid("RunPodSandbox", err)

	pod, podCfg := ctrPod(t, d, "good")
	cfg := rootfsCtr("bad")
	cfg.Annotations = map[string]string{sandbox.RootfsAnnotation: "copy"}
	_, err = d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	wantInvalid("CreateContainer", err)

	// Room for the container's record, not for its copy of the image.
	before := entries(t, filepath.Join(d.Root, "containers"))
	free := fillDiskBut(t, d.Root, 512<<10)
	cfg = rootfsCtr("full")
	cfg.Annotations = map[string]string{sandbox.RootfsAnnotation: sandbox.RootfsNative}
	_, err = d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	wantNoSpace(t, "CreateContainer with a native root", err, d.Root, "native root")
	if after := entries(t, filepath.Join(d.Root, "containers")); after != before {
		t.Errorf("a failed copy left %q in the containers' directory (before: %q)", after, before)
	}
	free()
	id := runCtr(t, d, pod, podCfg, cfg)
	requireNativeRoot(t, filepath.Join(d.State, "containers", id, "rootfs"))
}

// requireNativeRoot fails unless p is a bind mount of a native root (not
// an overlay).
func requireNativeRoot(t *testing.T, p string) {
	t.Helper()
	for _, line := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != p {
			continue
		}
		if !strings.Contains(f[3], "/fs/native-") || strings.Contains(line, " - overlay ") {
			t.Fatalf("%s is mounted %q, want a bind mount of the container's native root", p, line)
		}
		return
	}
	t.Fatalf("%s is not mounted", p)
}

func xattr(t *testing.T, p, name string) []byte {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		t.Errorf("getxattr %s %s: %v", p, name, err)
		return nil
	}
	return buf[:n]
}

// lineDiff lists the lines only one of a and b has.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !inb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ina[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func entries(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// fillDiskBut fills dir's filesystem up to keep bytes.
func fillDiskBut(t *testing.T, dir string, keep int64) (free func()) {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	size := int64(sfs.Bavail)*sfs.Bsize - keep
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		t.Fatalf("fallocate %d bytes in %s: %v", size, dir, err)
	}
	freed := false
	free = func() {
		if !freed {
			freed = true
			if err := os.Remove(path); err != nil {
				t.Error(fmt.Errorf("free %s: %w", path, err))
			}
		}
	}
	t.Cleanup(free)
	return free
}

// TestRootfsNativeUserNamespace: in a pod with its own user namespace the
// copy is bound idmapped: the image's files are the pod root's inside and
// the mapped id on the host, and what the container writes is stored with
// the container's own ids in the copy (as in the image), not the node's.
func TestRootfsNativeUserNamespace(t *testing.T) {
	harness.RequireRegistry(t)
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	requireIDMap(t, d.Root)
	pull(t, d, rootfsImage)
	podCfg := podConfig("userns-native")
	podCfg.LogDirectory = t.TempDir()
	podCfg.Annotations = map[string]string{sandbox.RootfsAnnotation: sandbox.RootfsNative}
	userns := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: usernsMapping(), Gids: usernsMapping()}
	podCfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{UsernsOptions: userns}
	pod := runPod(t, d, podCfg)
	cfg := rootfsCtr("app")
	cfg.Linux.SecurityContext.NamespaceOptions = podCfg.Linux.SecurityContext.NamespaceOptions
	id := runCtr(t, d, pod, podCfg, cfg)
	requireNativeRoot(t, filepath.Join(d.State, "containers", id, "rootfs"))
	in := func(script string) string {
		t.Helper()
		r := execSync(t, d, id, 20, "sh", "-c", script)
		if r.ExitCode != 0 {
			t.Fatalf("%q: exit %d: %s%s", script, r.ExitCode, r.Stdout, r.Stderr)
		}
		return strings.TrimSpace(string(r.Stdout))
	}
	if got := in("stat -c %u:%g / /bin/sh /data/keep.txt /data/owned"); got != "0:0\n0:0\n0:0\n1234:5678" {
		t.Errorf("image files inside owned by %q, want the image's ids", got)
	}
	in("echo x >/new-in-root && echo more >>/data/keep.txt && chown 1234 /data/keep.txt")
	root := fmt.Sprintf("/proc/%d/root", ctrPid(t, d, id))
	copyDir := filepath.Join(d.Root, "containers", id, "fs", "native-"+id)
	for _, f := range []struct {
		path      string
		host, raw uint32
	}{{"new-in-root", usernsHost, 0}, {"data/keep.txt", usernsHost + 1234, 1234}, {"bin/sh", usernsHost, 0}} {
		if uid, _ := statOwner(t, filepath.Join(root, f.path)); uid != f.host {
			t.Errorf("%s seen from the host through the container's root: uid %d, want %d", f.path, uid, f.host)
		}
		if uid, _ := statOwner(t, filepath.Join(copyDir, f.path)); uid != f.raw {
			t.Errorf("%s in the copy: uid %d, want %d", f.path, uid, f.raw)
		}
	}
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if _, err := os.Lstat(filepath.Join(d.Root, "containers", id)); !os.IsNotExist(err) {
		t.Errorf("the container's directory is left: %v", err)
	}
}
