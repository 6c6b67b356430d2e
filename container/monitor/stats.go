package monitor

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"

	// Registers the cgroup device-rule manager: Update sets the cgroup
	// again with the container's device rules, which fails without it.
	_ "github.com/opencontainers/cgroups/devices"
)

// Stats is a container's resource usage from its cgroup. Everything comes
// from one read of the cgroup (plus its event counters and process list), so
// that stats and metrics calls cost the same; the v1/v2 differences are
// resolved here and nowhere else.
type Stats struct {
	Timestamp             time.Time
	CPUUsageNanos         uint64 // cumulative
	CPUUserNanos          uint64
	CPUSystemNanos        uint64
	CFSPeriods            uint64
	CFSThrottledPeriods   uint64
	CFSThrottledNanos     uint64
	MemoryUsageBytes      uint64
	MemoryMaxUsageBytes   uint64 // 0 where the kernel keeps no peak (v2 before 5.19)
	MemoryWorkingSetBytes uint64 // usage minus inactive file cache, as cAdvisor computes it
	MemoryRSSBytes        uint64
	MemoryCacheBytes      uint64
	MemorySwapBytes       uint64 // swap alone, not memory+swap
	MemoryKernelBytes     uint64
	MemoryMappedFileBytes uint64
	MemoryFailcnt         uint64 // times usage hit the limit
	PageFaults            uint64
	MajorPageFaults       uint64
	OOMKills              uint64
	Pids                  uint64 // tasks (threads) in the cgroup: pids.current
	PidsLimit             uint64 // 0: unlimited
	Processes             []int  // thread group leaders in the cgroup: cgroup.procs
	// IOServiceBytes and IOServiced are per device and operation (Read,
	// Write, ...); empty when the kernel accounts no block I/O.
	IOServiceBytes []DeviceIO
	IOServiced     []DeviceIO
	Hugetlb        map[string]Hugetlb // by page size ("2MB")
	// Pressure is nil without PSI (cgroup v1, or a kernel without it).
	Pressure *Pressure
	// Swap is nil on cgroup v1 and where the kernel accounts no swap
	// (no memory.swap.current).
	Swap *Swap
}

// DeviceIO is one block device counter.
type DeviceIO struct {
	Major, Minor uint64
	Op           string
	Value        uint64
}

// Hugetlb is one page size's usage.
type Hugetlb struct{ Usage, MaxUsage uint64 }

// Pressure is the cgroup's pressure stall information (PSI) by resource;
// a resource is nil when its pressure file is missing.
type Pressure struct {
	CPU, Memory, IO *PSI
}

// PSI is one pressure file: Some is the share of time at least one task
// stalled on the resource, Full the share all of them did.
type PSI struct{ Some, Full PSIData }

// PSIData is one line of a pressure file.
type PSIData struct {
	Total                uint64  // cumulative stall time, microseconds
	Avg10, Avg60, Avg300 float64 // percent of wall time over 10 s, 60 s, 300 s
}

// Swap is the cgroup's swap usage alone (memory.swap.current) and its
// limit (memory.swap.max).
type Swap struct {
	UsageBytes uint64
	LimitBytes uint64 // 0: unlimited
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
	if libct.HybridHugetlb() {
		if st, err := lc.State(); err == nil {
			cs.HugetlbStats = libct.HybridHugetlbStats(st.CgroupPaths[""])
		}
	}
	s := fromCgroupStats(cs, cgroups.IsCgroup2UnifiedMode())
	if s.Processes, err = lc.Processes(); err != nil {
		return nil, err
	}
	if f, err := c.memoryEventsFile(); err == nil {
		ev, err := libct.ReadEventCounts(f)
		if err != nil {
			return nil, err
		}
		s.OOMKills = ev["oom_kill"]
		if cgroups.IsCgroup2UnifiedMode() {
			s.MemoryFailcnt = ev["max"]
			// libcontainer reads a missing memory.swap.current as zero:
			// without swap accounting there is no usage to report.
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), "memory.swap.current")); err != nil {
				s.Swap = nil
			}
		}
	}
	return s, nil
}

// fromCgroupStats converts libcontainer's stats; v2 tells which key names
// memory.stat uses.
func fromCgroupStats(cs *cgroups.Stats, v2 bool) *Stats {
	cpu, mem := &cs.CpuStats, &cs.MemoryStats
	s := &Stats{
		Timestamp:           time.Now(),
		CPUUsageNanos:       cpu.CpuUsage.TotalUsage,
		CPUUserNanos:        cpu.CpuUsage.UsageInUsermode,
		CPUSystemNanos:      cpu.CpuUsage.UsageInKernelmode,
		CFSPeriods:          cpu.ThrottlingData.Periods,
		CFSThrottledPeriods: cpu.ThrottlingData.ThrottledPeriods,
		CFSThrottledNanos:   cpu.ThrottlingData.ThrottledTime,
		MemoryUsageBytes:    mem.Usage.Usage,
		MemoryMaxUsageBytes: mem.Usage.MaxUsage,
		MemoryCacheBytes:    mem.Cache,
		MemoryFailcnt:       mem.Usage.Failcnt,
		Pids:                cs.PidsStats.Current,
		PidsLimit:           cs.PidsStats.Limit,
		IOServiceBytes:      deviceIO(cs.BlkioStats.IoServiceBytesRecursive),
		IOServiced:          deviceIO(cs.BlkioStats.IoServicedRecursive),
	}
	// Key names differ between cgroup v1 (total_* for the hierarchy) and v2.
	inactive, rss, faults, major, mapped, swap := "total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault", "total_mapped_file", "total_swap"
	if v2 {
		inactive, rss, faults, major, mapped = "inactive_file", "anon", "pgfault", "pgmajfault", "file_mapped"
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
	s.MemoryMappedFileBytes = mem.Stats[mapped]
	if v2 {
		// v2 has no kmem counter: memory.stat's "kernel" (5.18+) is the sum
		// of the kernel's own parts.
		s.MemorySwapBytes = mem.SwapOnlyUsage.Usage
		s.MemoryKernelBytes = mem.Stats["kernel"]
		if s.MemoryKernelBytes == 0 {
			s.MemoryKernelBytes = mem.Stats["kernel_stack"] + mem.Stats["pagetables"] + mem.Stats["slab"] + mem.Stats["sock"]
		}
		s.Pressure = pressure(cpu.PSI, mem.PSI, cs.BlkioStats.PSI)
		s.Swap = &Swap{UsageBytes: mem.SwapOnlyUsage.Usage}
		if l := mem.SwapOnlyUsage.Limit; l != math.MaxUint64 { // "max"
			s.Swap.LimitBytes = l
		}
	} else {
		s.MemorySwapBytes = mem.Stats[swap]
		s.MemoryKernelBytes = mem.KernelUsage.Usage
	}
	if len(cs.HugetlbStats) > 0 {
		s.Hugetlb = make(map[string]Hugetlb, len(cs.HugetlbStats))
		for size, h := range cs.HugetlbStats {
			s.Hugetlb[size] = Hugetlb{Usage: h.Usage, MaxUsage: h.MaxUsage}
		}
	}
	return s
}

func deviceIO(in []cgroups.BlkioStatEntry) []DeviceIO {
	if len(in) == 0 {
		return nil
	}
	out := make([]DeviceIO, len(in))
	for i, e := range in {
		out[i] = DeviceIO{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value}
	}
	return out
}

func pressure(cpu, mem, io *cgroups.PSIStats) *Pressure {
	if cpu == nil && mem == nil && io == nil {
		return nil
	}
	return &Pressure{CPU: psi(cpu), Memory: psi(mem), IO: psi(io)}
}

func psi(in *cgroups.PSIStats) *PSI {
	if in == nil {
		return nil
	}
	data := func(d cgroups.PSIData) PSIData {
		return PSIData{Total: d.Total, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	return &PSI{Some: data(in.Some), Full: data(in.Full)}
}

// memoryEventsFile is the file with the cgroup's oom_kill counter (and, on
// v2, the limit-hit counter), looked up once: cgroup paths never change.
func (c *Container) memoryEventsFile() (string, error) {
	c.lcMu.Lock()
	f := c.eventsFile
	c.lcMu.Unlock()
	if f != "" {
		return f, nil
	}
	lc, err := c.libcontainer()
	if err != nil {
		return "", err
	}
	st, err := lc.State()
	if err != nil {
		return "", err
	}
	if f, err = libct.MemoryEventsPath(st); err != nil {
		return "", fmt.Errorf("container %s: %w", c.cfg.ID, err)
	}
	c.lcMu.Lock()
	c.eventsFile = f
	c.lcMu.Unlock()
	return f, nil
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
	if err := proto.ReadJSON(c.cfg.Path(proto.SpecFile), &spec); err != nil {
		return err
	}
	spec.Linux.Resources = r
	cg, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{CgroupName: c.cfg.ID, UseSystemdCgroup: c.cfg.SystemdCgroup, Spec: &spec}, nil)
	if err != nil {
		return err
	}
	lc, unlock, err := c.lockedLibcontainer()
	if err != nil {
		return err
	}
	defer unlock()
	// libcontainer keeps Set's config in memory: after it, reload so that
	// this view does not keep SkipDevices (which would refuse exec).
	defer c.forgetLibcontainer()
	cfg := lc.Config()
	newCg := *cfg.Cgroups
	res := *cg.Resources
	// Device rules cannot be changed by an update (as in runc update).
	res.Devices = cfg.Cgroups.Resources.Devices
	res.SkipDevices = true
	newCg.Resources = &res
	cfg.Cgroups = &newCg
	hugetlb := libct.TakeHybridHugetlb(&res)
	if err := lc.Set(cfg); err != nil {
		return err
	}
	if hugetlb == nil {
		return nil
	}
	st, err := lc.State()
	if err != nil {
		return err
	}
	return libct.SetHybridHugetlb(st.CgroupPaths[""], hugetlb)
}
