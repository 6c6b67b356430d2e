package process

import (
	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// createSteps are the steps of libcontainer's Start of the container's init
// as its parent side (this process) sees them; the init's own steps end
// with the sync messages the parent reads from it.
var createSteps = []libct.Step{
	{Prefix: "runc exeseal: ", Name: "libct.seal-exe"},
	{Prefix: "mount source thread: successfully running", Name: "libct.exec-init+cgroup-apply+nsexec"},
	{Prefix: "read sync type:procHooks", Name: "libct.init-mounts"},
	{Prefix: "writing sync type:procHooksDone", Name: "libct.cgroup-set"},
	{Prefix: "read sync type:procReady", Name: "libct.pivot-root+sysctls"},
	{Prefix: "writing sync type:procRun", Name: "libct.rlimits+state"},
	{Prefix: "sync pipe closed", Name: "libct.seccomp+caps"},
}

// traceStart makes libcontainer's steps in starting the init marks, until
// the returned function is called.
func (m *monitor) traceStart() func() {
	stop, ok := libct.Trace(createSteps)
	if !ok {
		return func() {}
	}
	return func() {
		for _, mk := range stop() {
			m.marks = append(m.marks, proto.Mark{Name: mk.Name, At: mk.At.UnixNano()})
		}
	}
}
