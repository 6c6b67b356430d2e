package cri

import (
	"context"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

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
// containers.
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
	pods := s.sandboxes.List(sandbox.Filter{})
	out := make([]*runtimeapi.PodSandboxMetrics, 0, len(pods))
	for _, sb := range pods {
		out = append(out, toCRIPodSandboxMetrics(cm.PodMetrics(sb)))
	}
	return out
}

// metricDescriptors is what ListMetricDescriptors returns: fixed at start,
// as the CRI requires.
var metricDescriptors = toCRIMetricDescriptors(container.MetricDescriptors())

func toCRIMetricDescriptors(ds []container.MetricDescriptor) []*runtimeapi.MetricDescriptor {
	out := make([]*runtimeapi.MetricDescriptor, len(ds))
	for i, d := range ds {
		out[i] = &runtimeapi.MetricDescriptor{Name: d.Name, Help: d.Help, LabelKeys: d.LabelKeys}
	}
	return out
}

func toCRIPodSandboxMetrics(pm *container.PodMetrics) *runtimeapi.PodSandboxMetrics {
	out := &runtimeapi.PodSandboxMetrics{PodSandboxId: pm.PodID, Metrics: toCRIMetrics(pm.Metrics)}
	for _, cm := range pm.Containers {
		out.ContainerMetrics = append(out.ContainerMetrics, &runtimeapi.ContainerMetrics{
			ContainerId: cm.ID, Metrics: toCRIMetrics(cm.Metrics),
		})
	}
	return out
}

var criMetricTypes = map[container.MetricType]runtimeapi.MetricType{
	container.Counter: runtimeapi.MetricType_COUNTER,
	container.Gauge:   runtimeapi.MetricType_GAUGE,
}

// toCRIMetrics translates metrics; a value computed for the call has no
// timestamp.
func toCRIMetrics(ms []container.Metric) []*runtimeapi.Metric {
	if len(ms) == 0 {
		return nil
	}
	out := make([]*runtimeapi.Metric, len(ms))
	for i := range ms {
		m := &ms[i]
		var ts int64
		if !m.Timestamp.IsZero() {
			ts = m.Timestamp.UnixNano()
		}
		out[i] = &runtimeapi.Metric{
			Name: m.Name, Timestamp: ts, MetricType: criMetricTypes[m.Type],
			LabelValues: m.LabelValues, Value: &runtimeapi.UInt64Value{Value: m.Value},
		}
	}
	return out
}
