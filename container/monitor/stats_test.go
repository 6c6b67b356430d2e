package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs2"
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
	if s.Pressure != nil || s.Swap != nil {
		t.Errorf("v1: pressure %+v or swap %+v reported", s.Pressure, s.Swap)
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
	if s.Pressure == nil || s.Pressure.CPU == nil || s.Pressure.CPU.Some.Total != 3e6 || s.Pressure.CPU.Full.Total != 1e6 || s.Pressure.Memory != nil {
		t.Errorf("v2: pressure %+v", s.Pressure)
	}
	if s.Swap == nil || *s.Swap != (Swap{UsageBytes: 20}) {
		t.Errorf("v2: swap %+v", s.Swap)
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
	g.Timestamp, g.IOServiceBytes, g.IOServiced, g.Hugetlb, g.Pressure, g.Swap = want.Timestamp, nil, nil, nil, nil, nil
	if g.Processes != nil || g.OOMKills != 0 {
		t.Errorf("%s: fields from outside the cgroup stats set: %+v", name, g)
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", name, g, want)
	}
}

// TestPressureAndSwapFromCgroupFiles reads cgroup v2 files in the kernel's
// format through libcontainer, as Stats does, so that a change in either
// the parsing or the conversion shows.
func TestPressureAndSwapFromCgroupFiles(t *testing.T) {
	const (
		cpuPressure = "some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\nfull avg10=0.50 avg60=0.10 avg300=0.01 total=65432\n"
		memPressure = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
		// Before 5.13 the root's cpu.pressure had no "full" line; a
		// cgroup's io.pressure looks the same as cpu's.
		ioPressure = "some avg10=12.34 avg60=5.67 avg300=1.00 total=9999999\n"
	)
	base := map[string]string{
		"cpu.stat":       "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\n",
		"memory.stat":    "anon 4096\nfile 8192\ninactive_file 4096\n",
		"memory.current": "12288\n", "memory.max": "max\n",
		"io.stat": "",
	}
	cases := []struct {
		name     string
		files    map[string]string
		pressure *Pressure
		swap     *Swap
	}{
		{"no PSI, no swap accounting", nil, nil, &Swap{}},
		{"all pressure files",
			map[string]string{"cpu.pressure": cpuPressure, "memory.pressure": memPressure, "io.pressure": ioPressure,
				"memory.swap.current": "1048576\n", "memory.swap.max": "max\n"},
			&Pressure{
				CPU: &PSI{
					Some: PSIData{Total: 123456, Avg10: 1.5, Avg60: 0.25, Avg300: 0.05},
					Full: PSIData{Total: 65432, Avg10: 0.5, Avg60: 0.1, Avg300: 0.01},
				},
				Memory: &PSI{},
				IO:     &PSI{Some: PSIData{Total: 9999999, Avg10: 12.34, Avg60: 5.67, Avg300: 1}},
			},
			&Swap{UsageBytes: 1 << 20}},
		{"cpu only, swap limited",
			map[string]string{"cpu.pressure": cpuPressure, "memory.swap.current": "4096\n", "memory.swap.max": "1073741824\n"},
			&Pressure{CPU: &PSI{
				Some: PSIData{Total: 123456, Avg10: 1.5, Avg60: 0.25, Avg300: 0.05},
				Full: PSIData{Total: 65432, Avg10: 0.5, Avg60: 0.1, Avg300: 0.01},
			}},
			&Swap{UsageBytes: 4096, LimitBytes: 1 << 30}},
	}
	// Lets libcontainer open files outside cgroupfs. This test is not
	// parallel: parallel tests start after it ends, so none races on it.
	cgroups.TestMode = true
	t.Cleanup(func() { cgroups.TestMode = false })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, files := range []map[string]string{base, tc.files} {
				for name, content := range files {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			m, err := fs2.NewManager(&cgroups.Cgroup{}, dir)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := m.Stats(&cgroups.StatsOptions{Controllers: cgroups.CPU | cgroups.Memory | cgroups.IO})
			if err != nil {
				t.Fatal(err)
			}
			s := fromCgroupStats(cs, true)
			if !reflect.DeepEqual(s.Pressure, tc.pressure) {
				t.Errorf("pressure:\n got %s\nwant %s", pressureString(s.Pressure), pressureString(tc.pressure))
			}
			if !reflect.DeepEqual(s.Swap, tc.swap) {
				t.Errorf("swap %+v, want %+v", s.Swap, tc.swap)
			}
			if s.MemoryUsageBytes != 12288 || s.MemoryWorkingSetBytes != 8192 {
				t.Errorf("memory %d working set %d", s.MemoryUsageBytes, s.MemoryWorkingSetBytes)
			}
		})
	}
}

func pressureString(p *Pressure) string {
	if p == nil {
		return "nil"
	}
	s := ""
	for _, r := range []*PSI{p.CPU, p.Memory, p.IO} {
		if r == nil {
			s += " nil"
		} else {
			s += " " + fmt.Sprintf("%+v", *r)
		}
	}
	return s
}

// TestUsageV1FromCgroupFiles reads cgroup v1 files in the kernel's format
// as Usage does on v1, so that the hierarchical (total_*) keys of
// memory.stat are the ones reported.
func TestUsageV1FromCgroupFiles(t *testing.T) {
	cgroups.TestMode = true
	t.Cleanup(func() { cgroups.TestMode = false })
	dir := t.TempDir()
	files := map[string]string{
		"cpuacct.usage":         "3000000000\n",
		"memory.usage_in_bytes": "1000\n",
		"memory.stat": "cache 300\nrss 1\ninactive_file 1\npgfault 1\n" +
			"total_cache 300\ntotal_rss 600\ntotal_inactive_file 200\ntotal_pgfault 9\ntotal_pgmajfault 1\ntotal_mapped_file 40\ntotal_swap 20\n",
		"pids.current": "4\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := map[string]string{"cpu": dir, "cpuacct": dir, "memory": dir, "pids": dir}
	cs, err := readUsageV1(paths)
	if err != nil {
		t.Fatal(err)
	}
	s := fromCgroupStats(cs, false)
	want := Stats{
		CPUUsageNanos: 3e9, MemoryUsageBytes: 1000, MemoryWorkingSetBytes: 800, MemoryRSSBytes: 600,
		MemoryCacheBytes: 300, MemorySwapBytes: 20, MemoryMappedFileBytes: 40, PageFaults: 9, MajorPageFaults: 1, Pids: 4,
	}
	check(t, "v1 usage", s, want)
	if s.Pressure != nil || s.Swap != nil {
		t.Errorf("pressure %+v or swap %+v on v1", s.Pressure, s.Swap)
	}
	// A hierarchy without the pids controller reports no tasks rather
	// than failing.
	delete(paths, "pids")
	if cs, err = readUsageV1(paths); err != nil || cs.PidsStats.Current != 0 {
		t.Errorf("without pids: %v, %d tasks", err, cs.PidsStats.Current)
	}
}
