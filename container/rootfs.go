package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/idmap"
	"github.com/crisp-runtime/crisp/sandbox"
)

// A container's writable layer lives in its persistent directory, so that it
// survives daemon restarts and clean reboots (kubelet may restart a container
// and expects nothing, but crictl users do); the mountpoint is volatile, and
// so is the overlay's syncing (rootfs_volatile.go).
func (m *Manager) upperDir(id string) string { return filepath.Join(m.store.dir(id), "fs", "upper") }
func (m *Manager) workDir(id string) string  { return filepath.Join(m.store.dir(id), "fs", "work") }
func (m *Manager) rootfsDir(id string) string {
	return filepath.Join(m.stateDir, "containers", id, "rootfs")
}

// maxMountData is the kernel's limit for mount(2)'s data argument (a page).
const maxMountData = 4095

// overlayData renders the overlay mount options. lower is top layer first;
// an empty upper means a read-only overlay (no upperdir and workdir).
func overlayData(lower []string, upper, work string) (string, error) {
	if len(lower) == 0 {
		return "", errors.New("image has no layers")
	}
	for _, p := range append(append([]string{}, lower...), upper, work) {
		// overlayfs splits options on ',' and lowerdir on ':'; crisp's
		// own paths never contain them, but a root configured with them
		// must fail clearly instead of mounting something else.
		if strings.ContainsAny(p, ",:") {
			return "", fmt.Errorf("overlay path %q contains ',' or ':'", p)
		}
	}
	data := "lowerdir=" + strings.Join(lower, ":")
	if upper != "" {
		data += ",upperdir=" + upper + ",workdir=" + work
	}
	if len(data) > maxMountData {
		return "", fmt.Errorf("overlay mount options for %d layers are %d bytes, over the kernel's %d", len(lower), len(data), maxMountData)
	}
	return data, nil
}

// mountRootfs mounts the container's overlay at target, creating the upper
// and work directories. Mounting an already mounted target is a no-op, so
// start-up can call it for every container.
func (m *Manager) mountRootfs(id string, lower []string, target string, idm *RootfsIDMap) error {
	upper, work := m.upperDir(id), m.workDir(id)
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if mounted(target) {
		return nil
	}
	if idm != nil {
		// The merged root directory is the upper one: owned by the
		// node's root, the pod's root could not create anything in "/".
		if err := os.Chown(upper, int(idm.UID), int(idm.GID)); err != nil {
			return err
		}
		mapped, release, err := m.idmapLayers(id, lower, idm)
		defer func() {
			if err := release(); err != nil {
				klog.InfoS("Releasing id-mapped rootfs layers failed", "container", id, "err", err)
			}
		}()
		if err != nil {
			return err
		}
		lower = mapped
	}
	data, err := overlayData(lower, upper, work)
	if err != nil {
		return err
	}
	return m.mountVolatile(id, target, data)
}

// unmountRootfs unmounts the overlay (and anything below it) and removes
// the mountpoint's directories. Not mounted is fine.
func (m *Manager) unmountRootfs(id, target string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Unmount(target, 0)
		if err == nil && mounted(target) {
			continue // stacked mounts: unmount the next one
		}
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			err = nil
			break
		}
		if err != unix.EBUSY {
			break
		}
		// A process that is exiting may still hold it for a moment.
		time.Sleep(20 * time.Millisecond)
	}
	if err == unix.EBUSY {
		// Lazy: kubelet must be able to remove the container; the mount
		// goes once its last user does.
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount rootfs %s: %w", target, err)
	}
	// Binds of image layers left by a crash must go before RemoveAll,
	// which would otherwise descend into the layers.
	if err := idmap.Release(m.layerBindsDir(id)); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Dir(target)); err != nil {
		return err
	}
	return nil
}

// mounted reports whether p is a mountpoint: statx says so (Linux 5.8+),
// which also sees a bind mount from the same filesystem (a native root);
// else its device differs from its parent's, as an overlay's always does.
func mounted(p string) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// RootfsIDMap is how the rootfs of a container in a pod with its own user
// namespace is mounted: each image layer through an idmapped bind mount with
// the pod's namespace, so the image's root-owned files are the pod root's,
// without a chown'ed copy of the image. The writable layer is not idmapped:
// what the container writes is stored with the node ids it runs as, which is
// also what copy-up gives files of the idmapped layers.
type RootfsIDMap struct {
	// Userns is the pod's pinned user namespace.
	Userns string `json:"userns"`
	// UID and GID are the node ids of the pod's root.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// layerBindsDir holds the idmapped binds of a container's layers while its
// overlay is mounted; short names keep the overlay options within a page.
func (m *Manager) layerBindsDir(id string) string {
	return filepath.Join(m.stateDir, "containers", id, "l")
}

// idmapLayers binds lower idmapped and returns the paths to mount an overlay
// (the rootfs or an image volume) from; release removes the binds, which the
// mounted overlay no longer needs. Overlays are mounted one at a time per
// container, so they share one scratch directory.
func (m *Manager) idmapLayers(id string, lower []string, idm *RootfsIDMap) ([]string, func() error, error) {
	userns, err := os.Open(idm.Userns)
	if err != nil {
		return nil, func() error { return nil }, fmt.Errorf("pod user namespace: %w", err)
	}
	defer userns.Close()
	paths, release, err := idmap.BindLayers(lower, m.layerBindsDir(id), userns)
	if err != nil {
		return nil, release, fmt.Errorf("idmapped image layers: %w", err)
	}
	return paths, release, nil
}

// rootfsIDMap is nil for a pod in the host's user namespace.
func rootfsIDMap(sb *sandbox.Sandbox) *RootfsIDMap {
	uid, gid, ok := sb.Config.Namespaces.RootIDs()
	if !ok || sb.Namespaces[sandbox.NSUser] == "" {
		return nil
	}
	return &RootfsIDMap{Userns: sb.Namespaces[sandbox.NSUser], UID: uid, GID: gid}
}

func ociIDMaps(maps []sandbox.IDMap) []specs.LinuxIDMapping {
	var out []specs.LinuxIDMapping
	for _, m := range maps {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
	}
	return out
}
