package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
)

// Streaming hands out the one-time URLs of exec, attach and port-forward
// sessions; the sessions themselves run on the streaming server, not over
// gRPC.
type Streaming interface {
	GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// Exec validates the request here, where the CRI's rules are known, and
// leaves the container's existence and state to the streaming server,
// which resolves it for the session.
func (s *Server) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 || req.GetCmd()[0] == "" {
		return nil, errdefs.InvalidArgument("cmd is required")
	}
	if err := validateStreams(req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	if s.streaming == nil {
		return nil, fmt.Errorf("Exec: %w", errdefs.ErrUnimplemented)
	}
	return s.streaming.GetExec(req)
}

// Attach is Exec for the container's main process.
func (s *Server) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := validateStreams(req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	if s.streaming == nil {
		return nil, fmt.Errorf("Attach: %w", errdefs.ErrUnimplemented)
	}
	return s.streaming.GetAttach(req)
}

// PortForward checks the ports and lets the streaming server check the pod.
// An empty port list is valid: SPDY clients name ports per connection.
func (s *Server) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, errdefs.InvalidArgument("port %d out of range 1-65535", p)
		}
	}
	if s.streaming == nil {
		return nil, fmt.Errorf("PortForward: %w", errdefs.ErrUnimplemented)
	}
	return s.streaming.GetPortForward(req)
}

// validateStreams applies the CRI's rules shared by Exec and Attach.
func validateStreams(tty, stdin, stdout, stderr bool) error {
	if !stdin && !stdout && !stderr {
		return errdefs.InvalidArgument("one of stdin, stdout and stderr is required")
	}
	if tty && stderr {
		// A terminal has one output: stderr cannot be told apart.
		return errdefs.InvalidArgument("tty and stderr cannot both be set")
	}
	return nil
}
