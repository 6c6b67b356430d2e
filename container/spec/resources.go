package spec

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

// selfOOMScoreAdjPath is read for RestrictOOMScoreAdj; a variable for tests.
var selfOOMScoreAdjPath = "/proc/self/oom_score_adj"

var (
	unifiedKey   = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z0-9_.]+$`)
	hugePageSize = regexp.MustCompile(`^[0-9]+[KMGT]B$`)
)

// resources maps linux.resources onto the spec in cgroup v1 terms; for v2
// libcontainer converts (shares -> cpu.weight, swap -> memory.swap.max =
// swap - memory, ...), so the spec is the same for both except for
// Unified. There is no per-container pids limit in the CRI: kubelet sets
// pids.max on the pod cgroup, which the container's cgroup inherits.
func resources(in *Input, s *specs.Spec, notes *Notes) error {
	r := in.Config.Resources
	if r == nil {
		return nil
	}
	const f = "linux.resources."
	switch {
	case r.CPUPeriod < 0 || r.CPUPeriod > 1_000_000 || (r.CPUPeriod > 0 && r.CPUPeriod < 1000):
		// The kernel accepts 1ms..1s.
		return errdefs.InvalidArgument(f+"cpu_period %d must be 0 (unset) or within [1000, 1000000] microseconds", r.CPUPeriod)
	case r.CPUQuota < -1 || (r.CPUQuota > 0 && r.CPUQuota < 1000):
		return errdefs.InvalidArgument(f+"cpu_quota %d must be 0 (unset), -1 (unlimited) or at least 1000 microseconds", r.CPUQuota)
	case r.CPUShares < 0 || r.CPUShares > 262144:
		return errdefs.InvalidArgument(f+"cpu_shares %d must be within [0, 262144]", r.CPUShares)
	case r.MemoryLimit < 0:
		return errdefs.InvalidArgument(f+"memory_limit_in_bytes %d must not be negative", r.MemoryLimit)
	case r.MemorySwapLimit < -1:
		return errdefs.InvalidArgument(f+"memory_swap_limit_in_bytes %d must be -1 (unlimited) or more", r.MemorySwapLimit)
	case r.OOMScoreAdj < -1000 || r.OOMScoreAdj > 1000:
		return errdefs.InvalidArgument(f+"oom_score_adj %d must be within [-1000, 1000]", r.OOMScoreAdj)
	}
	for name, v := range map[string]string{"cpuset_cpus": r.CpusetCPUs, "cpuset_mems": r.CpusetMems} {
		if !validCPUList(v) {
			return errdefs.InvalidArgument(f+"%s %q is not a list like \"0-3,6\"", name, v)
		}
	}

	res := s.Linux.Resources
	cpu := &specs.LinuxCPU{Cpus: r.CpusetCPUs, Mems: r.CpusetMems}
	if v := uint64(r.CPUShares); v != 0 {
		cpu.Shares = &v
	}
	if v := r.CPUQuota; v != 0 {
		cpu.Quota = &v
	}
	if v := uint64(r.CPUPeriod); v != 0 {
		cpu.Period = &v
	}
	if *cpu != (specs.LinuxCPU{}) {
		res.CPU = cpu
	}

	limit, swap := r.MemoryLimit, r.MemorySwapLimit
	if swap > 0 && limit > 0 && swap < limit {
		return errdefs.InvalidArgument(f+"memory_swap_limit_in_bytes %d is memory+swap and must not be below memory_limit_in_bytes %d", swap, limit)
	}
	if swap > 0 && limit == 0 {
		// v1's memory.memsw.limit_in_bytes must not be below the (then
		// unlimited) memory limit; v2's memory.swap.max = swap - memory
		// cannot be computed without one.
		return errdefs.InvalidArgument(f + "memory_swap_limit_in_bytes needs memory_limit_in_bytes")
	}
	mem := &specs.LinuxMemory{}
	if limit != 0 {
		mem.Limit = &limit
	}
	switch {
	case !in.Options.SwapController:
		// No swap accounting (swapaccount=0 or no swap controller):
		// libcontainer would fail writing memory.memsw.*.
		if swap != 0 {
			notes.Warnings = append(notes.Warnings, "memory_swap_limit_in_bytes ignored: the node has no swap accounting")
		}
	case swap != 0:
		mem.Swap = &swap
	case limit != 0:
		// containerd's default: memory+swap = memory, i.e. no swap, so that
		// a limited container is OOM-killed instead of swapping.
		mem.Swap = &limit
	}
	if mem.Limit != nil || mem.Swap != nil {
		res.Memory = mem
	}

	for i, h := range r.HugepageLimits {
		if !hugePageSize.MatchString(h.PageSize) {
			return errdefs.InvalidArgument(f+"hugepage_limits[%d].page_size %q is not a size like \"2MB\"", i, h.PageSize)
		}
		if !in.Options.HugetlbController {
			notes.Warnings = append(notes.Warnings, "hugepage_limits ignored: the hugetlb cgroup controller is missing")
			break
		}
		res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}

	if u := r.Unified; len(u) > 0 {
		// containerd passes unified on v1 too and runc then fails at start;
		// rejecting here gives kubelet the reason at create time. Kubelet
		// sends unified only on v2 nodes.
		if !in.Options.CgroupV2 {
			return errdefs.InvalidArgument(f + "unified needs cgroup v2, the node uses cgroup v1")
		}
		for k, v := range u {
			if !unifiedKey.MatchString(k) || strings.HasPrefix(k, "cgroup.") {
				return errdefs.InvalidArgument(f+"unified key %q is not a controller file like memory.high", k)
			}
			if strings.ContainsAny(v, "\x00") {
				return errdefs.InvalidArgument(f+"unified[%q] contains a NUL byte", k)
			}
		}
		res.Unified = maps.Clone(u)
	}

	adj := int(r.OOMScoreAdj)
	if in.Options.RestrictOOMScoreAdj {
		own, err := ownOOMScoreAdj()
		if err != nil {
			return err
		}
		if adj < own {
			notes.OOMScoreAdjClamped, notes.RequestedOOMScoreAdj = true, adj
			adj = own
		}
	}
	s.Process.OOMScoreAdj = &adj
	return nil
}

// ownOOMScoreAdj is the daemon's: without CAP_SYS_RESOURCE a child cannot
// be given a lower one.
func ownOOMScoreAdj() (int, error) {
	b, err := os.ReadFile(selfOOMScoreAdjPath)
	if err != nil {
		return 0, fmt.Errorf("read the daemon's oom_score_adj: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse the daemon's oom_score_adj: %w", err)
	}
	return v, nil
}

// validCPUList checks the kernel's list format ("0-3,6"); "" is unset.
func validCPUList(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > 4096 {
		return false
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil || strconv.FormatUint(a, 10) != lo {
			return false
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 32)
			if err != nil || b < a || strconv.FormatUint(b, 10) != hi {
				return false
			}
		}
	}
	return true
}

// DetectOptions fills the host facts of Options (cgroup version, swap and
// hugetlb controllers, whether the daemon lacks CAP_SYS_RESOURCE, AppArmor);
// the caller sets the configured ones (driver, seccomp root, ...).
func DetectOptions() (Options, error) {
	var o Options
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return o, fmt.Errorf("detect cgroup version: %w", err)
	}
	o.CgroupV2 = st.Type == unix.CGROUP2_SUPER_MAGIC
	if o.CgroupV2 {
		ctrl, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		o.HugetlbController = strings.Contains(" "+string(ctrl)+" ", " hugetlb ")
		// The root cgroup has no memory.swap.max; look in our own.
		o.SwapController = exists(filepath.Join("/sys/fs/cgroup", ownCgroupV2(), "memory.swap.max")) ||
			exists("/sys/fs/cgroup/system.slice/memory.swap.max")
	} else {
		// A hybrid host may have hugetlb only in its unified hierarchy;
		// the monitor sets the limits there (libct.HybridHugetlb).
		ctrl, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
		o.HugetlbController = exists("/sys/fs/cgroup/hugetlb") || strings.Contains(" "+strings.TrimSpace(string(ctrl))+" ", " hugetlb ")
		o.SwapController = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	}
	if c, err := capability.NewPid2(0); err == nil && c.Load() == nil {
		o.RestrictOOMScoreAdj = !c.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE)
	}
	o.RecursiveReadOnlyMounts = probeRecursiveReadOnly() == nil
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil {
		o.AppArmorEnabled = strings.TrimSpace(string(b)) == "Y" && exists("/sys/kernel/security/apparmor")
	}
	return o, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ownCgroupV2 is this process's cgroup on a unified host ("0::/path").
func ownCgroupV2() string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p
		}
	}
	return "/"
}
