package nri

import (
	"maps"

	"github.com/containerd/nri/pkg/api"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/sandbox"
)

// fromCRI converts CRI resources for plugins. Zero means "not set" in the
// CRI, so zero values stay unset rather than becoming explicit zeros.
func fromCRI(r *runtimeapi.LinuxContainerResources) *api.LinuxResources {
	if r == nil {
		return nil
	}
	o := &api.LinuxResources{
		Cpu:     &api.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()},
		Memory:  &api.LinuxMemory{},
		Unified: maps.Clone(r.GetUnified()),
	}
	if v := r.GetCpuShares(); v > 0 {
		o.Cpu.Shares = api.UInt64(uint64(v))
	}
	if v := r.GetCpuQuota(); v != 0 {
		o.Cpu.Quota = api.Int64(v)
	}
	if v := r.GetCpuPeriod(); v > 0 {
		o.Cpu.Period = api.UInt64(uint64(v))
	}
	if v := r.GetMemoryLimitInBytes(); v != 0 {
		o.Memory.Limit = api.Int64(v)
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		o.Memory.Swap = api.Int64(v)
	}
	for _, h := range r.GetHugepageLimits() {
		o.HugepageLimits = append(o.HugepageLimits, &api.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return o
}

// mergeCRI returns base with what n sets laid over it: plugins send only
// what they change, and the CRI form of an update replaces everything.
// Settings the CRI cannot express (pids, device rules, block I/O) are
// dropped, as in containerd.
func mergeCRI(base *runtimeapi.LinuxContainerResources, n *api.LinuxResources) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if base != nil {
		out = proto.Clone(base).(*runtimeapi.LinuxContainerResources)
	}
	if c := n.GetCpu(); c != nil {
		if v := c.GetShares().Get(); v != nil {
			out.CpuShares = int64(*v)
		}
		if v := c.GetQuota().Get(); v != nil {
			out.CpuQuota = *v
		}
		if v := c.GetPeriod().Get(); v != nil {
			out.CpuPeriod = int64(*v)
		}
		if c.GetCpus() != "" {
			out.CpusetCpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CpusetMems = c.GetMems()
		}
	}
	if m := n.GetMemory(); m != nil {
		if v := m.GetLimit().Get(); v != nil {
			out.MemoryLimitInBytes = *v
		}
		if v := m.GetSwap().Get(); v != nil {
			out.MemorySwapLimitInBytes = *v
		}
	}
	for _, h := range n.GetHugepageLimits() {
		replaced := false
		for _, cur := range out.HugepageLimits {
			if cur.PageSize == h.GetPageSize() {
				cur.Limit, replaced = h.GetLimit(), true
			}
		}
		if !replaced {
			out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if len(n.GetUnified()) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, n.GetUnified())
	}
	return out
}

// podResources converts a pod's recorded overhead or resources.
func podResources(r *sandbox.Resources) *api.LinuxResources {
	if r == nil {
		return nil
	}
	c := &runtimeapi.LinuxContainerResources{
		CpuPeriod: r.CPUPeriod, CpuQuota: r.CPUQuota, CpuShares: r.CPUShares,
		MemoryLimitInBytes: r.MemoryLimit, MemorySwapLimitInBytes: r.MemorySwapLimit,
		CpusetCpus: r.CpusetCPUs, CpusetMems: r.CpusetMems, Unified: r.Unified,
	}
	for size, limit := range r.HugepageLimits {
		c.HugepageLimits = append(c.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: size, Limit: limit})
	}
	return fromCRI(c)
}
