package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
)

// RunPodSandbox creates a pod's namespaces, network and files.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	// crisp has one runtime, the default handler "" (Status advertises
	// only that one); kubelet reports a RuntimeClass naming another.
	if h := req.GetRuntimeHandler(); h != "" {
		return nil, errdefs.InvalidArgument("runtime handler %q not supported", h)
	}
	cfg, err := toSandboxConfig(req.GetConfig())
	if err != nil {
		return nil, err
	}
	id, err := s.sandboxes.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// StopPodSandbox is idempotent; an unknown pod is already stopped.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.sandboxes.Stop(ctx, req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox stops the pod first if needed; an unknown pod is removed.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if err := s.sandboxes.Remove(ctx, req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// UpdatePodSandboxResources validates and records pod-level resources.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	err := s.sandboxes.UpdateResources(ctx, req.GetPodSandboxId(),
		toSandboxResources(req.GetOverhead()), toSandboxResources(req.GetResources()))
	if err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
