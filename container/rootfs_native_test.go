package container

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// nativeEnv is an env whose test image has two real layers (a file of the
// lower one whited out by the upper one) and whose pod "native" asks for
// native roots.
func nativeEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("native roots are bind mounts of copies with whiteouts (device nodes): needs root")
	}
	e := newEnv(t)
	dir := t.TempDir()
	top, bottom := filepath.Join(dir, "top"), filepath.Join(dir, "bottom")
	for _, d := range []string{top, bottom} {
		if err := os.MkdirAll(filepath.Join(d, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bottom, "etc", "gone"), []byte("gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bottom, "etc", "keep"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(top, "etc", "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	// 1 MiB under two names: counted once in the writable layer.
	big := filepath.Join(bottom, "etc", "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte{7}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(big, filepath.Join(bottom, "etc", "big-link")); err != nil {
		t.Fatal(err)
	}
	e.images.layers = []string{top, bottom}
	t.Cleanup(func() {
		// A failed test's mounts, before TempDir's cleanup descends.
		mnts, _ := filepath.Glob(filepath.Join(e.opts.State, "containers", "*", "rootfs"))
		for _, m := range mnts {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	})
	e.pods.pods["native"] = &sandbox.Sandbox{ID: "native", State: sandbox.StateReady,
		Config: sandbox.Config{Annotations: map[string]string{sandbox.RootfsAnnotation: sandbox.RootfsNative}}}
	return e
}

// nativeCfg is a container config that spec generation accepts.
func nativeCfg(name string) *Config {
	c := cfg(name)
	c.Command = []string{"sleep", "3600"}
	c.Security.Namespaces.PID = sandbox.ModeContainer
	return c
}

// TestNativeRootLifecycle: a container of a pod that asks for a native
// root gets a plain copy of the image bound at its rootfs; it is recorded,
// mounted again at start-up, counted as its writable layer, and gone with
// the container. The container's own annotation overrides the pod's.
func TestNativeRootLifecycle(t *testing.T) {
	e := nativeEnv(t)
	ctx := context.Background()
	id, err := e.m.Create(ctx, "native", nativeCfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := e.m.Get(id)
	if s.RootfsKind != RootfsNative || len(s.LowerDirs) != 0 {
		t.Fatalf("record: kind %q, lower dirs %v", s.RootfsKind, s.LowerDirs)
	}
	check := func(when string) {
		t.Helper()
		if !mounted(s.Rootfs) {
			t.Fatalf("%s: %s is not mounted", when, s.Rootfs)
		}
		if b, err := os.ReadFile(filepath.Join(s.Rootfs, "etc", "keep")); err != nil || string(b) != "keep\n" {
			t.Fatalf("%s: etc/keep %q, %v", when, b, err)
		}
		if _, err := os.Lstat(filepath.Join(s.Rootfs, "etc", "gone")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the whited-out file is there: %v", when, err)
		}
	}
	check("after create")
	// Written through the mount, kept in the copy.
	if err := os.WriteFile(filepath.Join(s.Rootfs, "etc", "new"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.m.nativeDir(id), "etc", "new")); err != nil {
		t.Fatalf("a write through the rootfs is not in the copy: %v", err)
	}
	if u := e.m.stats.writable(s.Container); u.Mountpoint != e.m.nativeDir(id) || u.Inodes != 5 || u.Bytes < 1<<20 || u.Bytes > 3<<19 {
		t.Fatalf("writable layer usage %+v, want the copy's: 5 inodes (/, etc, keep, big under two names, new), 1 MiB and a few blocks", u)
	}
	// Start-up mounts it again (here: unmounted behind crisp's back).
	e.m.Close()
	if err := unix.Unmount(s.Rootfs, 0); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	check("after a restart")
	if b, err := os.ReadFile(filepath.Join(s.Rootfs, "etc", "new")); err != nil || string(b) != "new\n" {
		t.Fatalf("the container's write after a restart: %q, %v", b, err)
	}

	// The container's annotation wins over the pod's, either way.
	c := nativeCfg("b")
	c.Annotations = map[string]string{sandbox.RootfsAnnotation: sandbox.RootfsOverlay}
	idOverlay, err := e.m.Create(ctx, "native", c)
	if err != nil {
		t.Fatal(err)
	}
	if so, _ := e.m.Get(idOverlay); so.RootfsKind != "" || len(so.LowerDirs) != 2 {
		t.Fatalf("overlay annotation in a native pod: kind %q, lower dirs %v", so.RootfsKind, so.LowerDirs)
	}
	if _, err := os.Lstat(e.m.nativeDir(idOverlay)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an overlay container has a copy: %v", err)
	}
	c = nativeCfg("c")
	c.Annotations = map[string]string{sandbox.RootfsAnnotation: sandbox.RootfsNative}
	id2, err := e.m.Create(ctx, "pod1", c)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := e.m.Get(id2); s2.RootfsKind != RootfsNative {
		t.Fatalf("container annotation in a pod without one: kind %q", s2.RootfsKind)
	}

	for _, id := range []string{id, idOverlay, id2} {
		if err := e.m.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	requireEmpty(t, e)
}

func requireEmpty(t *testing.T, e *env) {
	t.Helper()
	for _, d := range []string{e.opts.Root, filepath.Join(e.opts.State, "containers")} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("left in %s: %v", d, ents)
		}
	}
	if len(e.images.leases) != 0 {
		t.Fatalf("leases left: %v", e.images.leases)
	}
}

// TestNativeRootBadAnnotation: a value that names no root filesystem is
// InvalidArgument, on the container or on its pod, and nothing is made.
func TestNativeRootBadAnnotation(t *testing.T) {
	e := nativeEnv(t)
	c := cfg("a")
	c.Annotations = map[string]string{sandbox.RootfsAnnotation: "copy"}
	_, err := e.m.Create(context.Background(), "native", c)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"native"`) {
		t.Fatalf("bad container annotation: %v", err)
	}
	e.pods.pods["badpod"] = &sandbox.Sandbox{ID: "badpod", State: sandbox.StateReady,
		Config: sandbox.Config{Annotations: map[string]string{sandbox.RootfsAnnotation: "Native"}}}
	if _, err := e.m.Create(context.Background(), "badpod", cfg("a")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad pod annotation: %v", err)
	}
	requireEmpty(t, e)
}

// TestNativeRootFullDisk: a copy that does not fit is ResourceExhausted,
// naming the full filesystem, and leaves nothing behind.
func TestNativeRootFullDisk(t *testing.T) {
	e := nativeEnv(t)
	if err := os.WriteFile(filepath.Join(e.images.layers[0], "big"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a sparse file: zeros written are allocated in the layer, and
	// copy_file_range copies them.
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v)", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	e.m.Close()
	e.opts.Root = filepath.Join(small, "root")
	e.start(t)
	_, err := e.m.Create(context.Background(), "native", nativeCfg("a"))
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), small) {
		t.Fatalf("copy onto a full disk: %v, want ResourceExhausted naming %s", err, small)
	}
	requireEmpty(t, e)
}
