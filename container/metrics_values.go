package container

import (
	"sort"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
)

// Defaults the kernel applies when a container sets none, reported as
// cAdvisor reads them back from the cgroup.
const (
	defaultCPUShares = 1024
	defaultCPUPeriod = 100000
)

func oneSample(v uint64) []metricSample { return []metricSample{{value: v}} }

func oneLabeledSample(v uint64, labels ...string) []metricSample {
	return []metricSample{{value: v, labels: labels}}
}

// seconds truncates: the CRI has no fractional values.
func nanosToSeconds(nanos uint64) uint64 { return nanos / 1e9 }

// fromCgroup computes samples from cgroup counters, stamped with the time they
// were read (they may come from the sampler's cache); a container without a
// readable cgroup (exited) has none.
func fromCgroup(f func(*Stats) []metricSample) func(*metricSource) []metricSample {
	return func(src *metricSource) []metricSample {
		if src.st == nil || !src.st.HasCgroup {
			return nil
		}
		out := f(src.st)
		for i := range out {
			if out[i].at.IsZero() {
				out[i].at = src.st.Timestamp
			}
		}
		return out
	}
}

func fromCgroupValue(f func(*Stats) uint64) func(*metricSource) []metricSample {
	return fromCgroup(func(s *Stats) []metricSample { return oneSample(f(s)) })
}

// withQuota reports CFS counters only for containers with a CPU quota, as
// cAdvisor does: without one they say nothing.
func withQuota(f func(*Stats) uint64) func(*metricSource) []metricSample {
	return func(src *metricSource) []metricSample {
		if cpuQuota(src.snap) == nil {
			return nil
		}
		return fromCgroupValue(f)(src)
	}
}

// withPressure reports the "full" (stalled) or "some" (waiting) total of
// the resource's PSI, when the kernel keeps it.
func withPressure(resource func(*monitor.Pressure) *monitor.PSI, full bool) func(*metricSource) []metricSample {
	return fromCgroup(func(s *Stats) []metricSample {
		if s.Pressure == nil {
			return nil
		}
		p := resource(s.Pressure)
		if p == nil {
			return nil
		}
		total := p.Some.Total
		if full {
			total = p.Full.Total
		}
		return oneSample(total / 1e6) // PSI totals are microseconds
	})
}

func memoryFailures(s *Stats) []metricSample {
	// A container's cgroup has no children crisp knows of: the container
	// and hierarchy scopes are the same counters.
	return []metricSample{
		{value: s.PageFaults, labels: []string{"pgfault", "container"}},
		{value: s.PageFaults, labels: []string{"pgfault", "hierarchy"}},
		{value: s.MajorPageFaults, labels: []string{"pgmajfault", "container"}},
		{value: s.MajorPageFaults, labels: []string{"pgmajfault", "hierarchy"}},
	}
}

func hugetlbSamples(s *Stats, peak bool) []metricSample {
	sizes := make([]string, 0, len(s.Hugetlb))
	for size := range s.Hugetlb {
		sizes = append(sizes, size)
	}
	sort.Strings(sizes)
	out := make([]metricSample, 0, len(sizes))
	for _, size := range sizes {
		v := s.Hugetlb[size].Usage
		if peak {
			v = s.Hugetlb[size].MaxUsage
		}
		out = append(out, metricSample{value: v, labels: []string{size}})
	}
	return out
}

func blkioUsage(s *Stats) []metricSample {
	out := make([]metricSample, 0, len(s.IOServiceBytes))
	for _, e := range s.IOServiceBytes {
		out = append(out, metricSample{value: e.Value, labels: []string{
			blockDevices.name(e.Major, e.Minor), strconv.FormatUint(e.Major, 10), strconv.FormatUint(e.Minor, 10), e.Op,
		}})
	}
	return out
}

func deviceOp(entries []monitor.DeviceIO, op string) []metricSample {
	var out []metricSample
	for _, e := range entries {
		if e.Op == op {
			out = append(out, metricSample{value: e.Value, labels: []string{blockDevices.name(e.Major, e.Minor)}})
		}
	}
	return out
}

// fromWritableLayer reports the writable layer as the sampler last measured it.
func fromWritableLayer(f func(*FSUsage) uint64) func(*metricSource) []metricSample {
	return func(src *metricSource) []metricSample {
		if src.st == nil || src.st.WritableLayer.Timestamp.IsZero() {
			return nil
		}
		u := &src.st.WritableLayer
		return []metricSample{{value: f(u), at: u.Timestamp}}
	}
}

func fromOpenFiles(f func(*FileUsage) uint64) func(*metricSource) []metricSample {
	return fromCgroup(func(s *Stats) []metricSample {
		return []metricSample{{value: f(&s.Files), at: s.Files.Timestamp}}
	})
}

func cpuSpec(snap *Snapshot) *specs.LinuxCPU {
	if snap.Resources == nil {
		return nil
	}
	return snap.Resources.CPU
}

func cpuQuota(snap *Snapshot) *int64 {
	if c := cpuSpec(snap); c != nil && c.Quota != nil && *c.Quota > 0 {
		return c.Quota
	}
	return nil
}

func specCPUPeriod(src *metricSource) []metricSample {
	if c := cpuSpec(src.snap); c != nil && c.Period != nil && *c.Period > 0 {
		return oneSample(*c.Period)
	}
	return oneSample(defaultCPUPeriod)
}

func specCPUQuota(src *metricSource) []metricSample {
	if q := cpuQuota(src.snap); q != nil {
		return oneSample(uint64(*q))
	}
	return nil
}

func specCPUShares(src *metricSource) []metricSample {
	if c := cpuSpec(src.snap); c != nil && c.Shares != nil && *c.Shares > 0 {
		return oneSample(*c.Shares)
	}
	return oneSample(defaultCPUShares)
}

// specMemory reports a memory limit; unset or negative (unlimited) is 0.
func specMemory(f func(*specs.LinuxMemory) *int64) func(*metricSource) []metricSample {
	return func(src *metricSource) []metricSample {
		var v uint64
		if r := src.snap.Resources; r != nil && r.Memory != nil {
			if p := f(r.Memory); p != nil && *p > 0 {
				v = uint64(*p)
			}
		}
		return oneSample(v)
	}
}

// startTime is when the container started, or was created if it has not.
func startTime(src *metricSource) []metricSample {
	t := src.snap.Status.StartedAt
	if t.IsZero() {
		t = src.snap.Status.CreatedAt
	}
	if t.IsZero() {
		return nil
	}
	return oneSample(uint64(t.Unix()))
}

func fromNetwork(f func(*IfaceStats) uint64) func(*metricSource) []metricSample {
	return func(src *metricSource) []metricSample {
		if src.net == nil {
			return nil
		}
		out := make([]metricSample, len(src.net.Interfaces))
		for i := range src.net.Interfaces {
			ifc := &src.net.Interfaces[i]
			out[i] = metricSample{value: f(ifc), labels: []string{ifc.Name}}
		}
		return out
	}
}
