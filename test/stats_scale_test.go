//go:build integration

package test

import (
	"fmt"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// TestStatsAtScale runs 10 pods with 30 containers (1 to 5 per pod) and
// checks the stats kubelet polls for a whole node, first as read for the
// call (containers the sampler has not seen yet), then as served from the
// sampler's samples: every container is reported once with its pod's
// attributes, values are plausible (a container holding 16 MiB has at
// least that working set, one that burnt CPU shows it), ContainerStats
// agrees with ListContainerStats (read later: the same counters or larger),
// a pod's stats are the sum of its containers', and where both lists serve
// the same sample they report the same values.
func TestStatsAtScale(t *testing.T) {
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	pull(t, d, ctrImage)

	const (
		pods    = 10
		memSize = 16 << 20
	)
	podOf := map[string]string{}    // container id -> pod id
	ctrsOf := map[string][]string{} // pod id -> container ids
	var memID, burnID string
	var all []string
	for p := 0; p < pods; p++ {
		podCfg := podConfig(fmt.Sprintf("scale%d", p))
		pod := runPod(t, d, podCfg)
		for c := 0; c < 1+p%5; c++ {
			script := "sleep 100000"
			switch {
			case p == 0:
				// /dev/shm pages are charged to the writer's memory
				// cgroup and are not inactive file cache: working set.
				script = fmt.Sprintf("head -c %d /dev/zero >/dev/shm/hold && sleep 100000", memSize)
			case p == 1 && c == 0:
				script = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 100000"
			}
			id := runCtr(t, d, pod, podCfg, ctrConfig(fmt.Sprintf("c%d", c), script))
			switch {
			case p == 0:
				memID = id
			case p == 1 && c == 0:
				burnID = id
			}
			podOf[id] = pod
			ctrsOf[pod] = append(ctrsOf[pod], id)
			all = append(all, id)
		}
	}
	if len(all) != 30 {
		t.Fatalf("started %d containers, want 30", len(all))
	}
	// Wait for the two workloads to have done their part.
	testutil.WaitFor(t, "the memory holder's working set and the burner's CPU time", time.Minute, func() bool {
		return ctrStats(t, d, memID).GetMemory().GetWorkingSetBytes().GetValue() >= memSize &&
			ctrStats(t, d, burnID).GetCpu().GetUsageCoreNanoSeconds().GetValue() >= 20e6
	})

	listCtrs := func() map[string]*runtimeapi.ContainerStats {
		resp, err := d.Runtime.ListContainerStats(harness.Ctx(t), &runtimeapi.ListContainerStatsRequest{})
		if err != nil {
			t.Fatalf("ListContainerStats: %v", err)
		}
		out := map[string]*runtimeapi.ContainerStats{}
		for _, s := range resp.Stats {
			if out[s.Attributes.Id] != nil {
				t.Fatalf("ListContainerStats: container %s twice", s.Attributes.Id)
			}
			out[s.Attributes.Id] = s
		}
		if len(out) != len(all) {
			t.Fatalf("ListContainerStats: %d containers, want %d", len(out), len(all))
		}
		return out
	}
	listPods := func() map[string]*runtimeapi.PodSandboxStats {
		resp, err := d.Runtime.ListPodSandboxStats(harness.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{})
		if err != nil {
			t.Fatalf("ListPodSandboxStats: %v", err)
		}
		out := map[string]*runtimeapi.PodSandboxStats{}
		for _, s := range resp.Stats {
			out[s.Attributes.Id] = s
		}
		if len(out) != pods {
			t.Fatalf("ListPodSandboxStats: %d pods, want %d", len(out), pods)
		}
		return out
	}

	check := func(phase string, sampled bool) {
		t.Helper()
		before := time.Now().UnixNano()
		cs := listCtrs()
		ps := listPods()
		for _, id := range all {
			s := cs[id]
			cpu, mem := s.GetCpu(), s.GetMemory()
			if s.Attributes.Metadata.GetName() == "" {
				t.Errorf("%s: %s: attributes %+v", phase, id, s.Attributes)
			}
			if cpu.GetUsageCoreNanoSeconds().GetValue() == 0 || mem.GetWorkingSetBytes().GetValue() == 0 ||
				mem.GetWorkingSetBytes().GetValue() > mem.GetUsageBytes().GetValue() || cpu.GetTimestamp() == 0 ||
				s.GetWritableLayer().GetFsId().GetMountpoint() == "" {
				t.Errorf("%s: %s: implausible stats cpu %v memory %v writable layer %v", phase, id, cpu, mem, s.GetWritableLayer())
			}
			if sampled && cpu.GetTimestamp() >= before {
				t.Errorf("%s: %s: sample taken at %d, after the call began (%d)", phase, id, cpu.GetTimestamp(), before)
			}
			// ContainerStats, read now, is never behind the list.
			one := ctrStats(t, d, id)
			if one.GetCpu().GetTimestamp() < cpu.GetTimestamp() ||
				one.GetCpu().GetUsageCoreNanoSeconds().GetValue() < cpu.GetUsageCoreNanoSeconds().GetValue() {
				t.Errorf("%s: %s: ContainerStats cpu %v is behind ListContainerStats' %v", phase, id, one.GetCpu(), cpu)
			}
			if sampled && one.GetCpu().GetTimestamp() == cpu.GetTimestamp() {
				t.Errorf("%s: %s: ContainerStats served the sample, want a read", phase, id)
			}
		}
		if ws := cs[memID].GetMemory().GetWorkingSetBytes().GetValue(); ws < memSize {
			t.Errorf("%s: memory holder's working set %d, want ≥ %d", phase, ws, memSize)
		}
		for pod, ids := range ctrsOf {
			p := ps[pod]
			lx := p.GetLinux()
			if len(lx.GetContainers()) != len(ids) {
				t.Errorf("%s: pod %s lists %d containers, want %d", phase, pod, len(lx.GetContainers()), len(ids))
				continue
			}
			var cpu, ws, usage uint64
			for _, c := range lx.Containers {
				if podOf[c.Attributes.Id] != pod {
					t.Errorf("%s: pod %s lists container %s of pod %s", phase, pod, c.Attributes.Id, podOf[c.Attributes.Id])
				}
				cpu += c.GetCpu().GetUsageCoreNanoSeconds().GetValue()
				ws += c.GetMemory().GetWorkingSetBytes().GetValue()
				usage += c.GetMemory().GetUsageBytes().GetValue()
				if sampled {
					// Both lists serve the same sample.
					l := cs[c.Attributes.Id]
					if c.GetCpu().GetTimestamp() != l.GetCpu().GetTimestamp() ||
						c.GetCpu().GetUsageCoreNanoSeconds().GetValue() != l.GetCpu().GetUsageCoreNanoSeconds().GetValue() ||
						c.GetMemory().GetWorkingSetBytes().GetValue() != l.GetMemory().GetWorkingSetBytes().GetValue() {
						t.Errorf("%s: %s: ListPodSandboxStats cpu %v memory %v, ListContainerStats cpu %v memory %v",
							phase, c.Attributes.Id, c.GetCpu(), c.GetMemory(), l.GetCpu(), l.GetMemory())
					}
				}
			}
			if lx.GetCpu().GetUsageCoreNanoSeconds().GetValue() != cpu || lx.GetMemory().GetWorkingSetBytes().GetValue() != ws ||
				lx.GetMemory().GetUsageBytes().GetValue() != usage {
				t.Errorf("%s: pod %s: cpu %v memory %v, its containers sum to cpu %d working set %d usage %d",
					phase, pod, lx.GetCpu(), lx.GetMemory(), cpu, ws, usage)
			}
			if n := lx.GetProcess().GetProcessCount().GetValue(); n < uint64(len(ids)) {
				t.Errorf("%s: pod %s: %d processes for %d containers", phase, pod, n, len(ids))
			}
			if lx.GetNetwork().GetDefaultInterface().GetName() != "eth0" {
				t.Errorf("%s: pod %s: network %v, want eth0's counters", phase, pod, lx.GetNetwork())
			}
		}
		burn := cs[burnID].GetCpu().GetUsageCoreNanoSeconds().GetValue()
		for _, id := range ctrsOf[podOf[burnID]][1:] {
			if idle := cs[id].GetCpu().GetUsageCoreNanoSeconds().GetValue(); idle >= burn {
				t.Errorf("%s: idle container %s used %d ns of CPU, the burner %d", phase, id, idle, burn)
			}
		}
	}

	check("read for the call", false)
	// The sampler's next round (every 10 s) samples them all; from then on
	// two lists in a row serve the same sample.
	testutil.WaitFor(t, "the sampler's samples to be served", time.Minute, func() bool {
		a, b := listCtrs(), listCtrs()
		for _, id := range all {
			if a[id].GetCpu().GetTimestamp() != b[id].GetCpu().GetTimestamp() {
				return false
			}
		}
		return true
	})
	check("served from the samples", true)
}

func ctrStats(t *testing.T, d *harness.Daemon, id string) *runtimeapi.ContainerStats {
	t.Helper()
	resp, err := d.Runtime.ContainerStats(harness.Ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats %s: %v", id, err)
	}
	return resp.Stats
}
