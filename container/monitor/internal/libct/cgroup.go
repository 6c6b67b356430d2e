package libct

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
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
