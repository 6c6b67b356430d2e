package cri

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/sandbox"
)

func TestMetricDescriptorsTranslated(t *testing.T) {
	ds := container.MetricDescriptors()
	if len(ds) == 0 || len(metricDescriptors) != len(ds) {
		t.Fatalf("%d CRI descriptors for %d metrics", len(metricDescriptors), len(ds))
	}
	for i, d := range ds {
		want := &runtimeapi.MetricDescriptor{Name: d.Name, Help: d.Help, LabelKeys: d.LabelKeys}
		if !proto.Equal(metricDescriptors[i], want) {
			t.Errorf("descriptor %d = %v, want %v", i, metricDescriptors[i], want)
		}
	}
}

func TestToCRIPodSandboxMetrics(t *testing.T) {
	at := time.Unix(1700000000, 123)
	for _, tc := range []struct {
		name string
		in   container.PodMetrics
		want *runtimeapi.PodSandboxMetrics
	}{
		{
			name: "pod without metrics or containers",
			in:   container.PodMetrics{PodID: "p0"},
			want: &runtimeapi.PodSandboxMetrics{PodSandboxId: "p0"},
		},
		{
			name: "measured counter and gauge for the call",
			in: container.PodMetrics{PodID: "p1", Metrics: []container.Metric{
				{Name: "rx", Type: container.Counter, LabelValues: []string{"POD", "p1", "", "ns", "web", "eth0"}, Value: 7, Timestamp: at},
				{Name: "seen", Type: container.Gauge, LabelValues: []string{"POD"}, Value: 9},
			}},
			want: &runtimeapi.PodSandboxMetrics{PodSandboxId: "p1", Metrics: []*runtimeapi.Metric{
				{Name: "rx", MetricType: runtimeapi.MetricType_COUNTER, LabelValues: []string{"POD", "p1", "", "ns", "web", "eth0"},
					Value: &runtimeapi.UInt64Value{Value: 7}, Timestamp: at.UnixNano()},
				{Name: "seen", MetricType: runtimeapi.MetricType_GAUGE, LabelValues: []string{"POD"}, Value: &runtimeapi.UInt64Value{Value: 9}},
			}},
		},
		{
			name: "containers in order, one without metrics",
			in: container.PodMetrics{PodID: "p2", Containers: []container.ContainerMetrics{
				{ID: "c1", Metrics: []container.Metric{{Name: "threads", Type: container.Gauge, LabelValues: []string{"app"}, Value: 3, Timestamp: at}}},
				{ID: "c2"},
			}},
			want: &runtimeapi.PodSandboxMetrics{PodSandboxId: "p2", ContainerMetrics: []*runtimeapi.ContainerMetrics{
				{ContainerId: "c1", Metrics: []*runtimeapi.Metric{{Name: "threads", MetricType: runtimeapi.MetricType_GAUGE,
					LabelValues: []string{"app"}, Value: &runtimeapi.UInt64Value{Value: 3}, Timestamp: at.UnixNano()}}},
				{ContainerId: "c2"},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := toCRIPodSandboxMetrics(&tc.in); !proto.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// usageContainers is a container manager that only reports usage; other
// methods panic.
type usageContainers struct {
	Containers
	metrics  map[string]*container.PodMetrics // by pod ID
	writable image.FilesystemUsage
}

func (f *usageContainers) PodMetrics(pod *sandbox.Sandbox) *container.PodMetrics {
	return f.metrics[pod.ID]
}

func (f *usageContainers) WritableLayersUsage() image.FilesystemUsage { return f.writable }

func (f fakeSandboxes) List(sandbox.Filter) []*sandbox.Sandbox {
	var out []*sandbox.Sandbox
	for _, sb := range f.pods {
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, b *sandbox.Sandbox) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func TestListPodSandboxMetricsEveryPod(t *testing.T) {
	cm := &usageContainers{metrics: map[string]*container.PodMetrics{
		"p1": {PodID: "p1", Metrics: []container.Metric{{Name: "rx", Value: 1}}},
		"p2": {PodID: "p2", Containers: []container.ContainerMetrics{{ID: "c1"}}},
	}}
	s := New(Deps{Containers: cm, Sandboxes: fakeSandboxes{pods: map[string]*sandbox.Sandbox{"p1": {ID: "p1"}, "p2": {ID: "p2"}}}})
	resp, err := s.ListPodSandboxMetrics(t.Context(), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.PodMetrics) != 2 || resp.PodMetrics[0].PodSandboxId != "p1" || len(resp.PodMetrics[0].Metrics) != 1 ||
		resp.PodMetrics[1].PodSandboxId != "p2" || resp.PodMetrics[1].ContainerMetrics[0].ContainerId != "c1" {
		t.Errorf("got %v", resp.PodMetrics)
	}
	d, err := s.ListMetricDescriptors(t.Context(), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil || len(d.Descriptors) != len(container.MetricDescriptors()) {
		t.Errorf("ListMetricDescriptors = %d descriptors, %v", len(d.GetDescriptors()), err)
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
