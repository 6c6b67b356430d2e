package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
)

// Image volumes (kubelet's ImageVolume feature) are images that kubelet has
// already pulled, mounted read-only into a container. Each is a read-only
// overlay of the image's layers at <state>/containers/<id>/volumes/<n>/mnt,
// bound (or its sub-path) into the container. A mounted lease per volume
// keeps the image while the container exists: RemoveImage refuses it until
// the container is removed, as CRI-O does, so kubelet's image GC cannot
// take a volume's image away and a reboot can always mount it again.

// ImageVolume is one image volume of a container, recorded so that it can
// be re-mounted after a reboot and released on removal.
type ImageVolume struct {
	// ContainerPath is the cleaned destination, the key spec generation
	// uses.
	ContainerPath string `json:"containerPath"`
	// ImageID is what ContainerStatus reports as the mount's image_ref: the
	// id PullImage returned, as critest and kubelet compare it.
	ImageID string `json:"imageId"`
	SubPath string `json:"subPath,omitempty"`
	// LowerDirs are the image's layers, top first.
	LowerDirs []string `json:"lowerDirs"`
}

func (m *Manager) imageVolumesDir(id string) string {
	return filepath.Join(m.stateDir, "containers", id, "volumes")
}

func (m *Manager) imageVolumeDir(id string, n int) string {
	return filepath.Join(m.imageVolumesDir(id), strconv.Itoa(n))
}

// imageVolumeLease is the image store lease owner of volume n.
func imageVolumeLease(id string, n int) string { return id + "-vol-" + strconv.Itoa(n) }

// resolveImageVolumes validates the image volumes of cfg and finds their
// images, without side effects, so that a bad request fails before anything
// is created.
func (m *Manager) resolveImageVolumes(cfg *Config) ([]ImageVolume, error) {
	var vols []ImageVolume
	for i := range cfg.Mounts {
		mnt := &cfg.Mounts[i]
		if !spec.IsImageVolume(mnt) {
			continue
		}
		ref := mnt.Image.Image
		if err := spec.ValidateImageVolume(mnt); err != nil {
			return nil, fmt.Errorf("mounts[%d]: %w", i, err)
		}
		img, err := m.images.Get(ref)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, errdefs.NotFound("mounts[%d]: image volume %q: the image is not on the node; it must be pulled before the container is created", i, ref)
		}
		if err != nil {
			return nil, fmt.Errorf("mounts[%d]: image volume %q: %w", i, ref, err)
		}
		lower, err := m.images.LayerDirs(img.ID)
		if err != nil {
			return nil, fmt.Errorf("mounts[%d]: image volume %q: %w", i, ref, err)
		}
		vols = append(vols, ImageVolume{
			// Validated by spec generation; Clean matches its key.
			ContainerPath: path.Clean(mnt.ContainerPath),
			ImageID:       img.ID,
			SubPath:       mnt.ImageSubPath,
			LowerDirs:     lower,
		})
	}
	return vols, nil
}

// mountImageVolumes leases and mounts each volume and returns what to bind
// at each container path. On error the caller runs releaseImageVolumes.
func (m *Manager) mountImageVolumes(id string, vols []ImageVolume, idm *RootfsIDMap) (map[string]string, error) {
	if len(vols) == 0 {
		return nil, nil
	}
	srcs := make(map[string]string, len(vols))
	for n, v := range vols {
		if err := m.images.LeaseMounted(imageVolumeLease(id, n), v.ImageID); err != nil {
			return nil, fmt.Errorf("image volume at %q: %w", v.ContainerPath, err)
		}
		mnt, err := m.mountImageVolume(id, n, v, idm)
		if err != nil {
			return nil, err
		}
		src, err := imageVolumeSource(mnt, v)
		if err != nil {
			return nil, err
		}
		srcs[v.ContainerPath] = src
	}
	return srcs, nil
}

// mountImageVolume mounts volume n read-only; an existing mount is kept, so
// start-up can call it for every container. In a pod with its own user
// namespace its layers are idmapped like the rootfs's (an overlay mount
// itself cannot be idmapped).
func (m *Manager) mountImageVolume(id string, n int, v ImageVolume, idm *RootfsIDMap) (string, error) {
	dir := m.imageVolumeDir(id, n)
	mnt := filepath.Join(dir, "mnt")
	lower := v.LowerDirs
	if len(lower) == 1 {
		// overlayfs without an upper layer needs two lower ones.
		empty := filepath.Join(dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", err
		}
		lower = append([]string{lower[0]}, empty)
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", err
	}
	if mounted(mnt) {
		return mnt, nil
	}
	if idm != nil {
		mapped, release, err := m.idmapLayers(id, lower, idm)
		defer func() {
			if err := release(); err != nil {
				klog.InfoS("Releasing id-mapped image volume layers failed", "container", id, "err", err)
			}
		}()
		if err != nil {
			return "", fmt.Errorf("image volume at %q: %w", v.ContainerPath, err)
		}
		lower = mapped
	}
	data, err := overlayData(lower, "", "")
	if err != nil {
		return "", fmt.Errorf("image volume at %q: %w", v.ContainerPath, err)
	}
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, data); err != nil {
		return "", fmt.Errorf("image volume at %q: mount %s: %w", v.ContainerPath, v.ImageID, err)
	}
	return mnt, nil
}

// imageVolumeSource resolves the sub-path inside the mounted image:
// symlinks in the image are followed as if the image were the root, so a
// sub-path can never leave it.
func imageVolumeSource(mnt string, v ImageVolume) (string, error) {
	if v.SubPath == "" {
		return mnt, nil
	}
	p, err := securejoin.SecureJoin(mnt, v.SubPath)
	if err != nil {
		return "", fmt.Errorf("image volume at %q: resolve image_sub_path %q: %w", v.ContainerPath, v.SubPath, err)
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errdefs.InvalidArgument("image volume at %q: image_sub_path %q does not exist in image %s", v.ContainerPath, v.SubPath, v.ImageID)
		}
		return "", fmt.Errorf("image volume at %q: image_sub_path %q: %w", v.ContainerPath, v.SubPath, err)
	}
	return p, nil
}

// releaseImageVolumes unmounts every image volume of container id (found
// on disk, so that it also works without a record) and drops the n volume
// leases. Nothing mounted and unknown leases are fine.
func (m *Manager) releaseImageVolumes(id string, n int) error {
	dir := m.imageVolumesDir(id)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		// unmountRootfs detaches a busy mount and removes the parent.
		if err := m.unmountRootfs(id, filepath.Join(dir, e.Name(), "mnt")); err != nil {
			return fmt.Errorf("image volume: %w", err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := 0; i < n; i++ {
		if err := m.images.Unlease(imageVolumeLease(id, i)); err != nil {
			return fmt.Errorf("image volume: %w", err)
		}
	}
	return nil
}

// remountImageVolumes restores the mounts of a recovered container (after a
// reboot, /run is empty; after a daemon restart they are still there).
func (m *Manager) remountImageVolumes(c *Container) {
	for n, v := range c.ImageVolumes {
		if _, err := m.mountImageVolume(c.ID, n, v, c.IDMap); err != nil {
			klog.ErrorS(err, "Re-mounting an image volume failed", "container", c.ID)
		}
	}
}
