package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	runtimeName = "crisp"
	// apiVersion is the CRI version kubelet checks before using the runtime.
	apiVersion = "v1"
	// kubeAPIVersion is the legacy field kubelet still logs.
	kubeAPIVersion = "0.1.0"
)

// Version answers kubelet's first call; runtime_api_version must be "v1".
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    s.version,
		RuntimeApiVersion: apiVersion,
	}, nil
}
