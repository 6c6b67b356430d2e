package container

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/sandbox"
)

func ptr[T any](v T) *T { return &v }

// fullPod has every kind of value, so that every descriptor is emitted.
func fullPod(now time.Time) (*sandbox.Sandbox, *PodStats) {
	sb := &sandbox.Sandbox{ID: "pod1", Config: sandbox.Config{Metadata: sandbox.Metadata{Name: "web", Namespace: "ns"}}}
	snap := &Snapshot{
		Container: &Container{
			ID: "c1", PodID: "pod1", Name: "app", Image: ImageInfo{Name: "busybox:1"},
			Resources: &specs.LinuxResources{
				CPU:    &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(20000)), Period: ptr(uint64(50000))},
				Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(32 << 20)), Swap: ptr(int64(-1))},
			},
		},
		Status: Status{State: StateRunning, StartedAt: now.Add(-time.Minute)},
	}
	st := &Stats{
		Stats: monitor.Stats{
			Timestamp: now, CPUUsageNanos: 2_999_999_999, CPUUserNanos: 2e9, CPUSystemNanos: 1e9,
			CFSPeriods: 10, CFSThrottledPeriods: 4, CFSThrottledNanos: 1_500_000_000,
			MemoryUsageBytes: 5 << 20, MemoryWorkingSetBytes: 4 << 20, MemoryMaxUsageBytes: 6 << 20,
			PageFaults: 100, MajorPageFaults: 2, OOMKills: 1, Pids: 3, PidsLimit: 1024, Processes: []int{1, 2},
			IOServiceBytes: []monitor.DeviceIO{{Major: 4095, Minor: 4094, Op: "Read", Value: 4096}, {Major: 4095, Minor: 4094, Op: "Write", Value: 8192}},
			IOServiced:     []monitor.DeviceIO{{Major: 4095, Minor: 4094, Op: "Read", Value: 1}, {Major: 4095, Minor: 4094, Op: "Write", Value: 2}},
			Hugetlb:        map[string]monitor.Hugetlb{"2MB": {Usage: 1, MaxUsage: 2}, "1GB": {}},
			Pressure: &monitor.Pressure{
				CPU:    &monitor.PSI{Some: monitor.PSIData{Total: 2_500_000}, Full: monitor.PSIData{Total: 1_000_000}},
				Memory: &monitor.PSI{Some: monitor.PSIData{Total: 1}},
				IO:     &monitor.PSI{Full: monitor.PSIData{Total: 7_000_000}},
			},
		},
		HasCgroup:     true,
		WritableLayer: FSUsage{Timestamp: now.Add(-5 * time.Second), Bytes: 4096, Inodes: 3, FSBytes: 1 << 30, FSInodes: 1000, FSInodesFree: 900},
		Files:         FileUsage{Timestamp: now.Add(-2 * time.Second), FDs: 5, Sockets: 1},
	}
	net := &NetStats{Interfaces: []IfaceStats{
		{Name: "eth0", RxBytes: 10, RxPackets: 1, TxBytes: 20, TxPackets: 2},
		{Name: "net1", RxDropped: 3, TxErrors: 4},
	}}
	return sb, &PodStats{Network: net, Containers: []*Snapshot{snap}, Stats: []*Stats{st}}
}

func allMetrics(pm *PodMetrics) []Metric {
	out := append([]Metric{}, pm.Metrics...)
	for _, cm := range pm.Containers {
		out = append(out, cm.Metrics...)
	}
	return out
}

func TestMetricDescriptorsConsistent(t *testing.T) {
	now := time.Now()
	descs := map[string]MetricDescriptor{}
	for _, d := range MetricDescriptors() {
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
		if strings.HasSuffix(d.name, "_total") && d.typ != Counter && d.name != "container_fs_inodes_total" {
			t.Errorf("%s is a gauge", d.name)
		}
	}

	sb, ps := fullPod(now)
	emitted := map[string]bool{}
	for _, m := range allMetrics(podMetrics(sb, ps, now)) {
		d, ok := descs[m.Name]
		if !ok {
			t.Errorf("metric %s has no descriptor", m.Name)
			continue
		}
		if len(m.LabelValues) != len(d.LabelKeys) {
			t.Errorf("metric %s: labels %v for keys %v", m.Name, m.LabelValues, d.LabelKeys)
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
func find(t *testing.T, ms []Metric, name string, suffix ...string) *Metric {
	t.Helper()
	for i := range ms {
		m := &ms[i]
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
	pm := podMetrics(sb, ps, now)
	if pm.PodID != "pod1" || len(pm.Containers) != 1 || pm.Containers[0].ID != "c1" {
		t.Fatalf("pod metrics for %q, containers %d", pm.PodID, len(pm.Containers))
	}
	cms := pm.Containers[0].Metrics
	want := []struct {
		name   string
		labels []string
		value  uint64
		typ    MetricType
	}{
		{"container_cpu_usage_seconds_total", []string{"app", "c1", "busybox:1", "ns", "web", "total"}, 2, Counter}, // truncated
		{"container_cpu_user_seconds_total", nil, 2, Counter},
		{"container_cpu_cfs_throttled_seconds_total", nil, 1, Counter},
		{"container_cpu_cfs_throttled_periods_total", nil, 4, Counter},
		{"container_memory_working_set_bytes", []string{"app", "c1", "busybox:1", "ns", "web"}, 4 << 20, Gauge},
		{"container_memory_failures_total", []string{"pgmajfault", "hierarchy"}, 2, Counter},
		{"container_oom_events_total", nil, 1, Counter},
		{"container_pressure_cpu_waiting_seconds_total", nil, 2, Counter},
		{"container_pressure_io_stalled_seconds_total", nil, 7, Counter},
		{"container_hugetlb_max_usage_bytes", []string{"2MB"}, 2, Gauge},
		{"container_fs_writes_bytes_total", []string{"4095:4094"}, 8192, Counter}, // no such device: its numbers
		{"container_blkio_device_usage_total", []string{"4095:4094", "4095", "4094", "Read"}, 4096, Counter},
		{"container_fs_usage_bytes", nil, 4096, Gauge},
		{"container_fs_limit_bytes", nil, 1 << 30, Gauge},
		{"container_fs_inodes_free", nil, 900, Gauge},
		{"container_processes", nil, 2, Gauge},
		{"container_threads", nil, 3, Gauge},
		{"container_threads_max", nil, 1024, Gauge},
		{"container_file_descriptors", nil, 5, Gauge},
		{"container_sockets", nil, 1, Gauge},
		{"container_spec_cpu_shares", nil, 512, Gauge},
		{"container_spec_cpu_period", nil, 50000, Gauge},
		{"container_spec_cpu_quota", nil, 20000, Gauge},
		{"container_spec_memory_limit_bytes", nil, 64 << 20, Gauge},
		{"container_spec_memory_reservation_limit_bytes", nil, 32 << 20, Gauge},
		{"container_spec_memory_swap_limit_bytes", nil, 0, Gauge}, // -1: unlimited
		{"container_start_time_seconds", nil, uint64(now.Add(-time.Minute).Unix()), Gauge},
		{"container_last_seen", nil, uint64(now.Unix()), Gauge},
	}
	for _, w := range want {
		m := find(t, cms, w.name, w.labels...)
		if m == nil {
			t.Errorf("%s%v missing", w.name, w.labels)
			continue
		}
		if m.Value != w.value || m.Type != w.typ {
			t.Errorf("%s%v = %d (%v), want %d (%v)", w.name, w.labels, m.Value, m.Type, w.value, w.typ)
		}
	}
	// Values carry the time they were measured, which may be a while ago;
	// those computed for the call none.
	if m := find(t, cms, "container_memory_usage_bytes"); !m.Timestamp.Equal(ps.Stats[0].Timestamp) {
		t.Errorf("cgroup value with timestamp %v", m.Timestamp)
	}
	if m := find(t, cms, "container_last_seen"); !m.Timestamp.IsZero() {
		t.Errorf("value computed for the call with timestamp %v", m.Timestamp)
	}
	if m := find(t, pm.Metrics, "container_network_receive_bytes_total", "eth0"); !m.Timestamp.IsZero() {
		t.Errorf("network counter read for the call with timestamp %v", m.Timestamp)
	}
	if m := find(t, cms, "container_fs_usage_bytes"); !m.Timestamp.Equal(ps.Stats[0].WritableLayer.Timestamp) {
		t.Errorf("cached fs usage with timestamp %v", m.Timestamp)
	}
	if m := find(t, cms, "container_sockets"); !m.Timestamp.Equal(ps.Stats[0].Files.Timestamp) {
		t.Errorf("cached socket count with timestamp %v", m.Timestamp)
	}

	net := find(t, pm.Metrics, "container_network_receive_packets_dropped_total", "net1")
	if net == nil || net.Value != 3 || strings.Join(net.LabelValues, ",") != "POD,pod1,,ns,web,net1" {
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
	snap.Status = Status{State: StateExited, CreatedAt: now.Add(-time.Hour)}
	ps.Stats[0] = &Stats{WritableLayer: ps.Stats[0].WritableLayer}
	pm := podMetrics(sb, ps, now)
	if len(pm.Metrics) != 0 {
		t.Errorf("pod without network: %v", pm.Metrics)
	}
	got := map[string]uint64{}
	for _, m := range pm.Containers[0].Metrics {
		got[m.Name] = m.Value
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

// samplesOf computes one metric of src.
func samplesOf(t *testing.T, name string, src *metricSource) []metricSample {
	t.Helper()
	for i := range metricDefs {
		if metricDefs[i].name == name {
			return metricDefs[i].values(src)
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestMetricRules(t *testing.T) {
	now := time.Now()
	running := func() *metricSource {
		return &metricSource{now: now, snap: &Snapshot{Container: &Container{}}, st: &Stats{HasCgroup: true, Stats: monitor.Stats{Timestamp: now}}}
	}
	type result struct {
		value  uint64
		labels string // joined with ","
	}
	for _, tc := range []struct {
		name   string
		metric string
		set    func(*metricSource)
		want   []result // nil: no sample
	}{
		{"seconds truncate", "container_cpu_user_seconds_total",
			func(s *metricSource) { s.st.CPUUserNanos = 1_999_999_999 }, []result{{1, ""}}},
		{"no cgroup, no cgroup counters", "container_memory_usage_bytes",
			func(s *metricSource) { s.st.HasCgroup = false; s.st.MemoryUsageBytes = 5 }, nil},
		{"no stats at all", "container_threads",
			func(s *metricSource) { s.st = nil }, nil},
		{"CFS counters need a quota", "container_cpu_cfs_periods_total",
			func(s *metricSource) { s.st.CFSPeriods = 3 }, nil},
		{"CFS counters with a quota", "container_cpu_cfs_periods_total",
			func(s *metricSource) {
				s.st.CFSPeriods = 3
				s.snap.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(1000))}}
			}, []result{{3, ""}}},
		{"quota -1 is none", "container_spec_cpu_quota",
			func(s *metricSource) {
				s.snap.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(-1))}}
			}, nil},
		{"period defaults", "container_spec_cpu_period",
			func(s *metricSource) {
				s.snap.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr(uint64(0))}}
			},
			[]result{{defaultCPUPeriod, ""}}},
		{"shares default without resources", "container_spec_cpu_shares", nil, []result{{defaultCPUShares, ""}}},
		{"shares as set", "container_spec_cpu_shares",
			func(s *metricSource) {
				s.snap.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2))}}
			},
			[]result{{2, ""}}},
		{"memory limit unlimited", "container_spec_memory_limit_bytes",
			func(s *metricSource) {
				s.snap.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))}}
			},
			[]result{{0, ""}}},
		{"swap limit as set", "container_spec_memory_swap_limit_bytes",
			func(s *metricSource) {
				s.snap.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(1 << 20))}}
			},
			[]result{{1 << 20, ""}}},
		{"start time falls back to creation", "container_start_time_seconds",
			func(s *metricSource) { s.snap.Status.CreatedAt = time.Unix(1000, 0) }, []result{{1000, ""}}},
		{"start time unknown", "container_start_time_seconds", nil, nil},
		{"no PSI on cgroup v1", "container_pressure_io_waiting_seconds_total", nil, nil},
		{"PSI microseconds to seconds", "container_pressure_memory_stalled_seconds_total",
			func(s *metricSource) {
				s.st.Pressure = &monitor.Pressure{Memory: &monitor.PSI{Full: monitor.PSIData{Total: 2_999_999}}}
			}, []result{{2, ""}}},
		{"no io.pressure", "container_pressure_io_waiting_seconds_total",
			func(s *metricSource) { s.st.Pressure = &monitor.Pressure{CPU: &monitor.PSI{}} }, nil},
		{"hugetlb by page size", "container_hugetlb_usage_bytes",
			func(s *metricSource) {
				s.st.Hugetlb = map[string]monitor.Hugetlb{"2MB": {Usage: 2}, "1GB": {Usage: 1}, "64KB": {Usage: 3}}
			}, []result{{1, "1GB"}, {2, "2MB"}, {3, "64KB"}}},
		{"device counters of one operation", "container_fs_reads_total",
			func(s *metricSource) {
				s.st.IOServiced = []monitor.DeviceIO{
					{Major: 4095, Minor: 1, Op: "Read", Value: 7}, {Major: 4095, Minor: 1, Op: "Write", Value: 8},
					{Major: 4095, Minor: 2, Op: "Read", Value: 9}, {Major: 4095, Minor: 2, Op: "Total", Value: 10},
				}
			}, []result{{7, "4095:1"}, {9, "4095:2"}}},
		{"blkio usage of every operation", "container_blkio_device_usage_total",
			func(s *metricSource) {
				s.st.IOServiceBytes = []monitor.DeviceIO{{Major: 4095, Minor: 3, Op: "Sync", Value: 11}}
			}, []result{{11, "4095:3,4095,3,Sync"}}},
		{"writable layer not measured yet", "container_fs_usage_bytes", nil, nil},
		{"writable layer without cgroup", "container_fs_inodes_total",
			func(s *metricSource) {
				s.st.HasCgroup = false
				s.st.WritableLayer = FSUsage{Timestamp: now, FSInodes: 12}
			}, []result{{12, ""}}},
		{"open files need a cgroup", "container_file_descriptors",
			func(s *metricSource) { s.st.HasCgroup = false; s.st.Files = FileUsage{Timestamp: now, FDs: 4} }, nil},
		{"no network", "container_network_transmit_errors_total", nil, nil},
		{"network per interface", "container_network_transmit_errors_total",
			func(s *metricSource) {
				s.net = &NetStats{Interfaces: []IfaceStats{{Name: "eth0", TxErrors: 1}, {Name: "eth1"}}}
			}, []result{{1, "eth0"}, {0, "eth1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := running()
			if tc.set != nil {
				tc.set(src)
			}
			var got []result
			for _, s := range samplesOf(t, tc.metric, src) {
				got = append(got, result{s.value, strings.Join(s.labels, ",")})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%s = %v, want %v", tc.metric, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%s = %v, want %v", tc.metric, got, tc.want)
				}
			}
		})
	}
}
