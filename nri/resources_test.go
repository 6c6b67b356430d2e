package nri

import (
	"testing"

	"github.com/containerd/nri/pkg/api"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResourceConversions(t *testing.T) {
	cri := &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 28,
		OomScoreAdj: 100, CpusetCpus: "0-1",
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "max"},
	}
	n := fromCRI(cri)
	if n.GetMemory().GetSwap() != nil {
		t.Errorf("an unset swap limit became %v", n.GetMemory().GetSwap())
	}
	// A round trip loses nothing the CRI can say.
	if back := mergeCRI(&runtimeapi.LinuxContainerResources{OomScoreAdj: 100}, n); !proto.Equal(back, cri) {
		t.Errorf("round trip:\n got %v\nwant %v", back, cri)
	}

	// A plugin's partial update changes only what it sets.
	u := &api.ContainerUpdate{}
	u.SetLinuxMemoryLimit(1 << 30)
	u.AddLinuxHugepageLimit("2MB", 1<<22)
	got := mergeCRI(cri, u.GetLinux().GetResources())
	if got.MemoryLimitInBytes != 1<<30 || got.CpuShares != 512 || got.OomScoreAdj != 100 || got.HugepageLimits[0].Limit != 1<<22 || len(got.HugepageLimits) != 1 {
		t.Errorf("merged: %v", got)
	}
	if cri.MemoryLimitInBytes != 1<<28 {
		t.Error("merge modified its base")
	}
}
