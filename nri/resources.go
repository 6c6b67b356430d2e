package nri

import (
	"maps"
	"slices"

	"github.com/containerd/nri/pkg/api"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/sandbox"
)

// resourcesToNRI converts requested resources for plugins. Zero means "not
// set" in a request, so zero values stay unset rather than becoming
// explicit zeros.
func resourcesToNRI(r *container.Resources) *api.LinuxResources {
	if r == nil {
		return nil
	}
	o := &api.LinuxResources{
		Cpu:     &api.LinuxCPU{Cpus: r.CpusetCPUs, Mems: r.CpusetMems},
		Memory:  &api.LinuxMemory{},
		Unified: maps.Clone(r.Unified),
	}
	if v := r.CPUShares; v > 0 {
		o.Cpu.Shares = api.UInt64(uint64(v))
	}
	if v := r.CPUQuota; v != 0 {
		o.Cpu.Quota = api.Int64(v)
	}
	if v := r.CPUPeriod; v > 0 {
		o.Cpu.Period = api.UInt64(uint64(v))
	}
	if v := r.MemoryLimit; v != 0 {
		o.Memory.Limit = api.Int64(v)
	}
	if v := r.MemorySwapLimit; v != 0 {
		o.Memory.Swap = api.Int64(v)
	}
	for _, h := range r.HugepageLimits {
		o.HugepageLimits = append(o.HugepageLimits, &api.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
	}
	return o
}

// mergeResources returns base with what n sets laid over it: plugins send
// only what they change, and an update replaces the requested resources
// whole. Settings a request cannot express (pids, device rules, block I/O)
// are dropped, as in containerd.
func mergeResources(base *container.Resources, n *api.LinuxResources) *container.Resources {
	out := &container.Resources{}
	if base != nil {
		*out = *base
		out.HugepageLimits = slices.Clone(base.HugepageLimits)
		out.Unified = maps.Clone(base.Unified)
	}
	if c := n.GetCpu(); c != nil {
		if v := c.GetShares().Get(); v != nil {
			out.CPUShares = int64(*v)
		}
		if v := c.GetQuota().Get(); v != nil {
			out.CPUQuota = *v
		}
		if v := c.GetPeriod().Get(); v != nil {
			out.CPUPeriod = int64(*v)
		}
		if c.GetCpus() != "" {
			out.CpusetCPUs = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CpusetMems = c.GetMems()
		}
	}
	if m := n.GetMemory(); m != nil {
		if v := m.GetLimit().Get(); v != nil {
			out.MemoryLimit = *v
		}
		if v := m.GetSwap().Get(); v != nil {
			out.MemorySwapLimit = *v
		}
	}
	for _, h := range n.GetHugepageLimits() {
		replaced := false
		for i := range out.HugepageLimits {
			if cur := &out.HugepageLimits[i]; cur.PageSize == h.GetPageSize() {
				cur.Limit, replaced = h.GetLimit(), true
			}
		}
		if !replaced {
			out.HugepageLimits = append(out.HugepageLimits, spec.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
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
	c := &container.Resources{
		CPUPeriod: r.CPUPeriod, CPUQuota: r.CPUQuota, CPUShares: r.CPUShares,
		MemoryLimit: r.MemoryLimit, MemorySwapLimit: r.MemorySwapLimit,
		CpusetCPUs: r.CpusetCPUs, CpusetMems: r.CpusetMems, Unified: r.Unified,
	}
	for size, limit := range r.HugepageLimits {
		c.HugepageLimits = append(c.HugepageLimits, spec.HugepageLimit{PageSize: size, Limit: limit})
	}
	return resourcesToNRI(c)
}
