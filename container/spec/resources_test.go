package spec

import (
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

func TestResources(t *testing.T) {
	full := &Resources{
		CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512, CpusetCPUs: "0-1,3", CpusetMems: "0",
		MemoryLimit: 256 << 20, OOMScoreAdj: 999,
		HugepageLimits: []HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
	}
	for _, tc := range []struct {
		name      string
		r         *Resources
		o         Options
		wantCPU   *specs.LinuxCPU
		wantMem   *specs.LinuxMemory
		wantHuge  []specs.LinuxHugepageLimit
		wantUni   map[string]string
		wantOOM   *int
		wantWarns int
		wantErr   string
	}{
		{name: "none", r: nil},
		{name: "v1 full, swap = memory (no swap)", r: full, o: Options{SwapController: true, HugetlbController: true},
			wantCPU:  &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Cpus: "0-1,3", Mems: "0"},
			wantMem:  &specs.LinuxMemory{Limit: ptr(int64(256 << 20)), Swap: ptr(int64(256 << 20))},
			wantHuge: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}, wantOOM: ptr(999)},
		{name: "v2 same spec, libcontainer converts", r: full, o: Options{CgroupV2: true, SwapController: true, HugetlbController: true},
			wantCPU:  &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Cpus: "0-1,3", Mems: "0"},
			wantMem:  &specs.LinuxMemory{Limit: ptr(int64(256 << 20)), Swap: ptr(int64(256 << 20))},
			wantHuge: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}, wantOOM: ptr(999)},
		{name: "no swap controller, no hugetlb", r: full, o: Options{},
			wantCPU: &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Cpus: "0-1,3", Mems: "0"},
			wantMem: &specs.LinuxMemory{Limit: ptr(int64(256 << 20))}, wantOOM: ptr(999), wantWarns: 1},
		{name: "explicit swap", r: &Resources{MemoryLimit: 100 << 20, MemorySwapLimit: 300 << 20}, o: Options{SwapController: true},
			wantMem: &specs.LinuxMemory{Limit: ptr(int64(100 << 20)), Swap: ptr(int64(300 << 20))}, wantOOM: ptr(0)},
		{name: "unlimited swap", r: &Resources{MemoryLimit: 100 << 20, MemorySwapLimit: -1}, o: Options{SwapController: true, CgroupV2: true},
			wantMem: &specs.LinuxMemory{Limit: ptr(int64(100 << 20)), Swap: ptr(int64(-1))}, wantOOM: ptr(0)},
		{name: "swap below memory", r: &Resources{MemoryLimit: 100 << 20, MemorySwapLimit: 50 << 20}, o: Options{SwapController: true}, wantErr: "must not be below"},
		{name: "swap without memory", r: &Resources{MemorySwapLimit: 50 << 20}, o: Options{SwapController: true}, wantErr: "needs memory_limit_in_bytes"},
		{name: "unlimited quota", r: &Resources{CPUQuota: -1}, wantCPU: &specs.LinuxCPU{Quota: ptr(int64(-1))}, wantOOM: ptr(0)},
		{name: "unified on v2", r: &Resources{Unified: map[string]string{"memory.high": "1000000", "memory.swap.max": "0"}}, o: Options{CgroupV2: true},
			wantUni: map[string]string{"memory.high": "1000000", "memory.swap.max": "0"}, wantOOM: ptr(0)},
		{name: "unified on v1", r: &Resources{Unified: map[string]string{"memory.high": "1"}}, wantErr: "unified needs cgroup v2"},
		{name: "unified path key", r: &Resources{Unified: map[string]string{"../memory.high": "1"}}, o: Options{CgroupV2: true}, wantErr: "not a controller file"},
		{name: "unified cgroup.procs", r: &Resources{Unified: map[string]string{"cgroup.procs": "1"}}, o: Options{CgroupV2: true}, wantErr: "not a controller file"},
		{name: "bad period", r: &Resources{CPUPeriod: 10}, wantErr: "cpu_period"},
		{name: "bad quota", r: &Resources{CPUQuota: -2}, wantErr: "cpu_quota"},
		{name: "bad shares", r: &Resources{CPUShares: 1 << 20}, wantErr: "cpu_shares"},
		{name: "negative memory", r: &Resources{MemoryLimit: -5}, wantErr: "memory_limit_in_bytes"},
		{name: "bad oom", r: &Resources{OOMScoreAdj: 1001}, wantErr: "oom_score_adj"},
		{name: "bad cpuset", r: &Resources{CpusetCPUs: "3-1"}, wantErr: "cpuset_cpus"},
		{name: "bad hugepage size", r: &Resources{HugepageLimits: []HugepageLimit{{PageSize: "2M"}}}, wantErr: "page_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Config.Resources = tc.r
			in.Options = tc.o
			s, n, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			r := s.Linux.Resources
			if !reflect.DeepEqual(r.CPU, tc.wantCPU) || !reflect.DeepEqual(r.Memory, tc.wantMem) ||
				!reflect.DeepEqual(r.HugepageLimits, tc.wantHuge) || !reflect.DeepEqual(r.Unified, tc.wantUni) {
				t.Fatalf("resources = cpu %+v mem %+v huge %+v unified %v", r.CPU, r.Memory, r.HugepageLimits, r.Unified)
			}
			if !reflect.DeepEqual(s.Process.OOMScoreAdj, tc.wantOOM) {
				t.Fatalf("oom_score_adj = %v, want %v", s.Process.OOMScoreAdj, tc.wantOOM)
			}
			if len(n.Warnings) != tc.wantWarns {
				t.Fatalf("warnings = %q", n.Warnings)
			}
		})
	}
}

func TestRestrictOOMScoreAdj(t *testing.T) {
	f := filepath.Join(t.TempDir(), "oom_score_adj")
	writeFile(t, f, "-500\n")
	old := selfOOMScoreAdjPath
	selfOOMScoreAdjPath = f
	t.Cleanup(func() { selfOOMScoreAdjPath = old })
	for _, tc := range []struct {
		req      int64
		restrict bool
		want     int
		clamped  bool
	}{
		{req: -998, restrict: true, want: -500, clamped: true},
		{req: -500, restrict: true, want: -500},
		{req: 1000, restrict: true, want: 1000},
		{req: -998, restrict: false, want: -998},
	} {
		in := baseInput(t)
		in.Options.RestrictOOMScoreAdj = tc.restrict
		in.Config.Resources = &Resources{OOMScoreAdj: tc.req}
		s, n := mustGenerate(t, in)
		if *s.Process.OOMScoreAdj != tc.want || n.OOMScoreAdjClamped != tc.clamped || (tc.clamped && n.RequestedOOMScoreAdj != int(tc.req)) {
			t.Errorf("req %d restrict %v: got %d notes %+v", tc.req, tc.restrict, *s.Process.OOMScoreAdj, n)
		}
	}
}

func TestCgroupsPath(t *testing.T) {
	for _, tc := range []struct {
		driver, parent, want, wantErr string
	}{
		{"cgroupfs", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1/c0ffee", ""},
		{"", "kubepods/pod1", "/kubepods/pod1/c0ffee", ""},
		{"cgroupfs", "", "/crisp/c0ffee", ""},
		{"cgroupfs", "/a/../b", "", "not a cgroupfs path"},
		{"systemd", "kubepods-burstable-pod1.slice", "kubepods-burstable-pod1.slice:crisp:c0ffee", ""},
		{"systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", "kubepods-burstable-pod1.slice:crisp:c0ffee", ""},
		{"systemd", "", ":crisp:c0ffee", ""},
		{"systemd", "/kubepods/pod1", "", "not a systemd slice"},
	} {
		got, err := cgroupsPath(tc.driver, tc.parent, "c0ffee")
		wantErr(t, err, tc.wantErr, errInvalid)
		if got != tc.want {
			t.Errorf("cgroupsPath(%q, %q) = %q, want %q", tc.driver, tc.parent, got, tc.want)
		}
		if tc.wantErr == "" {
			in := baseInput(t)
			in.Options.CgroupDriver = tc.driver
			in.Pod.CgroupParent = tc.parent
			mustGenerate(t, in) // specconv parses the systemd form
		}
	}
}

func TestDetectOptions(t *testing.T) {
	o, err := DetectOptions()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("detected %+v", o)
}
