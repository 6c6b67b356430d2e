package cri

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
)

// streamChunk is how many pods one StreamPodSandboxes message carries: far
// below the message size limit even with large label sets.
const streamChunk = 100

// PodSandboxStatus answers from memory; kubelet polls it for every pod.
func (s *Server) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	// The timestamp and the pod's container statuses let kubelet's evented
	// PLEG take the whole pod from this one call, as containerd allows. The
	// time is taken before anything is read, so it never claims a state
	// newer than the one returned.
	now := time.Now()
	sb, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: toCRIPodSandboxStatus(sb), Timestamp: now.UnixNano()}
	if s.containers != nil {
		resp.ContainersStatuses = podContainerStatuses(s.containers, sb.ID)
	}
	if req.GetVerbose() {
		// The whole record: namespaces' pin files, reaper, cgroup, the CNI
		// result and the config, for crictl inspectp and debugging.
		info, err := json.Marshal(sb)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListPodSandbox answers from memory; kubelet calls it every second.
func (s *Server) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	pods := s.sandboxes.List(toSandboxFilter(req.GetFilter()))
	resp := &runtimeapi.ListPodSandboxResponse{Items: make([]*runtimeapi.PodSandbox, 0, len(pods))}
	for _, sb := range pods {
		resp.Items = append(resp.Items, toCRIPodSandbox(sb))
	}
	return resp, nil
}

// StreamPodSandboxes is ListPodSandbox in chunks, for nodes with more pods
// than one message holds.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxesResponse]) error {
	pods := s.sandboxes.List(toSandboxFilter(req.GetFilter()))
	for start := 0; start < len(pods); start += streamChunk {
		chunk := pods[start:min(start+streamChunk, len(pods))]
		msg := &runtimeapi.StreamPodSandboxesResponse{PodSandboxes: make([]*runtimeapi.PodSandbox, 0, len(chunk))}
		for _, sb := range chunk {
			msg.PodSandboxes = append(msg.PodSandboxes, toCRIPodSandbox(sb))
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// podContainerStatuses are the statuses of a pod's containers, newest
// first. kubelet's evented PLEG takes them from PodSandboxStatus unsorted
// and reads a container's latest attempt as the first one with its name:
// oldest first, a container restarted twice looked like its first dead
// attempt, and kubelet retried that attempt's successor, whose name the
// running container holds, forever (AlreadyExists).
func podContainerStatuses(cm Containers, podID string) []*runtimeapi.ContainerStatus {
	cs := cm.List(container.Filter{PodID: podID})
	slices.SortStableFunc(cs, func(a, b *container.Snapshot) int { return b.Status.CreatedAt.Compare(a.Status.CreatedAt) })
	out := make([]*runtimeapi.ContainerStatus, 0, len(cs))
	for _, c := range cs {
		out = append(out, toCRIContainerStatus(c))
	}
	return out
}
