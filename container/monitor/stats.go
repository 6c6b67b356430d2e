package monitor

import (
	"errors"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// Stats is a container's resource usage from its cgroup.
type Stats struct {
	Timestamp             time.Time
	CPUUsageNanos         uint64 // cumulative
	MemoryUsageBytes      uint64
	MemoryWorkingSetBytes uint64 // usage minus inactive file cache, as cAdvisor computes it
	MemoryRSSBytes        uint64
	PageFaults            uint64
	MajorPageFaults       uint64
	Pids                  uint64 // tasks (threads) in the cgroup: pids.current
}

// Stats reads the container's cgroup counters.
func (c *Container) Stats() (*Stats, error) {
	lc, err := c.libcontainer()
	if err != nil {
		return nil, err
	}
	ls, err := lc.Stats()
	if err != nil {
		return nil, err
	}
	cs := ls.CgroupStats
	if cs == nil {
		return nil, errors.New("no cgroup stats")
	}
	mem := cs.MemoryStats
	s := &Stats{
		Timestamp:        time.Now(),
		CPUUsageNanos:    cs.CpuStats.CpuUsage.TotalUsage,
		MemoryUsageBytes: mem.Usage.Usage,
		Pids:             cs.PidsStats.Current,
	}
	// Key names differ between cgroup v1 (total_* for the hierarchy) and v2.
	inactive, rss, faults, major := "total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"
	if cgroups.IsCgroup2UnifiedMode() {
		inactive, rss, faults, major = "inactive_file", "anon", "pgfault", "pgmajfault"
	}
	s.MemoryWorkingSetBytes = s.MemoryUsageBytes
	if v := mem.Stats[inactive]; v < s.MemoryWorkingSetBytes {
		s.MemoryWorkingSetBytes -= v
	} else {
		s.MemoryWorkingSetBytes = 0
	}
	s.MemoryRSSBytes = mem.Stats[rss]
	s.PageFaults = mem.Stats[faults]
	s.MajorPageFaults = mem.Stats[major]
	return s, nil
}

// Update applies new resource limits to the container's cgroup
// (UpdateContainerResources). The OCI resources are converted the same way
// as at create, through specconv, so units and v1/v2 differences match.
func (c *Container) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if st := c.Status().State; st != StateRunning && st != StateCreated {
		return ErrNotRunning
	}
	var spec specs.Spec
	if err := readJSON(c.cfg.path(specFile), &spec); err != nil {
		return err
	}
	spec.Linux.Resources = r
	cg, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{CgroupName: c.cfg.ID, Spec: &spec}, nil)
	if err != nil {
		return err
	}
	lc, err := c.libcontainer()
	if err != nil {
		return err
	}
	// libcontainer keeps Set's config in memory: after it, reload so that
	// this view does not keep SkipDevices (which would refuse exec).
	defer c.forgetLibcontainer()
	unlock, err := lockBundle(c.cfg.Bundle)
	if err != nil {
		return err
	}
	defer unlock()
	cfg := lc.Config()
	newCg := *cfg.Cgroups
	res := *cg.Resources
	// Device rules cannot be changed by an update (as in runc update).
	res.Devices = cfg.Cgroups.Resources.Devices
	res.SkipDevices = true
	newCg.Resources = &res
	cfg.Cgroups = &newCg
	return lc.Set(cfg)
}
