package monitor

import (
	"reflect"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestFromCgroupStatsV1AndV2(t *testing.T) {
	base := func() *cgroups.Stats {
		cs := &cgroups.Stats{}
		cs.CpuStats.CpuUsage = cgroups.CpuUsage{TotalUsage: 3e9, UsageInUsermode: 2e9, UsageInKernelmode: 1e9}
		cs.CpuStats.ThrottlingData = cgroups.ThrottlingData{Periods: 7, ThrottledPeriods: 2, ThrottledTime: 5e8}
		cs.MemoryStats.Usage = cgroups.MemoryData{Usage: 1000, MaxUsage: 1500, Failcnt: 3}
		cs.MemoryStats.Cache = 300
		cs.PidsStats = cgroups.PidsStats{Current: 4, Limit: 100}
		cs.BlkioStats.IoServiceBytesRecursive = []cgroups.BlkioStatEntry{{Major: 8, Minor: 0, Op: "Read", Value: 4096}}
		cs.HugetlbStats = map[string]cgroups.HugetlbStats{"2MB": {Usage: 1, MaxUsage: 2}}
		return cs
	}

	v1 := base()
	v1.MemoryStats.KernelUsage.Usage = 50
	v1.MemoryStats.Stats = map[string]uint64{
		"total_inactive_file": 200, "total_rss": 600, "total_pgfault": 9, "total_pgmajfault": 1,
		"total_mapped_file": 40, "total_swap": 20,
		// Non-hierarchical keys must not be used.
		"inactive_file": 1, "rss": 1, "mapped_file": 1, "swap": 1,
	}
	s := fromCgroupStats(v1, false)
	want := Stats{
		CPUUsageNanos: 3e9, CPUUserNanos: 2e9, CPUSystemNanos: 1e9,
		CFSPeriods: 7, CFSThrottledPeriods: 2, CFSThrottledNanos: 5e8,
		MemoryUsageBytes: 1000, MemoryMaxUsageBytes: 1500, MemoryWorkingSetBytes: 800,
		MemoryRSSBytes: 600, MemoryCacheBytes: 300, MemorySwapBytes: 20, MemoryKernelBytes: 50,
		MemoryMappedFileBytes: 40, MemoryFailcnt: 3, PageFaults: 9, MajorPageFaults: 1,
		Pids: 4, PidsLimit: 100,
	}
	check(t, "v1", s, want)
	if s.Pressure != nil {
		t.Error("v1: pressure reported")
	}
	if len(s.IOServiceBytes) != 1 || s.IOServiceBytes[0] != (DeviceIO{8, 0, "Read", 4096}) || s.Hugetlb["2MB"] != (Hugetlb{1, 2}) {
		t.Errorf("v1: io %+v hugetlb %+v", s.IOServiceBytes, s.Hugetlb)
	}

	v2 := base()
	v2.MemoryStats.SwapOnlyUsage.Usage = 20
	v2.MemoryStats.SwapUsage.Usage = 1020 // memory+swap, which must not be reported as swap
	v2.MemoryStats.Stats = map[string]uint64{
		"inactive_file": 200, "anon": 600, "pgfault": 9, "pgmajfault": 1, "file_mapped": 40,
		"kernel_stack": 10, "pagetables": 10, "slab": 20, "sock": 10,
	}
	v2.CpuStats.PSI = &cgroups.PSIStats{Some: cgroups.PSIData{Total: 3e6}, Full: cgroups.PSIData{Total: 1e6}}
	s = fromCgroupStats(v2, true)
	check(t, "v2", s, want)
	if s.Pressure == nil || s.Pressure.CPUSome != 3e6 || s.Pressure.CPUFull != 1e6 {
		t.Errorf("v2: pressure %+v", s.Pressure)
	}
	// A kernel with memory.stat's "kernel" key: it wins over the parts.
	v2.MemoryStats.Stats["kernel"] = 70
	if s = fromCgroupStats(v2, true); s.MemoryKernelBytes != 70 {
		t.Errorf("v2: kernel %d, want 70", s.MemoryKernelBytes)
	}
}

func check(t *testing.T, name string, got *Stats, want Stats) {
	t.Helper()
	g := *got
	g.Timestamp, g.IOServiceBytes, g.IOServiced, g.Hugetlb, g.Pressure = want.Timestamp, nil, nil, nil, nil
	if g.Processes != nil || g.OOMKills != 0 {
		t.Errorf("%s: fields from outside the cgroup stats set: %+v", name, g)
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", name, g, want)
	}
}
