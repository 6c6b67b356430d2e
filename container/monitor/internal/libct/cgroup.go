package libct

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// MemoryEventsPath is the file holding the cgroup's oom_kill counter.
func MemoryEventsPath(st *libcontainer.State) (string, error) {
	if cgroups.IsCgroup2UnifiedMode() {
		return filepath.Join(st.CgroupPaths[""], "memory.events"), nil
	}
	if p := st.CgroupPaths["memory"]; p != "" {
		return filepath.Join(p, "memory.oom_control"), nil
	}
	return "", errors.New("no memory cgroup")
}

// ReadEventCounts parses a flat keyed cgroup file ("key value" lines), such
// as memory.events or memory.oom_control; lines that are not counters are
// skipped.
func ReadEventCounts(file string) (map[string]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ev := map[string]uint64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			ev[k] = n
		}
	}
	return ev, s.Err()
}

// KillCgroup SIGKILLs the processes of the container's cgroup selected by
// match, with the cgroup frozen.
func KillCgroup(lc *libcontainer.Container, match func(pid int) bool) error {
	st, err := lc.State()
	if err != nil {
		return err
	}
	m, err := manager.NewWithPaths(st.Config.Cgroups, st.CgroupPaths)
	if err != nil {
		return err
	}
	if !m.Exists() {
		return nil
	}
	frozen := m.Freeze(cgroups.Frozen) == nil
	defer func() {
		if frozen {
			m.Freeze(cgroups.Thawed)
		}
	}()
	pids, err := m.GetAllPids()
	if err != nil {
		// Removed meanwhile (systemd removes an emptied scope): ENODEV
		// while it goes, ENOENT after.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("list container processes: %w", err)
	}
	for _, pid := range pids {
		if match(pid) {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
				return fmt.Errorf("kill %d: %w", pid, err)
			}
		}
	}
	return nil
}
