package container

// Features are the optional CRI features this node's containers support,
// which Status advertises to kubelet.
type Features struct {
	// RecursiveReadOnlyMounts: the kernel has mount_setattr.
	RecursiveReadOnlyMounts bool
}

// Features is probed once, at start-up (spec.DetectOptions).
func (m *Manager) Features() Features {
	return Features{RecursiveReadOnlyMounts: m.specOpts.RecursiveReadOnlyMounts}
}
