package cri

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
)

// grpcCode maps an error to the gRPC code a client should act on. Errors that
// are already gRPC statuses keep their code. This is the one place the errdefs
// kinds meet gRPC: the packages below cri return errdefs errors only.
func grpcCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Code()
	}
	switch {
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, errdefs.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, errdefs.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrResourceExhausted):
		return codes.ResourceExhausted
	case errors.Is(err, errdefs.ErrUnimplemented):
		return codes.Unimplemented
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

// toGRPC converts err into a gRPC status error, keeping its message.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(grpcCode(err), err.Error())
}

// whatDidNotFit names, for an out-of-space error, what the RPC was writing.
func whatDidNotFit(method string, req any) string {
	switch r := req.(type) {
	case *runtimeapi.PullImageRequest:
		return fmt.Sprintf("%s: image %s", method, r.GetImage().GetImage())
	case *runtimeapi.CreateContainerRequest:
		return fmt.Sprintf("%s: container %q of pod %s", method, r.GetConfig().GetMetadata().GetName(), r.GetPodSandboxId())
	case *runtimeapi.RunPodSandboxRequest:
		m := r.GetConfig().GetMetadata()
		return fmt.Sprintf("%s: pod %s/%s", method, m.GetNamespace(), m.GetName())
	}
	return method
}
