package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"

	"github.com/crisp-runtime/crisp/errdefs"
)

// execTasks is how many tasks an exec's start has at once in the
// container's cgroup: libcontainer moves its first process in before
// nsexec clones the other two stages.
const execTasks = 3

// pidsFullError explains an exec that could not start in a container whose
// cgroup, or one above it (the pod's, where kubelet writes its PID limit),
// has less room under pids.max than an exec's start needs: nsexec's clones
// are refused and libcontainer says only "procReady not received". It
// returns err itself when every cgroup of the init has room.
func pidsFullError(id string, initPid int, err error) error {
	dir, cur, limit, full := pidsFull(initPid)
	if !full {
		return err
	}
	return fmt.Errorf("exec in container %s: no new process can start: cgroup %s has %d of its pids.max %d tasks and an exec needs %d more: %w: %w",
		id, dir, cur, limit, execTasks, errdefs.ErrResourceExhausted, err)
}

// pidsFull finds the first of pid's pids cgroups, from its own up, with
// less than execTasks of room under pids.max.
func pidsFull(pid int) (dir string, cur, limit int, full bool) {
	root, d := pidsCgroupOf(pid)
	for ; d != "" && strings.HasPrefix(d, root+"/"); d = filepath.Dir(d) {
		max, ok := readCount(filepath.Join(d, "pids.max"))
		if !ok {
			continue // "max", or no such file
		}
		if cur, ok := readCount(filepath.Join(d, "pids.current")); ok && max-cur < execTasks {
			return d, cur, max, true
		}
	}
	return "", 0, 0, false
}

// pidsCgroupOf is pid's cgroup directory in the hierarchy that has the pids
// controller (the unified one on cgroup v2) and that hierarchy's root.
func pidsCgroupOf(pid int) (root, dir string) {
	if pid <= 0 {
		return "", ""
	}
	paths, err := cgroups.ParseCgroupFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", ""
	}
	root, key := "/sys/fs/cgroup/pids", "pids"
	if cgroups.IsCgroup2UnifiedMode() {
		root, key = "/sys/fs/cgroup", ""
	}
	p, ok := paths[key]
	if !ok {
		return "", ""
	}
	return root, filepath.Join(root, p)
}

func readCount(p string) (int, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}
