package cri

import (
	"context"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Interceptors return the gRPC options that give every RPC the same logging,
// panic recovery and error-to-code mapping, so handlers only translate.
func Interceptors() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unaryInstrument),
		grpc.ChainStreamInterceptor(streamInstrument),
	}
}

func unaryInstrument(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	method := shortMethod(info.FullMethod)
	defer func() {
		if r := recover(); r != nil {
			klog.Errorf("panic in %s (%s): %v\n%s", method, requestIDs(req), r, debug.Stack())
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		err = toStatus(ctx, err)
		logRPC(method, req, start, err)
	}()
	return handler(ctx, req)
}

func streamInstrument(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	method := shortMethod(info.FullMethod)
	defer func() {
		if r := recover(); r != nil {
			klog.Errorf("panic in %s: %v\n%s", method, r, debug.Stack())
			err = status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		err = toStatus(ss.Context(), err)
		logRPC(method, nil, start, err)
	}()
	return handler(srv, ss)
}

// toStatus maps package errors to gRPC codes. A handler that failed because the
// client's deadline passed reports DeadlineExceeded, whatever layer noticed it.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() == context.DeadlineExceeded && grpcCode(err) != codes.DeadlineExceeded {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return toGRPC(err)
}

func logRPC(method string, req any, start time.Time, err error) {
	d := time.Since(start)
	if err != nil {
		// NotFound is routine for status polls of objects kubelet already removed.
		if c := status.Code(err); c == codes.NotFound || c == codes.Unimplemented {
			klog.V(2).Infof("%s %s failed after %v: %v", method, requestIDs(req), d, err)
			return
		}
		klog.Errorf("%s %s failed after %v: %v", method, requestIDs(req), d, err)
		return
	}
	if v := klog.V(2); v.Enabled() {
		// Polling calls would drown everything else at -v=2.
		if isPoll(method) {
			klog.V(4).Infof("%s %s done in %v", method, requestIDs(req), d)
			return
		}
		v.Infof("%s %s done in %v", method, requestIDs(req), d)
	}
}

func isPoll(method string) bool {
	switch method {
	case "ListPodSandbox", "ListContainers", "ListImages", "ImageFsInfo", "Status", "Version",
		"ListContainerStats", "ListPodSandboxStats", "ContainerStats", "PodSandboxStats":
		return true
	}
	return false
}

func shortMethod(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[i+1:]
	}
	return full
}

// requestIDs names the objects a request is about, for log lines.
func requestIDs(req any) string {
	var parts []string
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		parts = append(parts, "pod="+r.GetPodSandboxId())
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		parts = append(parts, "container="+r.GetContainerId())
	}
	if r, ok := req.(interface{ GetImage() *runtimeapi.ImageSpec }); ok && r.GetImage() != nil {
		parts = append(parts, "image="+truncate(r.GetImage().GetImage(), 200))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// truncate keeps hostile or absurd values from flooding the log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
