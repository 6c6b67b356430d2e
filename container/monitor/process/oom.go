package process

import (
	"errors"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
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
	if c.file, err = libct.MemoryEventsPath(st); err != nil {
		return c, err
	}
	c.start, err = c.read()
	return c, err
}

// read returns the current oom_kill value (same key in v1 and v2).
func (c *oomCounter) read() (uint64, error) {
	if c.file == "" {
		return 0, errors.New("no OOM counter")
	}
	ev, err := libct.ReadEventCounts(c.file)
	if err != nil {
		return 0, err
	}
	n, ok := ev["oom_kill"]
	if !ok {
		return 0, errors.New("oom_kill not found in " + c.file)
	}
	return n, nil
}

// killed reports whether an OOM kill happened in the cgroup since create.
func (c *oomCounter) killed() bool {
	n, err := c.read()
	return err == nil && n > c.start
}
