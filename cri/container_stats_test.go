package cri

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/monitor"
)

func TestToCRIContainerStatsPSIAndSwap(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ts := now.UnixNano()
	cpuPSI := container.PSI{
		Some: container.PSIData{Total: 123456, Avg10: 1.5, Avg60: 0.25, Avg300: 0.05},
		Full: container.PSIData{Total: 65432, Avg10: 0.5},
	}
	criCPUPSI := &runtimeapi.PsiStats{
		Some: &runtimeapi.PsiData{Total: 123456, Avg10: 1.5, Avg60: 0.25, Avg300: 0.05},
		Full: &runtimeapi.PsiData{Total: 65432, Avg10: 0.5},
	}
	zeroPSI := &runtimeapi.PsiStats{Some: &runtimeapi.PsiData{}, Full: &runtimeapi.PsiData{}}
	cases := []struct {
		name     string
		stats    monitor.Stats
		noCgroup bool
		cpu      *runtimeapi.PsiStats
		mem      *runtimeapi.PsiStats
		io       *runtimeapi.IoUsage
		swap     *runtimeapi.SwapUsage
	}{
		{name: "cgroup v1: no PSI, no swap"},
		{name: "v2 with PSI and a swap limit",
			stats: monitor.Stats{
				Pressure: &monitor.Pressure{CPU: &cpuPSI, Memory: &container.PSI{}, IO: &cpuPSI},
				Swap:     &monitor.Swap{UsageBytes: 100, LimitBytes: 1000},
			},
			cpu: criCPUPSI, mem: zeroPSI,
			io:   &runtimeapi.IoUsage{Timestamp: ts, Psi: criCPUPSI},
			swap: &runtimeapi.SwapUsage{Timestamp: ts, SwapUsageBytes: &runtimeapi.UInt64Value{Value: 100}, SwapAvailableBytes: &runtimeapi.UInt64Value{Value: 900}}},
		{name: "v2 without io.pressure, unlimited swap",
			stats: monitor.Stats{Pressure: &monitor.Pressure{CPU: &cpuPSI}, Swap: &monitor.Swap{UsageBytes: 7}},
			cpu:   criCPUPSI,
			swap:  &runtimeapi.SwapUsage{Timestamp: ts, SwapUsageBytes: &runtimeapi.UInt64Value{Value: 7}}},
		{name: "swap over a lowered limit",
			stats: monitor.Stats{Swap: &monitor.Swap{UsageBytes: 2000, LimitBytes: 1000}},
			swap:  &runtimeapi.SwapUsage{Timestamp: ts, SwapUsageBytes: &runtimeapi.UInt64Value{Value: 2000}, SwapAvailableBytes: &runtimeapi.UInt64Value{Value: 0}}},
		{name: "cgroup gone",
			stats:    monitor.Stats{Pressure: &monitor.Pressure{CPU: &cpuPSI}, Swap: &monitor.Swap{UsageBytes: 7}},
			noCgroup: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &container.Stats{Stats: tc.stats, HasCgroup: !tc.noCgroup}
			st.Timestamp = now
			snap := &container.Snapshot{Container: &container.Container{ID: "c1"}}
			out := toCRIContainerStats(snap, st)
			if got := out.GetCpu().GetPsi(); !proto.Equal(got, tc.cpu) {
				t.Errorf("cpu psi %v, want %v", got, tc.cpu)
			}
			if got := out.GetMemory().GetPsi(); !proto.Equal(got, tc.mem) {
				t.Errorf("memory psi %v, want %v", got, tc.mem)
			}
			if got := out.GetIo(); !proto.Equal(got, tc.io) {
				t.Errorf("io %v, want %v", got, tc.io)
			}
			if got := out.GetSwap(); !proto.Equal(got, tc.swap) {
				t.Errorf("swap %v, want %v", got, tc.swap)
			}
			// nil, not an empty message: kubelet reads presence.
			if tc.cpu == nil && out.GetCpu().Psi != nil || tc.io == nil && out.Io != nil || tc.swap == nil && out.Swap != nil {
				t.Errorf("empty messages instead of nil: %v", out)
			}
		})
	}
}
