package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates a container in a ready pod. The request's copy of
// the sandbox config is ignored: the pod's own record is authoritative.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	cfg, err := toContainerConfig(req.GetConfig())
	if err != nil {
		return nil, err
	}
	id, err := cm.Create(ctx, req.GetPodSandboxId(), cfg)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	if err := cm.Start(ctx, req.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer gives the container timeout seconds after its stop signal;
// it is idempotent.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	if err := cm.Stop(ctx, req.GetContainerId(), time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer stops the container if needed; an unknown one is removed.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	cm, err := s.containerManager()
	if err != nil {
		return nil, err
	}
	if err := cm.Remove(ctx, req.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}
