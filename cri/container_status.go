package cri

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus answers from memory; kubelet polls it for every container.
// Verbose adds crisp's record (process, resources, rootfs, layers) as JSON
// for crictl inspect.
func (s *Server) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	snap, err := cm.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: toCRIContainerStatus(snap)}
	if req.GetVerbose() {
		info, err := json.Marshal(map[string]any{
			"sandboxID":   snap.PodID,
			"pid":         snap.Status.Pid,
			"runtimeType": "crisp-monitor (libcontainer)",
			"record":      snap.Container,
		})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListContainers answers from memory; kubelet calls it every second.
func (s *Server) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	list := cm.List(toContainerFilter(req.GetFilter()))
	resp := &runtimeapi.ListContainersResponse{Containers: make([]*runtimeapi.Container, 0, len(list))}
	for _, c := range list {
		resp.Containers = append(resp.Containers, toCRIContainer(c))
	}
	return resp, nil
}

// StreamContainers is ListContainers in chunks, for nodes with more
// containers than one message holds.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainersResponse]) error {
	cm, err := s.containerManager()
	if err != nil {
		return err
	}
	list := cm.List(toContainerFilter(req.GetFilter()))
	for start := 0; start < len(list); start += streamChunk {
		chunk := list[start:min(start+streamChunk, len(list))]
		msg := &runtimeapi.StreamContainersResponse{Containers: make([]*runtimeapi.Container, 0, len(chunk))}
		for _, c := range chunk {
			msg.Containers = append(msg.Containers, toCRIContainer(c))
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}
