package cri

import (
	"context"
	"runtime"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/internal/fanout"
	"github.com/crisp-runtime/crisp/sandbox"
)

// ContainerStats reports one container's CPU, memory and writable layer.
func (s *Server) ContainerStats(_ context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	snap, st, err := cm.Stats(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: toCRIContainerStats(snap, st)}, nil
}

// ListContainerStats reports the stats of the containers the filter selects.
func (s *Server) ListContainerStats(_ context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: listContainerStats(cm, req.GetFilter())}, nil
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *Server) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainerStatsResponse]) error {
	cm, err := s.containerManager()
	if err != nil {
		return err
	}
	all := listContainerStats(cm, req.GetFilter())
	for start := 0; start < len(all); start += streamChunk {
		msg := &runtimeapi.StreamContainerStatsResponse{ContainerStats: all[start:min(start+streamChunk, len(all))]}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func listContainerStats(cm Containers, f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	snaps, stats := cm.ListStats(container.Filter{ID: f.GetId(), PodID: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()})
	out := make([]*runtimeapi.ContainerStats, len(snaps))
	for i := range snaps {
		out[i] = toCRIContainerStats(snaps[i], stats[i])
	}
	return out
}

// PodSandboxStats sums a pod's containers and adds its network counters.
func (s *Server) PodSandboxStats(_ context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	sb, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: toCRIPodSandboxStats(sb, cm.PodStats)}, nil
}

// ListPodSandboxStats reports the pods the filter selects.
func (s *Server) ListPodSandboxStats(_ context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: s.listPodStats(cm, req.GetFilter())}, nil
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *Server) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxStatsResponse]) error {
	cm, err := s.containerManager()
	if err != nil {
		return err
	}
	all := s.listPodStats(cm, req.GetFilter())
	for start := 0; start < len(all); start += streamChunk {
		msg := &runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: all[start:min(start+streamChunk, len(all))]}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) listPodStats(cm Containers, f *runtimeapi.PodSandboxStatsFilter) []*runtimeapi.PodSandboxStats {
	pods := s.sandboxes.List(sandbox.Filter{ID: f.GetId(), LabelSelector: f.GetLabelSelector()})
	out := make([]*runtimeapi.PodSandboxStats, len(pods))
	// As ListContainerStats: the sampler's samples, and what it has not
	// sampled yet read on as many threads as Go runs.
	fanout.Do(len(pods), runtime.GOMAXPROCS(0), func(i int) { out[i] = toCRIPodSandboxStats(pods[i], cm.SampledPodStats) })
	return out
}

func toCRIPodSandboxStats(sb *sandbox.Sandbox, podStats func(podID string, podNetwork bool) *container.PodStats) *runtimeapi.PodSandboxStats {
	ps := podStats(sb.ID, sb.Namespaces[sandbox.NSNet] != "")
	// Pressure is the pod cgroup's own, not a sum of its containers'.
	ps.Total.Pressure = container.PodPressure(sb.Cgroup)
	ts := ps.Timestamp.UnixNano()
	lx := &runtimeapi.LinuxPodSandboxStats{
		Cpu:     toCRICPU(&ps.Total),
		Memory:  toCRIMemory(&ps.Total, nil),
		Io:      toCRIIO(&ps.Total),
		Process: &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: &runtimeapi.UInt64Value{Value: ps.Total.Pids}},
	}
	if n := ps.Network; n != nil {
		nu := &runtimeapi.NetworkUsage{Timestamp: n.Timestamp.UnixNano()}
		for i, ifc := range n.Interfaces {
			u := &runtimeapi.NetworkInterfaceUsage{
				Name:     ifc.Name,
				RxBytes:  &runtimeapi.UInt64Value{Value: ifc.RxBytes},
				RxErrors: &runtimeapi.UInt64Value{Value: ifc.RxErrors},
				TxBytes:  &runtimeapi.UInt64Value{Value: ifc.TxBytes},
				TxErrors: &runtimeapi.UInt64Value{Value: ifc.TxErrors},
			}
			if i == 0 {
				nu.DefaultInterface = u
			} else {
				nu.Interfaces = append(nu.Interfaces, u)
			}
		}
		lx.Network = nu
	}
	for i := range ps.Containers {
		lx.Containers = append(lx.Containers, toCRIContainerStats(ps.Containers[i], ps.Stats[i]))
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: sb.ID, Metadata: toCRIMetadata(sb.Config.Metadata),
			Labels: sb.Config.Labels, Annotations: sb.Config.Annotations,
		},
		Linux: lx,
	}
}

func toCRIContainerStats(snap *container.Snapshot, st *container.Stats) *runtimeapi.ContainerStats {
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: snap.ID, Metadata: toCRIContainerMetadata(snap),
			Labels: snap.Config.Labels, Annotations: snap.Config.Annotations,
		},
		Cpu:    toCRICPU(st),
		Memory: toCRIMemory(st, snap),
		Io:     toCRIIO(st),
		Swap:   toCRISwap(st),
	}
	w := st.WritableLayer
	if !w.Timestamp.IsZero() {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  w.Timestamp.UnixNano(),
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: w.Mountpoint},
			UsedBytes:  &runtimeapi.UInt64Value{Value: w.Bytes},
			InodesUsed: &runtimeapi.UInt64Value{Value: w.Inodes},
		}
	}
	return out
}

func toCRICPU(st *container.Stats) *runtimeapi.CpuUsage {
	cpu := &runtimeapi.CpuUsage{Timestamp: st.Timestamp.UnixNano()}
	if st.HasCgroup {
		cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: st.CPUUsageNanos}
		if st.CPUNanoCores != nil {
			cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: *st.CPUNanoCores}
		}
		if st.Pressure != nil {
			cpu.Psi = toCRIPSI(st.Pressure.CPU)
		}
	}
	return cpu
}

// toCRIIO is nil where there is nothing to say: the CRI's io usage holds
// only PSI.
func toCRIIO(st *container.Stats) *runtimeapi.IoUsage {
	if !st.HasCgroup || st.Pressure == nil || st.Pressure.IO == nil {
		return nil
	}
	return &runtimeapi.IoUsage{Timestamp: st.Timestamp.UnixNano(), Psi: toCRIPSI(st.Pressure.IO)}
}

// toCRIPSI keeps nil as nil: kubelet tells "no PSI" from zero stall time.
func toCRIPSI(p *container.PSI) *runtimeapi.PsiStats {
	if p == nil {
		return nil
	}
	data := func(d container.PSIData) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: d.Total, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	return &runtimeapi.PsiStats{Some: data(p.Some), Full: data(p.Full)}
}

// toCRISwap reports available bytes only under a swap limit, as cAdvisor
// does.
func toCRISwap(st *container.Stats) *runtimeapi.SwapUsage {
	if !st.HasCgroup || st.Swap == nil {
		return nil
	}
	sw := &runtimeapi.SwapUsage{Timestamp: st.Timestamp.UnixNano(), SwapUsageBytes: &runtimeapi.UInt64Value{Value: st.Swap.UsageBytes}}
	if l := st.Swap.LimitBytes; l > 0 {
		sw.SwapAvailableBytes = &runtimeapi.UInt64Value{Value: l - min(l, st.Swap.UsageBytes)}
	}
	return sw
}

// toCRIMemory fills available_bytes from the container's limit when it has
// one, as cAdvisor does.
func toCRIMemory(st *container.Stats, snap *container.Snapshot) *runtimeapi.MemoryUsage {
	mem := &runtimeapi.MemoryUsage{Timestamp: st.Timestamp.UnixNano()}
	if !st.HasCgroup {
		return mem
	}
	mem.WorkingSetBytes = &runtimeapi.UInt64Value{Value: st.MemoryWorkingSetBytes}
	mem.UsageBytes = &runtimeapi.UInt64Value{Value: st.MemoryUsageBytes}
	mem.RssBytes = &runtimeapi.UInt64Value{Value: st.MemoryRSSBytes}
	mem.PageFaults = &runtimeapi.UInt64Value{Value: st.PageFaults}
	mem.MajorPageFaults = &runtimeapi.UInt64Value{Value: st.MajorPageFaults}
	if st.Pressure != nil {
		mem.Psi = toCRIPSI(st.Pressure.Memory)
	}
	if snap != nil && snap.Resources != nil && snap.Resources.Memory != nil && snap.Resources.Memory.Limit != nil {
		if limit := uint64(*snap.Resources.Memory.Limit); limit > st.MemoryWorkingSetBytes {
			mem.AvailableBytes = &runtimeapi.UInt64Value{Value: limit - st.MemoryWorkingSetBytes}
		}
	}
	return mem
}
