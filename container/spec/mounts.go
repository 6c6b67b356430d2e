package spec

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
)

// defaultMounts are containerd's (pkg/oci defaultMounts without /run, which
// the CRI plugin removes) plus the read-only cgroup mount the CRI plugin adds.
// /sys and /sys/fs/cgroup become writable for privileged containers.
func defaultMounts(privileged bool) []specs.Mount {
	sysMode := "ro"
	if privileged {
		sysMode = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysMode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysMode}},
	}
}

// lookupMount finds the mount that path is on; a variable for tests.
var lookupMount = func(p string) (*mountinfo.Info, error) {
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(p))
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, i := range infos {
		if best == nil || len(i.Mountpoint) > len(best.Mountpoint) {
			best = i
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no mount found for %q", p)
	}
	return best, nil
}

// mounts returns the spec's mounts and the rootfs propagation. The sandbox's
// files (/etc/hosts, /etc/resolv.conf, /etc/hostname, /dev/shm) are added
// unless a requested mount has the same destination (kubelet manages /etc/hosts
// itself for most pods); default mounts a requested one replaces are dropped, all
// of /dev/* when /dev itself is mounted. Binds are sorted by depth so that a
// parent never shadows a child.
func mounts(in *Input) ([]specs.Mount, string, error) {
	cfg := in.Config
	sc := &cfg.Security
	var binds []Mount
	seen := map[string]bool{}
	for i, m := range cfg.Mounts {
		dst, err := cleanDestination(m.ContainerPath)
		if err != nil {
			return nil, "", errdefs.InvalidArgument("mounts[%d].container_path: %v", i, err)
		}
		if seen[dst] {
			return nil, "", errdefs.InvalidArgument("mounts[%d].container_path %q is mounted twice", i, dst)
		}
		seen[dst] = true
		binds = append(binds, m)
	}

	// Sandbox files: read-only when the rootfs is (as containerd does), so
	// that a read-only container cannot rewrite the pod's resolv.conf.
	ro := sc.ReadonlyRootfs
	for _, f := range []struct{ dst, src string }{
		{"/etc/hostname", in.Pod.HostnamePath},
		{"/etc/hosts", in.Pod.HostsPath},
		{"/etc/resolv.conf", in.Pod.ResolvConfPath},
	} {
		if f.src == "" || seen[f.dst] {
			continue
		}
		if _, err := os.Stat(f.src); err != nil {
			continue // containerd skips a sandbox file that is missing
		}
		binds = append(binds, Mount{ContainerPath: f.dst, HostPath: f.src, Readonly: ro})
		seen[f.dst] = true
	}
	// The pod's /dev/shm, which is the host's for host IPC pods.
	if in.Pod.ShmPath != "" && !seen["/dev/shm"] {
		binds = append(binds, Mount{ContainerPath: "/dev/shm", HostPath: in.Pod.ShmPath})
		seen["/dev/shm"] = true
	}

	var out []specs.Mount
	for _, m := range defaultMounts(sc.Privileged) {
		if seen[m.Destination] || (seen["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		out = append(out, m)
	}

	slices.SortStableFunc(binds, func(a, b Mount) int {
		return depth(a.ContainerPath) - depth(b.ContainerPath)
	})
	propagation := ""
	for i := range binds {
		m := &binds[i]
		bm, prop, err := bindMount(m, in)
		if err == nil {
			err = idmapMount(&bm, m, in)
		}
		if err != nil {
			return nil, "", fmt.Errorf("mount %q: %w", m.ContainerPath, err)
		}
		out = append(out, bm)
		// The rootfs must propagate at least as much as its most
		// propagating bind, or the bind's events stop at the rootfs.
		switch {
		case prop == "rshared":
			propagation = "rshared"
		case prop == "rslave" && propagation == "":
			propagation = "rslave"
		}
	}
	return out, propagation, nil
}

func depth(p string) int {
	return strings.Count(path.Clean(p), "/")
}

// cleanDestination requires an absolute path without ".." elements: runc
// resolves destinations inside the rootfs safely, but a ".." in a request is
// never legitimate and hides what is meant.
func cleanDestination(p string) (string, error) {
	if p == "" {
		return "", errors.New("is empty")
	}
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%q is not absolute", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("%q contains \"..\"", p)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%q contains a NUL byte", p)
	}
	c := path.Clean(p)
	if c == "/" {
		return "", errors.New("cannot mount over the container's root")
	}
	return c, nil
}

// bindMount turns a requested mount into an rbind, creating a missing source
// directory the way containerd does (kubelet relies on it for some volume
// types) and resolving symlinks in the source so that the mount table shows
// the real path.
func bindMount(m *Mount, in *Input) (specs.Mount, string, error) {
	dst, err := cleanDestination(m.ContainerPath)
	if err != nil {
		return specs.Mount{}, "", errdefs.InvalidArgument("container_path: %v", err)
	}
	if IsImageVolume(m) {
		return imageVolumeMount(m, dst, in.ImageVolumes[dst])
	}
	if m.Image != nil && m.HostPath == "" {
		return specs.Mount{}, "", errdefs.InvalidArgument("image.image is required for an image volume")
	}
	// Request errors first, before the host's propagation is looked at.
	if m.RecursiveReadOnly {
		switch {
		case !m.Readonly:
			return specs.Mount{}, "", errdefs.InvalidArgument("recursive_read_only needs readonly")
		case m.Propagation != PropagationPrivate && m.Propagation != "":
			// A propagating mount would receive new, writable submounts.
			return specs.Mount{}, "", errdefs.InvalidArgument("recursive_read_only needs private propagation, got %s", m.Propagation)
		case !in.Options.RecursiveReadOnlyMounts:
			// kubelet asks only when Status advertises the feature.
			return specs.Mount{}, "", errdefs.FailedPrecondition("recursive_read_only needs mount_setattr (Linux 5.12 or later), which this node's kernel does not provide")
		}
	}
	src := m.HostPath
	if !filepath.IsAbs(src) {
		return specs.Mount{}, "", errdefs.InvalidArgument("host_path %q is not absolute", src)
	}
	if _, err := os.Stat(src); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return specs.Mount{}, "", fmt.Errorf("stat host_path: %w", err)
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			return specs.Mount{}, "", fmt.Errorf("create missing host_path: %w", err)
		}
	}
	if src, err = filepath.EvalSymlinks(src); err != nil {
		return specs.Mount{}, "", fmt.Errorf("resolve host_path: %w", err)
	}

	opts := []string{"rbind"}
	var prop string
	switch m.Propagation {
	case PropagationPrivate, "":
		prop = "rprivate"
	case PropagationHostToContainer:
		if err := requirePropagation(src, false); err != nil {
			return specs.Mount{}, "", err
		}
		prop = "rslave"
	case PropagationBidirectional:
		if err := requirePropagation(src, true); err != nil {
			return specs.Mount{}, "", err
		}
		prop = "rshared"
	default:
		return specs.Mount{}, "", errdefs.InvalidArgument("propagation %s is not supported", m.Propagation)
	}
	opts = append(opts, prop)

	switch {
	case m.RecursiveReadOnly:
		opts = append(opts, "rro")
	case m.Readonly:
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	// selinux_relabel is ignored: crisp runs without SELinux labels.
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}, prop, nil
}

// requirePropagation checks that src's mount can propagate into the
// container: rslave needs a shared or slave source, rshared a shared one.
// Without this, the mount silently does not propagate, and kubelet's
// mount-propagation users (CSI node plugins) break in confusing ways.
func requirePropagation(src string, shared bool) error {
	mi, err := lookupMount(src)
	if err != nil {
		return err
	}
	for _, opt := range strings.Fields(mi.Optional) {
		if strings.HasPrefix(opt, "shared:") || (!shared && strings.HasPrefix(opt, "master:")) {
			return nil
		}
	}
	want, kind := "shared or slave", "HOST_TO_CONTAINER"
	if shared {
		want, kind = "shared", "BIDIRECTIONAL"
	}
	return errdefs.FailedPrecondition("%s propagation: host path %q is on mount %q which is not a %s mount (make it one with `mount --make-shared %s`)",
		kind, src, mi.Mountpoint, want, mi.Mountpoint)
}

// IsImageVolume reports whether m mounts an image (kubelet's ImageVolume)
// rather than a host path.
func IsImageVolume(m *Mount) bool { return m.Image != nil && m.Image.Image != "" }

// ValidateImageVolume checks what an image volume request can get wrong
// without looking at the image. Image volumes are read-only by definition
// (the CRI and critest require readonly=true rather than forcing it).
func ValidateImageVolume(m *Mount) error {
	var ref string
	if m.Image != nil {
		ref = m.Image.Image
	}
	switch sp := m.ImageSubPath; {
	case m.HostPath != "":
		return errdefs.InvalidArgument("image volume %q: host_path must be empty, got %q", ref, m.HostPath)
	case !m.Readonly:
		return errdefs.InvalidArgument("image volume %q: image volumes are read-only; readonly must be true", ref)
	case sp != "" && !filepath.IsLocal(sp):
		return errdefs.InvalidArgument("image volume %q: image_sub_path %q must be a relative path inside the image without \"..\"", ref, sp)
	}
	return nil
}

// imageVolumeMount binds the caller's mount of the image. Propagation is
// always private: nothing is ever mounted below an image volume, and
// requiring shared state on crisp's own directory would only fail.
func imageVolumeMount(m *Mount, dst, src string) (specs.Mount, string, error) {
	if err := ValidateImageVolume(m); err != nil {
		return specs.Mount{}, "", err
	}
	if src == "" {
		return specs.Mount{}, "", fmt.Errorf("image volume %q was not mounted by the caller", m.Image.Image)
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "ro"}}, "rprivate", nil
}
