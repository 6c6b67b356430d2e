package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container/rootcopy"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/idmap"
	"github.com/crisp-runtime/crisp/internal/topdir"
	"github.com/crisp-runtime/crisp/sandbox"
)

// A native root (annotation crisp-runtime.io/rootfs: native) is a plain
// directory with a private copy of the image, made at CreateContainer and
// bind-mounted where an overlay would be. In an overlay every file
// operation runs through the VFS twice; in a plain directory small-file
// work costs what it costs on the host (README "Root filesystem speed").
// The copy is the container's writable layer: it lives beside where an
// upper directory would, in the container's persistent directory, and
// goes with it.

// RootfsNative is Container.RootfsKind of a native root; "" is an overlay.
const RootfsNative = sandbox.RootfsNative

// nativeDir is where a container's copy is. Its name is the container's
// own: ext4 picks the block group of a directory made in a top directory
// (below) starting from a hash of its name alone, so every copy named
// alike landed in the group the last one was just deleted from, whose
// freed inodes ext4 without a journal then skips one by one: a copy of
// the numpy image took 11.7 s so, 0.7 s named apart (benchmark R4).
func (m *Manager) nativeDir(id string) string {
	return filepath.Join(m.store.dir(id), "fs", "native-"+id)
}

// rootfsKind is what the container's annotations ask for, else the pod's
// ("" for an overlay).
func rootfsKind(sb *sandbox.Sandbox, cfg *Config) (string, error) {
	kind, ok, err := sandbox.RootfsKind(cfg.Annotations)
	if err == nil && !ok {
		kind, _, err = sandbox.RootfsKind(sb.Config.Annotations)
	}
	if err != nil || kind == sandbox.RootfsOverlay {
		return "", err
	}
	return kind, nil
}

// copyNativeRoot copies the image's layers (top first) into the
// container's native root. A failure leaves a partial copy that the
// caller's rollback removes with the container's directory; a full disk is
// ResourceExhausted.
func (m *Manager) copyNativeRoot(ctx context.Context, c *Container, layers []string) error {
	dir := m.nativeDir(c.ID)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return errdefs.NoSpace("the container's directory", err)
	}
	// Copies are made and removed again and again: each in a block group
	// of its own, or ext4 without a journal skips the inodes the last
	// one freed (package topdir).
	if err := topdir.Mark(filepath.Dir(dir)); err != nil {
		klog.V(2).InfoS("Cannot mark a native root's directory as a top directory (chattr +T); fine outside ext4", "container", c.ID, "err", err)
	}
	st, err := rootcopy.Copy(ctx, layers, dir)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return fmt.Errorf("copying image %s into the container's native root: %w", c.Image.ID, err)
		}
		return errdefs.NoSpace(fmt.Sprintf("a native root (a copy of image %s)", c.Image.ID),
			fmt.Errorf("copying image %s into the container's native root: %w", c.Image.ID, err))
	}
	klog.FromContext(ctx).V(1).Info("Copied the image into a native root", "container", c.ID, "name", c.Name, "image", c.Image.ID,
		"duration", st.Duration, "files", st.Files, "bytes", st.Bytes, "dirs", st.Dirs, "hardLinks", st.HardLinks, "method", st.Method)
	return nil
}

// mountNativeRoot binds the copy at target: idmapped with the pod's user
// namespace when it has one, so that the image's root-owned files are the
// pod root's without a chown of the copy (chown would also clear file
// capabilities and setuid bits, which would then have to be put back);
// what the container writes is stored with the container's ids. Mounting
// an already mounted target is a no-op, so start-up can call it for every
// container.
func (m *Manager) mountNativeRoot(id, target string, idm *RootfsIDMap) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if mounted(target) {
		return nil
	}
	src := m.nativeDir(id)
	if _, err := os.Lstat(src); err != nil {
		return fmt.Errorf("the container's native root: %w", err)
	}
	if idm == nil {
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the native root %s at %s: %w", src, target, err)
		}
		return nil
	}
	userns, err := os.Open(idm.Userns)
	if err != nil {
		return fmt.Errorf("pod user namespace: %w", err)
	}
	defer userns.Close()
	if err := idmap.Bind(src, target, userns); err != nil {
		return fmt.Errorf("idmapped native root: %w", err)
	}
	return nil
}

// mountRoot mounts a container's root as its record says it is made.
func (m *Manager) mountRoot(c *Container) error {
	if c.RootfsKind == RootfsNative {
		return m.mountNativeRoot(c.ID, c.Rootfs, c.IDMap)
	}
	return m.mountRootfs(c.ID, c.LowerDirs, c.Rootfs, c.IDMap)
}

// writableDir is what a container has written, or for a native root
// everything it can: the copy (ContainerStats' writable layer).
func (m *Manager) writableDir(c *Container) string {
	if c.RootfsKind == RootfsNative {
		return m.nativeDir(c.ID)
	}
	return m.upperDir(c.ID)
}
