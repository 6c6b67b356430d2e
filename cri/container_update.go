package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateContainerResources applies new limits to a created or running
// container (kubelet's in-place resize).
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	if err := cm.UpdateResources(ctx, req.GetContainerId(), toContainerResources(req.GetLinux())); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog makes a running container write to a fresh log file
// after kubelet rotated the old one.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	if err := cm.ReopenLog(ctx, req.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
