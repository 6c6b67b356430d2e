package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/metrics"
)

func TestUnaryInstrumentMapsErrorsAndRecovers(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ContainerStatus"}
	req := &runtimeapi.ContainerStatusRequest{ContainerId: "abc"}
	for name, tc := range map[string]struct {
		handler grpc.UnaryHandler
		code    codes.Code
		message string
	}{
		"ok": {func(context.Context, any) (any, error) { return "resp", nil }, codes.OK, ""},
		"not found": {func(context.Context, any) (any, error) {
			return nil, errdefs.NotFound("container %q", "abc")
		}, codes.NotFound, `container "abc"`},
		"invalid": {func(context.Context, any) (any, error) {
			return nil, fmt.Errorf("create: %w", errdefs.InvalidArgument("config.metadata.name is required"))
		}, codes.InvalidArgument, "config.metadata.name"},
		"status kept": {func(context.Context, any) (any, error) {
			return nil, status.Error(codes.ResourceExhausted, "too many")
		}, codes.ResourceExhausted, "too many"},
		"plain error": {func(context.Context, any) (any, error) { return nil, errors.New("disk on fire") }, codes.Unknown, "disk on fire"},
		"panic": {func(context.Context, any) (any, error) {
			var m map[string]int
			m["x"]++
			return nil, nil
		}, codes.Internal, "ContainerStatus"},
	} {
		t.Run(name, func(t *testing.T) {
			// Counted under the code the client sees, panics included.
			before := metrics.Read("crisp_cri_requests_total", "method", "ContainerStatus", "code", tc.code.String())
			_, err := unaryInstrument(context.Background(), req, info, tc.handler)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code %v, want %v (err %v)", got, tc.code, err)
			}
			if n := metrics.Read("crisp_cri_requests_total", "method", "ContainerStatus", "code", tc.code.String()) - before; n != 1 {
				t.Errorf("counted %v requests with code %v, want 1", n, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("message %q lacks %q", err, tc.message)
			}
		})
	}
}

func TestUnaryInstrumentReportsDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.ImageService/PullImage"}
	_, err := unaryInstrument(ctx, &runtimeapi.PullImageRequest{}, info, func(ctx context.Context, _ any) (any, error) {
		return nil, fmt.Errorf("fetch layer: %w", ctx.Err())
	})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
}

func TestRequestIDsTruncatesHugeValues(t *testing.T) {
	kv := requestIDs(&runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: strings.Repeat("a", 10000)}})
	if len(kv) != 2 || len(kv[1].(string)) > 300 {
		t.Fatalf("log field not bounded: %d values, %d bytes", len(kv), len(fmt.Sprint(kv...)))
	}
	if got := fmt.Sprint(requestIDs(&runtimeapi.StopContainerRequest{ContainerId: "c1"})); got != "[container c1]" {
		t.Fatalf("ids = %q", got)
	}
}
