package cri

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crisp-runtime/crisp/errdefs"
)

func TestGRPCCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{errdefs.InvalidArgument("x"), codes.InvalidArgument},
		{errdefs.NotFound("x"), codes.NotFound},
		{errdefs.FailedPrecondition("x"), codes.FailedPrecondition},
		{fmt.Errorf("a: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{fmt.Errorf("a: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("a: %w", errdefs.ErrResourceExhausted), codes.ResourceExhausted},
		{fmt.Errorf("a: %w", errdefs.ErrUnimplemented), codes.Unimplemented},
		{fmt.Errorf("a: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("a: %w", context.Canceled), codes.Canceled},
		{status.Error(codes.Aborted, "x"), codes.Aborted},
		{fmt.Errorf("plain"), codes.Unknown},
	} {
		if got := grpcCode(tc.err); got != tc.want {
			t.Errorf("grpcCode(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if got := status.Code(toGRPC(tc.err)); got != tc.want {
			t.Errorf("toGRPC(%v) has code %v, want %v", tc.err, got, tc.want)
		}
	}
}
