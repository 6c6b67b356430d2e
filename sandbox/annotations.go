package sandbox

import "github.com/crisp-runtime/crisp/errdefs"

// UlimitsAnnotation overrides default_ulimits for every container of a pod:
// a comma-separated list in the same format ("memlock=-1:-1,nofile=65536").
// CRI-O has no such annotation; the name is crisp's.
const UlimitsAnnotation = "crisp-runtime.io/ulimits"

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
	return nil
}
