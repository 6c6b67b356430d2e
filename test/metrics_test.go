//go:build integration

package test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// podMetricsOf lists the metrics and returns the pod's, checking on the way
// that every metric has a descriptor with as many label keys as it has values.
func podMetricsOf(t *testing.T, d *harness.Daemon, descs map[string]*runtimeapi.MetricDescriptor, pod string) *runtimeapi.PodSandboxMetrics {
	t.Helper()
	resp, err := d.Runtime.ListPodSandboxMetrics(harness.Ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatalf("ListPodSandboxMetrics: %v", err)
	}
	var found *runtimeapi.PodSandboxMetrics
	for _, pm := range resp.PodMetrics {
		ms := slices.Clone(pm.Metrics)
		for _, cm := range pm.ContainerMetrics {
			ms = append(ms, cm.Metrics...)
		}
		for _, m := range ms {
			d, ok := descs[m.Name]
			if !ok {
				t.Fatalf("metric %s has no descriptor", m.Name)
			}
			if len(m.LabelValues) != len(d.LabelKeys) {
				t.Fatalf("metric %s: values %v for keys %v", m.Name, m.LabelValues, d.LabelKeys)
			}
		}
		if pm.PodSandboxId == pod {
			found = pm
		}
	}
	if found == nil {
		t.Fatalf("no metrics for pod %s", pod)
	}
	return found
}

func descriptors(t *testing.T, d *harness.Daemon) map[string]*runtimeapi.MetricDescriptor {
	t.Helper()
	resp, err := d.Runtime.ListMetricDescriptors(harness.Ctx(t), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatalf("ListMetricDescriptors: %v", err)
	}
	out := map[string]*runtimeapi.MetricDescriptor{}
	for _, d := range resp.Descriptors {
		out[d.Name] = d
	}
	return out
}

// metricValue is the value of the metric name whose label `key` is `val`
// (any, if key is ""), in ms.
func metricValue(t *testing.T, descs map[string]*runtimeapi.MetricDescriptor, ms []*runtimeapi.Metric, name, key, val string) uint64 {
	t.Helper()
	i := slices.Index(descs[name].GetLabelKeys(), key)
	for _, m := range ms {
		if m.Name == name && (key == "" || m.LabelValues[i] == val) {
			return m.Value.GetValue()
		}
	}
	t.Fatalf("no metric %s{%s=%q}", name, key, val)
	return 0
}

func containerMetricsOf(t *testing.T, pm *runtimeapi.PodSandboxMetrics, id string) []*runtimeapi.Metric {
	t.Helper()
	for _, cm := range pm.ContainerMetrics {
		if cm.ContainerId == id {
			return cm.Metrics
		}
	}
	t.Fatalf("no metrics for container %s", id)
	return nil
}

func TestPodSandboxMetrics(t *testing.T) {
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	pull(t, d, ctrImage)
	podCfg := podConfig("metrics")
	pod := runPod(t, d, podCfg)

	const limit = 64 << 20
	spin := ctrConfig("spin", "while :; do :; done")
	spin.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: limit}
	spinID := runCtr(t, d, pod, podCfg, spin)
	idleID := runCtr(t, d, pod, podCfg, ctrConfig("idle", "sleep 1000"))
	defer func() {
		for _, id := range []string{spinID, idleID} {
			d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1})
		}
	}()

	descs := descriptors(t, d)
	pm := podMetricsOf(t, d, descs, pod)
	spinMs := containerMetricsOf(t, pm, spinID)
	cpu0 := metricValue(t, descs, spinMs, "container_cpu_usage_seconds_total", "cpu", "total")

	// Labels say which container and pod a metric is about.
	for _, m := range spinMs {
		keys := descs[m.Name].LabelKeys
		for k, want := range map[string]string{"container": "spin", "id": spinID, "pod": "metrics", "namespace": "crisp-test", "image": ctrImage} {
			if got := m.LabelValues[slices.Index(keys, k)]; got != want {
				t.Fatalf("%s: label %s=%q, want %q", m.Name, k, got, want)
			}
		}
	}

	if ws := metricValue(t, descs, spinMs, "container_memory_working_set_bytes", "", ""); ws == 0 || ws >= limit {
		t.Errorf("working set %d, want within (0, %d)", ws, limit)
	}
	if u := metricValue(t, descs, spinMs, "container_memory_usage_bytes", "", ""); u == 0 || u >= limit {
		t.Errorf("memory usage %d, want within (0, %d)", u, limit)
	}
	if l := metricValue(t, descs, spinMs, "container_spec_memory_limit_bytes", "", ""); l != limit {
		t.Errorf("spec memory limit %d, want %d", l, limit)
	}
	if n := metricValue(t, descs, spinMs, "container_processes", "", ""); n != 1 {
		t.Errorf("spin has %d processes, want 1", n)
	}
	if n := metricValue(t, descs, spinMs, "container_file_descriptors", "", ""); n < 3 {
		t.Errorf("spin has %d open files, want at least stdio", n)
	}
	started := ctrStatus(t, d, spinID).StartedAt / 1e9
	if s := metricValue(t, descs, spinMs, "container_start_time_seconds", "", ""); int64(s) != started {
		t.Errorf("start time %d, want %d", s, started)
	}

	// The pod's network counters move when it talks to its gateway, the
	// only address these tests may reach.
	rx0 := metricValue(t, descs, pm.Metrics, "container_network_receive_packets_total", "interface", "eth0")
	tx0 := metricValue(t, descs, pm.Metrics, "container_network_transmit_packets_total", "interface", "eth0")
	r := execSync(t, d, idleID, 20, "ping", "-c", "3", "-W", "2", pn.Gateway)
	if r.ExitCode != 0 {
		t.Fatalf("ping %s: %s%s", pn.Gateway, r.Stdout, r.Stderr)
	}

	// A busy loop gains at least a second of CPU time (the metric is in
	// whole seconds) by the sampler's next round, 10 s at most.
	var cpu1 uint64
	testutil.WaitFor(t, "the busy loop's CPU seconds to grow", 25*time.Second, func() bool {
		pm = podMetricsOf(t, d, descs, pod)
		cpu1 = metricValue(t, descs, containerMetricsOf(t, pm, spinID), "container_cpu_usage_seconds_total", "cpu", "total")
		return cpu1 > cpu0
	})
	if rx := metricValue(t, descs, pm.Metrics, "container_network_receive_packets_total", "interface", "eth0"); rx < rx0+3 {
		t.Errorf("received packets %d -> %d after 3 pings", rx0, rx)
	}
	if tx := metricValue(t, descs, pm.Metrics, "container_network_transmit_packets_total", "interface", "eth0"); tx < tx0+3 {
		t.Errorf("transmitted packets %d -> %d after 3 pings", tx0, tx)
	}
	idleCPU := metricValue(t, descs, containerMetricsOf(t, pm, idleID), "container_cpu_usage_seconds_total", "cpu", "total")
	if idleCPU >= cpu1 {
		t.Errorf("idle container used %d CPU seconds, the busy one %d", idleCPU, cpu1)
	}
}

// TestPodSandboxMetricsLatency measures ListPodSandboxMetrics over many
// containers (CRISP_METRICS_CONTAINERS, default 20: the test machines are
// small; the report quotes a run with 100).
func TestPodSandboxMetricsLatency(t *testing.T) {
	n := 20
	if v := os.Getenv("CRISP_METRICS_CONTAINERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("CRISP_METRICS_CONTAINERS=%q: want a positive number", v)
		}
	}
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	pull(t, d, ctrImage)
	const perPod = 10
	var ids []string
	for p := 0; p*perPod < n; p++ {
		podCfg := podConfig(fmt.Sprintf("lat%d", p))
		pod := runPod(t, d, podCfg)
		for c := 0; c < perPod && p*perPod+c < n; c++ {
			ids = append(ids, runCtr(t, d, pod, podCfg, ctrConfig(fmt.Sprintf("c%d", c), "sleep 1000")))
		}
	}
	defer func() {
		for _, id := range ids {
			d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1})
		}
	}()
	var lat []time.Duration
	var metrics int
	for i := 0; i < 6; i++ {
		start := time.Now()
		resp, err := d.Runtime.ListPodSandboxMetrics(harness.Ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		metrics = 0
		for _, pm := range resp.PodMetrics {
			metrics += len(pm.Metrics)
			for _, cm := range pm.ContainerMetrics {
				metrics += len(cm.Metrics)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	first, rest := lat[0], slices.Clone(lat[1:])
	slices.Sort(rest)
	// For comparison: ListPodSandboxStats, served from the same samples
	// (with fewer fields to convert).
	start := time.Now()
	if _, err := d.Runtime.ListPodSandboxStats(harness.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{}); err != nil {
		t.Fatal(err)
	}
	live := time.Since(start)
	t.Logf("%d containers, %d metrics: first call %v (reads the cgroups the sampler has not yet), then median %v, max %v; ListPodSandboxStats %v",
		n, metrics, first, rest[len(rest)/2], rest[len(rest)-1], live)
	// Reported, not asserted: timings on a shared CI machine are not a
	// correctness property (benchmarks compare against containerd instead).
}
