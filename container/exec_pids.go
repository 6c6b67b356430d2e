package container

import (
	"fmt"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/pidsroom"
)

// execTasks is how many tasks an exec's start may have at once in the
// container's cgroup: libcontainer moves its first process in before
// nsexec clones the other two stages, and the last one's Go runtime starts
// threads. Measured: with 4 tasks of room 2 execs in 5 started, with 5
// all did (6 when the limit is the pod's, which also holds the monitor).
const execTasks = 6

// pidsFullError explains an exec that could not start in a container whose
// cgroup, or one above it (the pod's, where kubelet writes its PID limit),
// has less room under pids.max than an exec's start needs: nsexec's clones
// are refused and libcontainer says only "procReady not received". It
// returns err itself when every cgroup of the init has room.
func pidsFullError(id string, initPid int, err error) error {
	l, limited := pidsroom.Tightest(pidsroom.CgroupOf(initPid))
	if !limited || l.Room() >= execTasks {
		return err
	}
	return fmt.Errorf("exec in container %s: no new process can start: cgroup %s has %d of its pids.max %d tasks and an exec may need %d more: %w: %w",
		id, l.Dir, l.Current, l.Max, execTasks, errdefs.ErrResourceExhausted, err)
}
