package monitor

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs2"
	"github.com/opencontainers/cgroups/fscommon"
)

// Usage reads the part of Stats that the CRI's ContainerStats reports: CPU
// (cumulative usage), memory (usage, working set, RSS, page faults), the
// task count and, on cgroup v2, swap and PSI. The other fields stay zero.
// kubelet asks for every container's usage every few seconds, and Stats
// reads every controller (on cgroup v1 about fifty files, among them
// per-CPU, per-NUMA-node and block I/O tables): Usage reads four files on
// v1, and on v2 only the CPU, memory, pids and I/O controllers. Both derive
// the values the same way (fromCgroupStats), so they agree.
func (c *Container) Usage() (*Stats, error) {
	cg, err := c.usageReader()
	if err != nil {
		return nil, err
	}
	var cs *cgroups.Stats
	if cg.v2 != nil {
		if cs, err = cg.v2.Stats(&cgroups.StatsOptions{Controllers: cgroups.CPU | cgroups.Memory | cgroups.Pids | cgroups.IO}); err != nil {
			return nil, err
		}
	} else if cs, err = readUsageV1(cg.paths); err != nil {
		return nil, err
	}
	s := fromCgroupStats(cs, cg.v2 != nil)
	if cg.v2 != nil && !cg.swapAccounted {
		s.Swap = nil
	}
	return s, nil
}

// usageCgroup is where Usage reads, looked up once: cgroup paths never
// change.
type usageCgroup struct {
	paths         map[string]string // v1: by controller
	v2            *fs2.Manager
	swapAccounted bool // v2: memory.swap.current exists
}

func (c *Container) usageReader() (*usageCgroup, error) {
	c.lcMu.Lock()
	cg := c.usage
	c.lcMu.Unlock()
	if cg != nil {
		return cg, nil
	}
	lc, err := c.libcontainer()
	if err != nil {
		return nil, err
	}
	st, err := lc.State()
	if err != nil {
		return nil, err
	}
	cg = &usageCgroup{paths: st.CgroupPaths}
	if cgroups.IsCgroup2UnifiedMode() {
		dir := st.CgroupPaths[""]
		if dir == "" {
			return nil, errors.New("no cgroup v2 path")
		}
		if cg.v2, err = fs2.NewManager(lc.Config().Cgroups, dir); err != nil {
			return nil, err
		}
		_, err := os.Stat(filepath.Join(dir, "memory.swap.current"))
		cg.swapAccounted = err == nil
	}
	c.lcMu.Lock()
	c.usage = cg
	c.lcMu.Unlock()
	return cg, nil
}

// readUsageV1 reads what fromCgroupStats needs for Usage's fields from the
// cpuacct, memory and pids hierarchies.
func readUsageV1(paths map[string]string) (*cgroups.Stats, error) {
	cs := cgroups.NewStats()
	var err error
	if cs.CpuStats.CpuUsage.TotalUsage, err = fscommon.GetCgroupParamUint(paths["cpuacct"], "cpuacct.usage"); err != nil {
		return nil, err
	}
	mem := paths["memory"]
	if cs.MemoryStats.Usage.Usage, err = fscommon.GetCgroupParamUint(mem, "memory.usage_in_bytes"); err != nil {
		return nil, err
	}
	f, err := cgroups.OpenFile(mem, "memory.stat", os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, err := fscommon.ParseKeyValue(sc.Text())
		if err != nil {
			return nil, err
		}
		cs.MemoryStats.Stats[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	cs.MemoryStats.Cache = cs.MemoryStats.Stats["cache"]
	if p := paths["pids"]; p != "" {
		if cs.PidsStats.Current, err = fscommon.GetCgroupParamUint(p, "pids.current"); err != nil {
			return nil, err
		}
	}
	return cs, nil
}
