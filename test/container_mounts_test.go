//go:build integration

package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

const (
	// volImage has a file /test-image-1 on top of busybox (several layers);
	// volPause is a single layer, which overlayfs cannot mount alone.
	volImage = "gcr.io/k8s-staging-cri-tools/test-image-1:latest"
	volPause = "registry.k8s.io/pause:3.10"
)

func imageVolume(path, ref, sub string) *runtimeapi.Mount {
	return &runtimeapi.Mount{
		ContainerPath: path, Readonly: true, ImageSubPath: sub,
		Image: &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref},
	}
}

// wantCreateError checks that CreateContainer fails with code and a message
// containing msg.
func wantCreateError(t *testing.T, d *harness.Daemon, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig, code codes.Code, msg string) {
	t.Helper()
	resp, err := d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err == nil {
		t.Fatalf("%s: created %s, want %v error containing %q", cfg.Metadata.Name, resp.ContainerId, code, msg)
	}
	if s, _ := status.FromError(err); s.Code() != code || !strings.Contains(s.Message(), msg) {
		t.Fatalf("%s: %v, want %v containing %q", cfg.Metadata.Name, err, code, msg)
	}
}

// TestImageVolumes mounts images read-only into a container (kubelet's
// ImageVolume): whole images and sub-paths, across daemon restarts, with
// the image's removal refused while mounted.
func TestImageVolumes(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	volID := pull(t, d, volImage)
	pauseID := pull(t, d, volPause)
	pod, podCfg := ctrPod(t, d, "imagevol")

	cfg := ctrConfig("vols", "sleep 3600")
	cfg.Mounts = []*runtimeapi.Mount{
		imageVolume("/vol", volImage, ""),
		imageVolume("/etc-of-image", volID, "etc"),
		imageVolume("/pause", volPause, ""),
	}
	id := runCtr(t, d, pod, podCfg, cfg)

	check := func(when string) {
		t.Helper()
		r := execSync(t, d, id, 10, "sh", "-c", "test -e /vol/test-image-1 && test -x /vol/bin/sh && grep -q ^root: /etc-of-image/passwd && test ! -e /etc-of-image/etc && test -x /pause/pause")
		if r.ExitCode != 0 {
			t.Fatalf("%s: image volume contents: exit %d: %s%s", when, r.ExitCode, r.Stdout, r.Stderr)
		}
		for _, p := range []string{"/vol/new", "/etc-of-image/passwd", "/pause/x"} {
			r = execSync(t, d, id, 10, "touch", p)
			if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "Read-only file system") {
				t.Fatalf("%s: touch %s: exit %d %q, want a read-only file system", when, p, r.ExitCode, r.Stderr)
			}
		}
		refs := map[string]string{}
		for _, m := range ctrStatus(t, d, id).Mounts {
			refs[m.ContainerPath] = m.GetImage().GetImageRef()
		}
		if refs["/vol"] != volID || refs["/etc-of-image"] != volID || refs["/pause"] != pauseID {
			t.Fatalf("%s: status mount image refs %v, want %s and %s", when, refs, volID, pauseID)
		}
	}
	check("after start")

	// A mounted image cannot be removed (kubelet's image GC included),
	// however it is named; it stays listed and mounted.
	for _, ref := range []string{volImage, volID} {
		_, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if s, _ := status.FromError(err); s.Code() != codes.FailedPrecondition || !strings.Contains(s.Message(), id) {
			t.Fatalf("RemoveImage %s of a mounted image: %v, want FailedPrecondition naming container %s", ref, err, id)
		}
	}
	if st, err := d.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: volImage}}); err != nil || st.Image.GetId() != volID {
		t.Fatalf("image status after a refused removal: %v %v", st, err)
	}
	check("after a refused RemoveImage")

	d.Restart(t)
	check("after a daemon restart")
	d.Kill9AndRestart(t)
	check("after kill -9")
	if _, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: volID}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RemoveImage of a mounted image after restarts: %v, want FailedPrecondition", err)
	}

	volsDir := filepath.Join(d.State, "containers", id, "volumes")
	if ms := harness.MountsBelow(volsDir); len(ms) != 3 {
		t.Fatalf("mounts below %s: %v, want 3", volsDir, ms)
	}
	if _, err := d.Runtime.RemoveContainer(harness.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if ms := harness.MountsBelow(filepath.Join(d.State, "containers")); len(ms) != 0 {
		t.Fatalf("mounts left after removal: %v", ms)
	}
	// Released with the container: now the image can go, and a volume of
	// it must be pulled again first.
	if _, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: volID}}); err != nil {
		t.Fatalf("RemoveImage after the container's removal: %v", err)
	}
	wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("gone", "true"), imageVolume("/v", volImage, "")),
		codes.NotFound, "must be pulled")
	if again := pull(t, d, volImage); again != volID {
		t.Fatalf("re-pulled id %s, want %s", again, volID)
	}
}

func withMounts(cfg *runtimeapi.ContainerConfig, ms ...*runtimeapi.Mount) *runtimeapi.ContainerConfig {
	cfg.Mounts = append(cfg.Mounts, ms...)
	return cfg
}

// TestImageVolumeErrors: what kubelet can get wrong fails clearly and
// leaves nothing mounted or leased.
func TestImageVolumeErrors(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	pull(t, d, volImage)
	pod, podCfg := ctrPod(t, d, "imagevolerr")

	wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("nosub", "true"), imageVolume("/v", volImage, "not-existing")),
		codes.InvalidArgument, `image_sub_path "not-existing" does not exist in image`)
	rw := imageVolume("/v", volImage, "")
	rw.Readonly = false
	wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("rw", "true"), rw), codes.InvalidArgument, "readonly must be true")
	wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("escape", "true"), imageVolume("/v", volImage, "../..")), codes.InvalidArgument, "image_sub_path")
	wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("unpulled", "true"), imageVolume("/v", "registry.k8s.io/pause:3.9", "")),
		codes.NotFound, "must be pulled")

	if ms := harness.MountsBelow(filepath.Join(d.State, "containers")); len(ms) != 0 {
		t.Fatalf("mounts left by failed creates: %v", ms)
	}
	leases, _ := os.ReadDir(filepath.Join(d.Root, "images", "leases"))
	if len(leases) != 0 {
		t.Fatalf("leases left by failed creates: %v", leases)
	}
}

// TestRecursiveReadOnlyMount binds a host directory with a tmpfs below it:
// read-only makes only the top read-only, recursive read-only the tmpfs too.
func TestRecursiveReadOnlyMount(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	st, err := d.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.RuntimeHandlers[0].GetFeatures().GetRecursiveReadOnlyMounts() {
		t.Fatal("Status does not advertise recursive_read_only_mounts on a kernel with mount_setattr")
	}
	pull(t, d, ctrImage)
	pod, podCfg := ctrPod(t, d, "rro")

	host := t.TempDir()
	sub := filepath.Join(host, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })

	ro := &runtimeapi.Mount{ContainerPath: "/ro", HostPath: host, Readonly: true}
	rro := &runtimeapi.Mount{ContainerPath: "/rro", HostPath: host, Readonly: true, RecursiveReadOnly: true}
	id := runCtr(t, d, pod, podCfg, withMounts(ctrConfig("rro", "sleep 3600"), ro, rro))

	if r := execSync(t, d, id, 10, "touch", "/ro/tmpfs/ok"); r.ExitCode != 0 {
		t.Fatalf("plain read-only bind: the tmpfs below should stay writable: %s", r.Stderr)
	}
	if r := execSync(t, d, id, 10, "touch", "/ro/top"); r.ExitCode == 0 {
		t.Fatal("plain read-only bind: the top is writable")
	}
	if r := execSync(t, d, id, 10, "touch", "/rro/tmpfs/no"); r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "Read-only file system") {
		t.Fatalf("recursive read-only bind: write to the tmpfs below: exit %d %q, want EROFS", r.ExitCode, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(sub, "ok")); err != nil {
		t.Fatalf("the write through the plain bind did not reach the host's tmpfs: %v", err)
	}

	notRO := &runtimeapi.Mount{ContainerPath: "/x", HostPath: host, RecursiveReadOnly: true}
	wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("notro", "true"), notRO), codes.InvalidArgument, "recursive_read_only needs readonly")
	for _, p := range []runtimeapi.MountPropagation{runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL} {
		m := &runtimeapi.Mount{ContainerPath: "/x", HostPath: host, Readonly: true, RecursiveReadOnly: true, Propagation: p}
		wantCreateError(t, d, pod, podCfg, withMounts(ctrConfig("prop", "true"), m), codes.InvalidArgument, "recursive_read_only needs private propagation")
	}
}
