package monitor

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// execPidsMargin is the room for new tasks that the cgroups of the monitor
// (its leaf, the pod, and up) must have for it to run an exec: the forks
// of libcontainer's init (three stages at most at once) and the threads
// its Go runtime may add for blocking calls. A monitor whose runtime cannot
// create a thread aborts, so with less room the daemon, which is not in
// the pod, runs the exec as it always did.
const execPidsMargin = 32

// pidsHeadroom is the smallest room, pids.max - pids.current, of dir and
// its ancestors up to root (without it: a root cgroup has no limit), and
// false if none has a limit.
func pidsHeadroom(root, dir string) (int, bool) {
	room, limited := 0, false
	for d := dir; strings.HasPrefix(d, root+"/"); d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "pids.max"))
		if err != nil {
			continue
		}
		max, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue // "max"
		}
		b, err = os.ReadFile(filepath.Join(d, "pids.current"))
		if err != nil {
			continue
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		if r := max - cur; !limited || r < room {
			room, limited = r, true
		}
	}
	return room, limited
}

// monitorPidsDir returns the monitor's cgroup in the pids hierarchy (the
// unified one on cgroup v2) and that hierarchy's mount point.
func monitorPidsDir(pid int) (root, dir string, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	v2 := cgroups.IsCgroup2UnifiedMode()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		fs := strings.SplitN(s.Text(), ":", 3)
		if len(fs) != 3 {
			continue
		}
		if v2 && fs[0] == "0" {
			return "/sys/fs/cgroup", filepath.Join("/sys/fs/cgroup", fs[2]), nil
		}
		for _, c := range strings.Split(fs[1], ",") {
			if !v2 && c == "pids" {
				return "/sys/fs/cgroup/pids", filepath.Join("/sys/fs/cgroup/pids", fs[2]), nil
			}
		}
	}
	return "", "", s.Err()
}

// monitorHasPidsRoom reports whether the monitor's cgroups leave it room
// to run an exec (execPidsMargin). Unknown limits do not stop it.
func (c *Container) monitorHasPidsRoom() bool {
	c.mu.Lock()
	pid := c.rec.MonitorPid
	c.mu.Unlock()
	c.lcMu.Lock()
	if c.pidsDir == "" && pid > 0 {
		if root, dir, err := monitorPidsDir(pid); err == nil && dir != "" {
			c.pidsRoot, c.pidsDir = root, dir
		}
	}
	root, dir := c.pidsRoot, c.pidsDir
	c.lcMu.Unlock()
	if dir == "" {
		return true
	}
	room, limited := pidsHeadroom(root, dir)
	return !limited || room >= execPidsMargin
}
