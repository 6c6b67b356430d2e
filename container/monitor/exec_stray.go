package monitor

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// stage1Comm is the name nsexec gives its stage 1 (runc's nsexec.c).
const stage1Comm = "runc:[1:CHILD]"

// reapStrayStages reaps the stray stage 1 of a failed exec now, and once more
// a little later in case it had closed its end of the sync socket (which
// failed the start) but not yet become a zombie.
func reapStrayStages() {
	reapStrayStage1()
	time.AfterFunc(time.Second, reapStrayStage1)
}

// reapStrayStage1 reaps what an exec that failed to start may leave with
// the process that ran libcontainer. nsexec clones its stage 1 with
// CLONE_PARENT, so stage 1 is the caller's child, and libcontainer learns
// its pid, to reap it, only once stage 2 exists. When stage 2's clone is
// refused (the container at its pids.max), stage 1 exits unreaped: a zombie
// child of crisp, charged to the container's pids, for as long as crisp
// runs. runc's CLI exits and leaves it to the shim; the monitor, a
// subreaper, reaps it with any other child it does not wait for itself.
// Only zombies are reaped: a stage 1 of a concurrent exec that is still
// alive is left to it, and libcontainer ignores the error of its own wait.
func reapStrayStage1() {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := proto.ReadProcStat(pid)
		if err != nil || st.PPid != self || st.State != 'Z' {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != stage1Comm {
			continue
		}
		_, _ = unix.Wait4(pid, nil, unix.WNOHANG, nil)
	}
}
