// Package pidsroom finds how many more tasks a process's pids cgroups
// admit. An exec needs a few (libcontainer's init clones two more stages
// inside the container's cgroup) and a Go process that cannot create a
// thread aborts, so both the daemon and the container monitor look before
// or after they start one.
package pidsroom

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// Limit is one cgroup's pids.max and pids.current.
type Limit struct {
	Dir          string
	Current, Max int
}

// Room is how many more tasks the cgroup admits (negative when a limit was
// lowered below what it holds).
func (l Limit) Room() int { return l.Max - l.Current }

// CgroupOf is pid's cgroup directory in the hierarchy that has the pids
// controller (the unified one on cgroup v2) and that hierarchy's root; both
// empty when it cannot be read.
func CgroupOf(pid int) (root, dir string) {
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

// Tightest is the cgroup with the least room of dir and its ancestors below
// root (a root cgroup has no limit); false if none has a limit. A cgroup
// whose pids.max is "max", or without the files, does not count.
func Tightest(root, dir string) (Limit, bool) {
	var best Limit
	found := false
	for d := dir; root != "" && strings.HasPrefix(d, root+"/"); d = filepath.Dir(d) {
		max, ok := readCount(filepath.Join(d, "pids.max"))
		if !ok {
			continue
		}
		cur, ok := readCount(filepath.Join(d, "pids.current"))
		if !ok {
			continue
		}
		if l := (Limit{Dir: d, Current: cur, Max: max}); !found || l.Room() < best.Room() {
			best, found = l, true
		}
	}
	return best, found
}

func readCount(p string) (int, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}
