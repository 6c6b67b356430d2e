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
	if cgroups.IsCgroup2UnifiedMode() {
		c.file = filepath.Join(st.CgroupPaths[""], "memory.events")
	} else if p := st.CgroupPaths["memory"]; p != "" {
		c.file = filepath.Join(p, "memory.oom_control")
	} else {
		return c, errors.New("no memory cgroup")
	}
	c.start, err = c.read()
	return c, err
}

// read returns the current oom_kill value (same key in v1 and v2).
func (c *oomCounter) read() (uint64, error) {
	if c.file == "" {
		return 0, errors.New("no OOM counter")
	}
	f, err := os.Open(c.file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "oom_kill "); ok {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, errors.New("oom_kill not found in " + c.file)
}

// killed reports whether an OOM kill happened in the cgroup since create.
func (c *oomCounter) killed() bool {
	n, err := c.read()
	return err == nil && n > c.start
}
