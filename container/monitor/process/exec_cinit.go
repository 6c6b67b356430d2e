package process

import (
	"github.com/opencontainers/runc/libcontainer"

	"github.com/crisp-runtime/crisp/container/monitor/internal/cinit"
)

// cinitTarget is the container as the C init needs it, prepared for the
// first exec; nil if the C init cannot run this container's execs (they
// go through libcontainer's init, as before). Call with the bundle lock
// and reapMu held: preparing compiles the seccomp filter in a child.
func (m *monitor) cinitTarget(lc *libcontainer.Container) *cinit.Target {
	m.lcMu.Lock()
	defer m.lcMu.Unlock()
	if m.cinitDone {
		return m.cinit
	}
	m.cinitDone = true
	t, err := cinit.Prepare(lc, m.initPid, m.cfg.LibcontainerRoot())
	if err != nil {
		m.logf("execs go through libcontainer's init: %v", err)
		return nil
	}
	m.cinit = t
	return t
}
