package monitor

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

// oomCounter reads the cgroup's count of OOM kills. The exit code alone
// cannot tell an OOM kill: a child killed by the OOM killer can make the
// init exit with any code. So the monitor compares the counter at exit with
// its value at create.
type oomCounter struct {
	file  string // memory.oom_control (v1) or memory.events (v2)
	start uint64
}

func openOOMCounter(lc *libcontainer.Container) (oomCounter, error) {
	st, err := lc.State()
	if err != nil {
		return oomCounter{}, err
	}
	var c oomCounter
	if c.file, err = memoryEventsPath(st); err != nil {
		return c, err
	}
	c.start, err = c.read()
	return c, err
}

// memoryEventsPath is the file holding the cgroup's oom_kill counter.
func memoryEventsPath(st *libcontainer.State) (string, error) {
	if cgroups.IsCgroup2UnifiedMode() {
		return filepath.Join(st.CgroupPaths[""], "memory.events"), nil
	}
	if p := st.CgroupPaths["memory"]; p != "" {
		return filepath.Join(p, "memory.oom_control"), nil
	}
	return "", errors.New("no memory cgroup")
}

// read returns the current oom_kill value (same key in v1 and v2).
func (c *oomCounter) read() (uint64, error) {
	if c.file == "" {
		return 0, errors.New("no OOM counter")
	}
	ev, err := readEventCounts(c.file)
	if err != nil {
		return 0, err
	}
	n, ok := ev["oom_kill"]
	if !ok {
		return 0, errors.New("oom_kill not found in " + c.file)
	}
	return n, nil
}

// readEventCounts parses a flat keyed cgroup file ("key value" lines), such
// as memory.events or memory.oom_control; lines that are not counters are
// skipped.
func readEventCounts(file string) (map[string]uint64, error) {
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

// killed reports whether an OOM kill happened in the cgroup since create.
func (c *oomCounter) killed() bool {
	n, err := c.read()
	return err == nil && n > c.start
}
