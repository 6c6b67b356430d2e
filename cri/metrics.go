package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/sandbox"
)

// ListMetricDescriptors describes every metric ListPodSandboxMetrics emits.
func (s *Server) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	if _, err := s.containerManager(); err != nil {
		return nil, err
	}
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: metricDescriptors}, nil
}

// ListPodSandboxMetrics reports the cAdvisor metrics of every pod and its
// containers. Cgroup counters, writable layers and open files come from the
// container sampler's cache where it has them, each with the time it was
// measured; network counters are read for the call.
func (s *Server) ListPodSandboxMetrics(context.Context, *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: s.podMetrics(cm)}, nil
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *Server) StreamPodSandboxMetrics(_ *runtimeapi.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxMetricsResponse]) error {
	cm, err := s.containerManager()
	if err != nil {
		return err
	}
	all := s.podMetrics(cm)
	for start := 0; start < len(all); start += streamChunk {
		msg := &runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: all[start:min(start+streamChunk, len(all))]}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) podMetrics(cm Containers) []*runtimeapi.PodSandboxMetrics {
	now := time.Now()
	pods := s.sandboxes.List(sandbox.Filter{})
	out := make([]*runtimeapi.PodSandboxMetrics, 0, len(pods))
	for _, sb := range pods {
		out = append(out, toPodSandboxMetrics(sb, cm.PodMetricsStats(sb.ID, sb.Namespaces[sandbox.NSNet] != ""), now))
	}
	return out
}

func toPodSandboxMetrics(sb *sandbox.Sandbox, ps *container.PodStats, now time.Time) *runtimeapi.PodSandboxMetrics {
	md := sb.Config.Metadata
	pm := &runtimeapi.PodSandboxMetrics{
		PodSandboxId: sb.ID,
		Metrics:      appendMetrics(nil, podScope, []string{podContainerName, sb.ID, "", md.Namespace, md.Name}, &metricSource{now: now, net: ps.Network}),
	}
	for i, snap := range ps.Containers {
		base := []string{snap.Name, snap.ID, snap.Image.Name, md.Namespace, md.Name}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{
			ContainerId: snap.ID,
			Metrics:     appendMetrics(nil, containerScope, base, &metricSource{now: now, snap: snap, st: ps.Stats[i]}),
		})
	}
	return pm
}

// appendMetrics computes the metrics of one scope. base holds the values of
// baseLabelKeys and is shared by the metrics without extra labels.
func appendMetrics(out []*runtimeapi.Metric, scope metricScope, base []string, src *metricSource) []*runtimeapi.Metric {
	for i := range metricDefs {
		d := &metricDefs[i]
		if d.scope != scope {
			continue
		}
		for _, smp := range d.values(src) {
			if len(smp.labels) != len(d.extra) {
				// A bug in metricDefs; kubelet would drop the metric anyway.
				klog.Errorf("metric %s: %d label values for %d keys", d.name, len(smp.labels), len(d.extra))
				continue
			}
			labels := base
			if len(smp.labels) > 0 {
				labels = append(append(make([]string, 0, len(base)+len(smp.labels)), base...), smp.labels...)
			}
			var ts int64
			if !smp.at.IsZero() {
				ts = smp.at.UnixNano()
			}
			out = append(out, &runtimeapi.Metric{
				Name: d.name, Timestamp: ts, MetricType: d.typ,
				LabelValues: labels, Value: &runtimeapi.UInt64Value{Value: smp.value},
			})
		}
	}
	return out
}
