package container

import (
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/sandbox"
)

// MetricType says how a metric's value behaves over time.
type MetricType int

const (
	// Counter only grows (until a reset, such as a restart).
	Counter MetricType = iota
	// Gauge goes up and down.
	Gauge
)

// MetricDescriptor describes one metric PodMetrics emits.
type MetricDescriptor struct {
	Name, Help string
	// LabelKeys name the values of every Metric of this name, in order.
	LabelKeys []string
}

// Metric is one value of a metric.
type Metric struct {
	Name        string
	Type        MetricType
	LabelValues []string // for the descriptor's LabelKeys
	Value       uint64
	// Timestamp is when the value was measured (it may come from the
	// sampler's cache); zero if it was computed for the call.
	Timestamp time.Time
}

// PodMetrics are a pod's metrics: those of the pod's network and those of
// each container.
type PodMetrics struct {
	PodID      string
	Metrics    []Metric
	Containers []ContainerMetrics
}

// ContainerMetrics are one container's metrics.
type ContainerMetrics struct {
	ID      string
	Metrics []Metric
}

// MetricDescriptors describes every metric PodMetrics emits. The list is
// fixed at start, as the CRI requires; callers must not modify it.
func MetricDescriptors() []MetricDescriptor { return metricDescriptors }

// PodMetrics reports the cAdvisor metrics of a pod and its containers.
// Cgroup counters, writable layers and open files come from the sampler's
// cache where it has them (see metricsStats), each with the time it was
// measured; network counters are read for the call.
func (m *Manager) PodMetrics(pod *sandbox.Sandbox) *PodMetrics {
	return podMetrics(pod, m.metricsStats(pod.ID, pod.Namespaces[sandbox.NSNet] != ""), time.Now())
}

func podMetrics(pod *sandbox.Sandbox, ps *PodStats, now time.Time) *PodMetrics {
	md := pod.Config.Metadata
	pm := &PodMetrics{
		PodID:   pod.ID,
		Metrics: appendMetrics(nil, podScope, []string{podContainerName, pod.ID, "", md.Namespace, md.Name}, &metricSource{now: now, net: ps.Network}),
	}
	for i, snap := range ps.Containers {
		base := []string{snap.Name, snap.ID, snap.Image.Name, md.Namespace, md.Name}
		pm.Containers = append(pm.Containers, ContainerMetrics{
			ID:      snap.ID,
			Metrics: appendMetrics(nil, containerScope, base, &metricSource{now: now, snap: snap, st: ps.Stats[i]}),
		})
	}
	return pm
}

// appendMetrics computes the metrics of one scope. base holds the values of
// baseLabelKeys and is shared by the metrics without extra labels.
func appendMetrics(out []Metric, scope metricScope, base []string, src *metricSource) []Metric {
	for i := range metricDefs {
		d := &metricDefs[i]
		if d.scope != scope {
			continue
		}
		for _, smp := range d.values(src) {
			if len(smp.labels) != len(d.extra) {
				// A bug in metricDefs; kubelet would drop the metric anyway.
				klog.ErrorS(nil, "Metric sample has the wrong number of label values", "metric", d.name, "values", len(smp.labels), "keys", len(d.extra))
				continue
			}
			labels := base
			if len(smp.labels) > 0 {
				labels = append(append(make([]string, 0, len(base)+len(smp.labels)), base...), smp.labels...)
			}
			out = append(out, Metric{Name: d.name, Type: d.typ, LabelValues: labels, Value: smp.value, Timestamp: smp.at})
		}
	}
	return out
}
