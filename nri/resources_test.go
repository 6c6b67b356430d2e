package nri

import (
	"reflect"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/spec"
)

func TestResourceConversions(t *testing.T) {
	req := &container.Resources{
		CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 1 << 28,
		OOMScoreAdj: 100, CpusetCPUs: "0-1",
		HugepageLimits: []spec.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "max"},
	}
	n := resourcesToNRI(req)
	if n.GetMemory().GetSwap() != nil {
		t.Errorf("an unset swap limit became %v", n.GetMemory().GetSwap())
	}
	// A round trip loses nothing a request can say.
	if back := mergeResources(&container.Resources{OOMScoreAdj: 100}, n); !reflect.DeepEqual(back, req) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, req)
	}
	if resourcesToNRI(nil) != nil {
		t.Error("no resources became some")
	}

	// A plugin's partial update changes only what it sets.
	u := &api.ContainerUpdate{}
	u.SetLinuxMemoryLimit(1 << 30)
	u.AddLinuxHugepageLimit("2MB", 1<<22)
	u.AddLinuxHugepageLimit("1GB", 1<<30)
	u.AddLinuxUnified("memory.max", "1")
	got := mergeResources(req, u.GetLinux().GetResources())
	if got.MemoryLimit != 1<<30 || got.CPUShares != 512 || got.OOMScoreAdj != 100 || got.HugepageLimits[0].Limit != 1<<22 ||
		len(got.HugepageLimits) != 2 || got.Unified["memory.max"] != "1" || got.Unified["memory.high"] != "max" {
		t.Errorf("merged: %+v", got)
	}
	if req.MemoryLimit != 1<<28 || req.HugepageLimits[0].Limit != 1<<21 || len(req.Unified) != 1 {
		t.Error("merge modified its base")
	}
	if got := mergeResources(nil, u.GetLinux().GetResources()); got.MemoryLimit != 1<<30 || got.CPUShares != 0 {
		t.Errorf("merged over nothing: %+v", got)
	}
}
