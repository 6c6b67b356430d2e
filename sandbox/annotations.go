package sandbox

import "github.com/crisp-runtime/crisp/errdefs"

// UlimitsAnnotation overrides default_ulimits for every container of a pod:
// a comma-separated list in the same format ("memlock=-1:-1,nofile=65536").
// CRI-O has no such annotation; the name is crisp's.
const UlimitsAnnotation = "crisp-runtime.io/ulimits"

// RootfsAnnotation chooses the root filesystem of a pod's containers:
// RootfsOverlay (the default) or RootfsNative. On a container's config it
// chooses for that container, over the pod's (for CRI clients other than
// kubelet, which passes no annotations of its own to containers).
const RootfsAnnotation = "crisp-runtime.io/rootfs"

const (
	// RootfsOverlay is an overlay of the image's shared layers and the
	// container's own writable layer: created in milliseconds, no copy.
	RootfsOverlay = "overlay"
	// RootfsNative is a plain directory holding a private copy of the
	// image (reflinked where the filesystem can): small-file work at the
	// host's speed, for the time and disk of a copy per container
	// (README "Root filesystem speed").
	RootfsNative = "native"
)

// RootfsKind is the root filesystem annotations ask for: RootfsOverlay
// when they say nothing. ok is false when they do not name one.
func RootfsKind(annotations map[string]string) (kind string, ok bool, err error) {
	v, ok := annotations[RootfsAnnotation]
	switch {
	case !ok:
		return RootfsOverlay, false, nil
	case v == RootfsOverlay || v == RootfsNative:
		return v, true, nil
	}
	return "", true, errdefs.InvalidArgument("annotation %s: %q is not a root filesystem; use %q (the default: an overlay of the image's layers) or %q (a private copy of the image in a plain directory)",
		RootfsAnnotation, v, RootfsOverlay, RootfsNative)
}

// validateAnnotations rejects the annotations crisp interprets when their
// value is bad, before anything of the pod exists.
func (m *Manager) validateAnnotations(cfg Config) error {
	if _, err := m.shm.shmSize(cfg); err != nil {
		return err
	}
	if v, ok := cfg.Annotations[UlimitsAnnotation]; ok {
		if _, err := m.rlimits.Override(v); err != nil {
			return errdefs.InvalidArgument("annotation %s: %v", UlimitsAnnotation, err)
		}
	}
	if _, _, err := RootfsKind(cfg.Annotations); err != nil {
		return err
	}
	return nil
}
