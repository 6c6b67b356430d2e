package cri

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/sandbox"
)

func ptr[T any](v T) *T { return &v }

// fullPod has every kind of value, so that every descriptor is emitted.
func fullPod(now time.Time) (*sandbox.Sandbox, *container.PodStats) {
	sb := &sandbox.Sandbox{ID: "pod1", Config: sandbox.Config{Metadata: sandbox.Metadata{Name: "web", Namespace: "ns"}}}
	snap := &container.Snapshot{
		Container: &container.Container{
			ID: "c1", PodID: "pod1", Name: "app", Image: container.ImageInfo{Name: "busybox:1"},
			Resources: &specs.LinuxResources{
				CPU:    &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(20000)), Period: ptr(uint64(50000))},
				Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(32 << 20)), Swap: ptr(int64(-1))},
			},
		},
		Status: container.Status{State: container.StateRunning, StartedAt: now.Add(-time.Minute)},
	}
	st := &container.Stats{
		Stats: monitor.Stats{
			Timestamp: now, CPUUsageNanos: 2_999_999_999, CPUUserNanos: 2e9, CPUSystemNanos: 1e9,
			CFSPeriods: 10, CFSThrottledPeriods: 4, CFSThrottledNanos: 1_500_000_000,
			MemoryUsageBytes: 5 << 20, MemoryWorkingSetBytes: 4 << 20, MemoryMaxUsageBytes: 6 << 20,
			PageFaults: 100, MajorPageFaults: 2, OOMKills: 1, Pids: 3, PidsLimit: 1024, Processes: []int{1, 2},
			IOServiceBytes: []monitor.DeviceIO{{Major: 4095, Minor: 4094, Op: "Read", Value: 4096}, {Major: 4095, Minor: 4094, Op: "Write", Value: 8192}},
			IOServiced:     []monitor.DeviceIO{{Major: 4095, Minor: 4094, Op: "Read", Value: 1}, {Major: 4095, Minor: 4094, Op: "Write", Value: 2}},
			Hugetlb:        map[string]monitor.Hugetlb{"2MB": {Usage: 1, MaxUsage: 2}, "1GB": {}},
			Pressure:       &monitor.Pressure{CPUSome: 2_500_000, CPUFull: 1_000_000, MemorySome: 1, IOFull: 7_000_000},
		},
		HasCgroup:     true,
		WritableLayer: container.FSUsage{Timestamp: now.Add(-5 * time.Second), Bytes: 4096, Inodes: 3, FSBytes: 1 << 30, FSInodes: 1000, FSInodesFree: 900},
		Files:         container.FileUsage{Timestamp: now.Add(-2 * time.Second), FDs: 5, Sockets: 1},
	}
	net := &container.NetStats{Interfaces: []container.IfaceStats{
		{Name: "eth0", RxBytes: 10, RxPackets: 1, TxBytes: 20, TxPackets: 2},
		{Name: "net1", RxDropped: 3, TxErrors: 4},
	}}
	return sb, &container.PodStats{Network: net, Containers: []*container.Snapshot{snap}, Stats: []*container.Stats{st}}
}

func allMetrics(pm *runtimeapi.PodSandboxMetrics) []*runtimeapi.Metric {
	out := append([]*runtimeapi.Metric{}, pm.Metrics...)
	for _, cm := range pm.ContainerMetrics {
		out = append(out, cm.Metrics...)
	}
	return out
}

func TestMetricDescriptorsConsistent(t *testing.T) {
	now := time.Now()
	descs := map[string]*runtimeapi.MetricDescriptor{}
	for _, d := range metricDescriptors {
		if _, dup := descs[d.Name]; dup {
			t.Errorf("descriptor %s listed twice", d.Name)
		}
		descs[d.Name] = d
		if d.Help == "" || len(d.LabelKeys) == 0 {
			t.Errorf("descriptor %s: help %q, keys %v", d.Name, d.Help, d.LabelKeys)
		}
		seen := map[string]bool{}
		for _, k := range d.LabelKeys {
			if seen[k] {
				t.Errorf("descriptor %s: label %s twice", d.Name, k)
			}
			seen[k] = true
		}
	}
	for _, d := range metricDefs {
		// cAdvisor's convention, which Prometheus tooling relies on; its one
		// exception is the filesystem's inode count.
		if strings.HasSuffix(d.name, "_total") && d.typ != counter && d.name != "container_fs_inodes_total" {
			t.Errorf("%s is a gauge", d.name)
		}
	}

	sb, ps := fullPod(now)
	emitted := map[string]bool{}
	for _, m := range allMetrics(toPodSandboxMetrics(sb, ps, now)) {
		d, ok := descs[m.Name]
		if !ok {
			t.Errorf("metric %s has no descriptor", m.Name)
			continue
		}
		if len(m.LabelValues) != len(d.LabelKeys) {
			t.Errorf("metric %s: labels %v for keys %v", m.Name, m.LabelValues, d.LabelKeys)
		}
		if m.Value == nil {
			t.Errorf("metric %s without a value", m.Name)
		}
		emitted[m.Name] = true
	}
	for name := range descs {
		if !emitted[name] {
			t.Errorf("descriptor %s is never emitted, even with every value known", name)
		}
	}
}

// find returns the value of the metric with the given name whose label
// values end with suffix.
func find(t *testing.T, ms []*runtimeapi.Metric, name string, suffix ...string) *runtimeapi.Metric {
	t.Helper()
	for _, m := range ms {
		if m.Name != name || len(m.LabelValues) < len(suffix) {
			continue
		}
		if strings.Join(m.LabelValues[len(m.LabelValues)-len(suffix):], "\x00") == strings.Join(suffix, "\x00") {
			return m
		}
	}
	return nil
}

func TestMetricValues(t *testing.T) {
	now := time.Now()
	sb, ps := fullPod(now)
	pm := toPodSandboxMetrics(sb, ps, now)
	if pm.PodSandboxId != "pod1" || len(pm.ContainerMetrics) != 1 || pm.ContainerMetrics[0].ContainerId != "c1" {
		t.Fatalf("pod metrics for %q, containers %d", pm.PodSandboxId, len(pm.ContainerMetrics))
	}
	cms := pm.ContainerMetrics[0].Metrics
	want := []struct {
		name   string
		labels []string
		value  uint64
		typ    runtimeapi.MetricType
	}{
		{"container_cpu_usage_seconds_total", []string{"app", "c1", "busybox:1", "ns", "web", "total"}, 2, counter}, // truncated
		{"container_cpu_user_seconds_total", nil, 2, counter},
		{"container_cpu_cfs_throttled_seconds_total", nil, 1, counter},
		{"container_cpu_cfs_throttled_periods_total", nil, 4, counter},
		{"container_memory_working_set_bytes", []string{"app", "c1", "busybox:1", "ns", "web"}, 4 << 20, gauge},
		{"container_memory_failures_total", []string{"pgmajfault", "hierarchy"}, 2, counter},
		{"container_oom_events_total", nil, 1, counter},
		{"container_pressure_cpu_waiting_seconds_total", nil, 2, counter},
		{"container_pressure_io_stalled_seconds_total", nil, 7, counter},
		{"container_hugetlb_max_usage_bytes", []string{"2MB"}, 2, gauge},
		{"container_fs_writes_bytes_total", []string{"4095:4094"}, 8192, counter}, // no such device: its numbers
		{"container_blkio_device_usage_total", []string{"4095:4094", "4095", "4094", "Read"}, 4096, counter},
		{"container_fs_usage_bytes", nil, 4096, gauge},
		{"container_fs_limit_bytes", nil, 1 << 30, gauge},
		{"container_fs_inodes_free", nil, 900, gauge},
		{"container_processes", nil, 2, gauge},
		{"container_threads", nil, 3, gauge},
		{"container_threads_max", nil, 1024, gauge},
		{"container_file_descriptors", nil, 5, gauge},
		{"container_sockets", nil, 1, gauge},
		{"container_spec_cpu_shares", nil, 512, gauge},
		{"container_spec_cpu_period", nil, 50000, gauge},
		{"container_spec_cpu_quota", nil, 20000, gauge},
		{"container_spec_memory_limit_bytes", nil, 64 << 20, gauge},
		{"container_spec_memory_reservation_limit_bytes", nil, 32 << 20, gauge},
		{"container_spec_memory_swap_limit_bytes", nil, 0, gauge}, // -1: unlimited
		{"container_start_time_seconds", nil, uint64(now.Add(-time.Minute).Unix()), gauge},
		{"container_last_seen", nil, uint64(now.Unix()), gauge},
	}
	for _, w := range want {
		m := find(t, cms, w.name, w.labels...)
		if m == nil {
			t.Errorf("%s%v missing", w.name, w.labels)
			continue
		}
		if m.Value.Value != w.value || m.MetricType != w.typ {
			t.Errorf("%s%v = %d (%v), want %d (%v)", w.name, w.labels, m.Value.Value, m.MetricType, w.value, w.typ)
		}
	}
	// Values carry the time they were measured, which may be a while ago;
	// those computed for the call none.
	if m := find(t, cms, "container_memory_usage_bytes"); m.Timestamp != ps.Stats[0].Timestamp.UnixNano() {
		t.Errorf("cgroup value with timestamp %d", m.Timestamp)
	}
	if m := find(t, cms, "container_last_seen"); m.Timestamp != 0 {
		t.Errorf("value computed for the call with timestamp %d", m.Timestamp)
	}
	if m := find(t, pm.Metrics, "container_network_receive_bytes_total", "eth0"); m.Timestamp != 0 {
		t.Errorf("network counter read for the call with timestamp %d", m.Timestamp)
	}
	if m := find(t, cms, "container_fs_usage_bytes"); m.Timestamp != ps.Stats[0].WritableLayer.Timestamp.UnixNano() {
		t.Errorf("cached fs usage with timestamp %d", m.Timestamp)
	}
	if m := find(t, cms, "container_sockets"); m.Timestamp != ps.Stats[0].Files.Timestamp.UnixNano() {
		t.Errorf("cached socket count with timestamp %d", m.Timestamp)
	}

	net := find(t, pm.Metrics, "container_network_receive_packets_dropped_total", "net1")
	if net == nil || net.Value.Value != 3 || strings.Join(net.LabelValues, ",") != "POD,pod1,,ns,web,net1" {
		t.Errorf("pod network metric %v", net)
	}
	if len(pm.Metrics) != 16 {
		t.Errorf("%d pod metrics, want 8 per interface", len(pm.Metrics))
	}
}

func TestMetricsWithoutCgroupOrLimits(t *testing.T) {
	now := time.Now()
	sb, ps := fullPod(now)
	ps.Network = nil
	snap := ps.Containers[0]
	snap.Resources = nil
	snap.Status = container.Status{State: container.StateExited, CreatedAt: now.Add(-time.Hour)}
	ps.Stats[0] = &container.Stats{WritableLayer: ps.Stats[0].WritableLayer}
	pm := toPodSandboxMetrics(sb, ps, now)
	if len(pm.Metrics) != 0 {
		t.Errorf("pod without network: %v", pm.Metrics)
	}
	got := map[string]uint64{}
	for _, m := range pm.ContainerMetrics[0].Metrics {
		got[m.Name] = m.Value.Value
	}
	want := map[string]uint64{
		"container_fs_usage_bytes": 4096, "container_fs_limit_bytes": 1 << 30, "container_fs_inodes_total": 1000, "container_fs_inodes_free": 900,
		"container_spec_cpu_period": defaultCPUPeriod, "container_spec_cpu_shares": defaultCPUShares,
		"container_spec_memory_limit_bytes": 0, "container_spec_memory_reservation_limit_bytes": 0, "container_spec_memory_swap_limit_bytes": 0,
		"container_start_time_seconds": uint64(now.Add(-time.Hour).Unix()), "container_last_seen": uint64(now.Unix()),
	}
	if len(got) != len(want) {
		t.Errorf("exited container without limits emits %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %d (present %v), want %d", k, g, ok, v)
		}
	}
}

func TestMetricRPCsWithoutContainerManager(t *testing.T) {
	s := New(Deps{})
	if _, err := s.ListMetricDescriptors(t.Context(), &runtimeapi.ListMetricDescriptorsRequest{}); err == nil {
		t.Error("ListMetricDescriptors without a container manager")
	}
	if _, err := s.ListPodSandboxMetrics(t.Context(), &runtimeapi.ListPodSandboxMetricsRequest{}); err == nil {
		t.Error("ListPodSandboxMetrics without a container manager")
	}
}
