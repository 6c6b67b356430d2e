package container

import (
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
)

// The metrics are the ones kubelet's /metrics/cadvisor serves, under
// cAdvisor's names, label keys and units, so that dashboards and alerts
// keep working when kubelet takes them from the runtime
// (PodAndContainerStatsFromCRI). The CRI carries values as uint64: seconds
// are whole seconds, as in CRI-O.

// baseLabelKeys label every metric. The extra keys of a metric follow them.
var baseLabelKeys = []string{"container", "id", "image", "namespace", "pod"}

// podContainerName is the container label of pod-level metrics (network),
// the name cAdvisor gives the pause container that holds them elsewhere.
const podContainerName = "POD"

type metricScope int

const (
	containerScope metricScope = iota
	podScope
)

// metricSource is what one container's (or one pod's) metrics are computed
// from.
type metricSource struct {
	now  time.Time
	snap *Snapshot
	st   *Stats
	net  *NetStats
}

// metricSample is one value; labels are the values of the metric's extra
// keys, in order. at is when the value was measured, zero if for this call.
type metricSample struct {
	value  uint64
	labels []string
	at     time.Time
}

type metricDef struct {
	name, help string
	typ        MetricType
	extra      []string
	scope      metricScope
	values     func(*metricSource) []metricSample
}

var (
	networkKeys = []string{"interface"}
	deviceKeys  = []string{"device"}
)

// metricDefs is the one list both RPCs are made from: a metric cannot be
// emitted without its descriptor.
var metricDefs = []metricDef{
	// CPU
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", Counter, []string{"cpu"}, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return oneLabeledSample(nanosToSeconds(s.CPUUsageNanos), "total") })},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", Counter, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return nanosToSeconds(s.CPUUserNanos) })},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", Counter, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return nanosToSeconds(s.CPUSystemNanos) })},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", Counter, nil, containerScope,
		withQuota(func(s *Stats) uint64 { return s.CFSPeriods })},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", Counter, nil, containerScope,
		withQuota(func(s *Stats) uint64 { return s.CFSThrottledPeriods })},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", Counter, nil, containerScope,
		withQuota(func(s *Stats) uint64 { return nanosToSeconds(s.CFSThrottledNanos) })},

	// Memory
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryUsageBytes })},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryMaxUsageBytes })},
	{"container_memory_working_set_bytes", "Current working set in bytes.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryWorkingSetBytes })},
	{"container_memory_rss", "Size of RSS in bytes.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryRSSBytes })},
	{"container_memory_cache", "Number of bytes of page cache memory.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryCacheBytes })},
	{"container_memory_swap", "Container swap usage in bytes.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemorySwapBytes })},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryKernelBytes })},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryMappedFileBytes })},
	{"container_memory_failcnt", "Number of memory usage hits limits.", Counter, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.MemoryFailcnt })},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", Counter, []string{"failure_type", "scope"}, containerScope,
		fromCgroup(memoryFailures)},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", Counter, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.OOMKills })},
	{"container_hugetlb_usage_bytes", "Current hugepage usage in bytes.", Gauge, []string{"pagesize"}, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return hugetlbSamples(s, false) })},
	{"container_hugetlb_max_usage_bytes", "Maximum hugepage usage recorded in bytes.", Gauge, []string{"pagesize"}, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return hugetlbSamples(s, true) })},

	// Pressure stall information: cgroup v2 only.
	{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", Counter, nil, containerScope,
		withPressure(func(p *monitor.Pressure) *monitor.PSI { return p.CPU }, true)},
	{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", Counter, nil, containerScope,
		withPressure(func(p *monitor.Pressure) *monitor.PSI { return p.CPU }, false)},
	{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", Counter, nil, containerScope,
		withPressure(func(p *monitor.Pressure) *monitor.PSI { return p.Memory }, true)},
	{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", Counter, nil, containerScope,
		withPressure(func(p *monitor.Pressure) *monitor.PSI { return p.Memory }, false)},
	{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", Counter, nil, containerScope,
		withPressure(func(p *monitor.Pressure) *monitor.PSI { return p.IO }, true)},
	{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", Counter, nil, containerScope,
		withPressure(func(p *monitor.Pressure) *monitor.PSI { return p.IO }, false)},

	// Block I/O, per device; nothing where the kernel accounts none.
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", Counter, []string{"device", "major", "minor", "operation"}, containerScope,
		fromCgroup(blkioUsage)},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", Counter, deviceKeys, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return deviceOp(s.IOServiceBytes, "Read") })},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", Counter, deviceKeys, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return deviceOp(s.IOServiceBytes, "Write") })},
	{"container_fs_reads_total", "Cumulative count of reads completed.", Counter, deviceKeys, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return deviceOp(s.IOServiced, "Read") })},
	{"container_fs_writes_total", "Cumulative count of writes completed.", Counter, deviceKeys, containerScope,
		fromCgroup(func(s *Stats) []metricSample { return deviceOp(s.IOServiced, "Write") })},

	// Writable layer and the filesystem under it, as last measured.
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", Gauge, nil, containerScope,
		fromWritableLayer(func(u *FSUsage) uint64 { return u.Bytes })},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", Gauge, nil, containerScope,
		fromWritableLayer(func(u *FSUsage) uint64 { return u.FSBytes })},
	{"container_fs_inodes_total", "Number of Inodes.", Gauge, nil, containerScope,
		fromWritableLayer(func(u *FSUsage) uint64 { return u.FSInodes })},
	{"container_fs_inodes_free", "Number of available Inodes.", Gauge, nil, containerScope,
		fromWritableLayer(func(u *FSUsage) uint64 { return u.FSInodesFree })},

	// Processes
	{"container_processes", "Number of processes running inside the container.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return uint64(len(s.Processes)) })},
	{"container_threads", "Number of threads running inside the container.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.Pids })},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", Gauge, nil, containerScope,
		fromCgroupValue(func(s *Stats) uint64 { return s.PidsLimit })},
	{"container_file_descriptors", "Number of open file descriptors for the container.", Gauge, nil, containerScope,
		fromOpenFiles(func(f *FileUsage) uint64 { return f.FDs })},
	{"container_sockets", "Number of open sockets for the container.", Gauge, nil, containerScope,
		fromOpenFiles(func(f *FileUsage) uint64 { return f.Sockets })},

	// Spec and lifetime
	{"container_spec_cpu_period", "CPU period of the container.", Gauge, nil, containerScope, specCPUPeriod},
	{"container_spec_cpu_quota", "CPU quota of the container.", Gauge, nil, containerScope, specCPUQuota},
	{"container_spec_cpu_shares", "CPU share of the container.", Gauge, nil, containerScope, specCPUShares},
	{"container_spec_memory_limit_bytes", "Memory limit for the container (0: unlimited).", Gauge, nil, containerScope,
		specMemory(func(l *specs.LinuxMemory) *int64 { return l.Limit })},
	{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container (0: none).", Gauge, nil, containerScope,
		specMemory(func(l *specs.LinuxMemory) *int64 { return l.Reservation })},
	{"container_spec_memory_swap_limit_bytes", "Memory plus swap limit for the container, as set in its resources (0: unlimited).", Gauge, nil, containerScope,
		specMemory(func(l *specs.LinuxMemory) *int64 { return l.Swap })},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", Gauge, nil, containerScope, startTime},
	{"container_last_seen", "Last time a container was seen by the exporter.", Gauge, nil, containerScope,
		func(src *metricSource) []metricSample { return oneSample(uint64(src.now.Unix())) }},

	// Network: the pod's namespace, so per pod.
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.RxBytes })},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.RxPackets })},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.RxDropped })},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.RxErrors })},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.TxBytes })},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.TxPackets })},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.TxDropped })},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", Counter, networkKeys, podScope,
		fromNetwork(func(i *IfaceStats) uint64 { return i.TxErrors })},
}

// metricDescriptors is what MetricDescriptors returns.
var metricDescriptors = func() []MetricDescriptor {
	out := make([]MetricDescriptor, len(metricDefs))
	for i, d := range metricDefs {
		keys := append(append([]string{}, baseLabelKeys...), d.extra...)
		out[i] = MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: keys}
	}
	return out
}()
