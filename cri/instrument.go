package cri

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/phase"
	"github.com/crisp-runtime/crisp/internal/tracing"
)

// Interceptors return the gRPC options that give every RPC the same logging,
// metrics, trace span, panic recovery and error-to-code mapping, so handlers
// only translate.
func Interceptors() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unaryInstrument),
		grpc.ChainStreamInterceptor(streamInstrument),
	}
}

func unaryInstrument(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	method := shortMethod(info.FullMethod)
	// The handler and the managers it calls log through this logger where
	// they have the ctx (klog.FromContext), so those lines name the RPC and
	// the objects it is about.
	ids := requestIDs(req)
	logger := klog.FromContext(ctx).WithValues(append([]any{"method", method}, ids...)...)
	ctx, span := startSpan(ctx, info.FullMethod, ids)
	ctx = klog.NewContext(ctx, logger)
	var pt *phase.Timer
	if phased[method] && phase.Enabled(logger) {
		pt = phase.Start()
		ctx = phase.With(ctx, pt)
	}
	defer func() {
		if r := recover(); r != nil {
			logger.Error(fmt.Errorf("panic: %v", r), "RPC handler panicked", "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		err = toStatus(ctx, errdefs.NoSpace(whatDidNotFit(method, req), err))
		pt.Mark("rest")
		pt.Log(logger)
		finish(span, logger, method, start, err)
	}()
	return handler(ctx, req)
}

// phased are the RPCs of the start path whose steps (internal/phase) are
// logged at -v=4.
var phased = map[string]bool{"RunPodSandbox": true, "CreateContainer": true, "StartContainer": true, "ExecSync": true}

func streamInstrument(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	method := shortMethod(info.FullMethod)
	logger := klog.FromContext(ss.Context()).WithValues("method", method)
	ctx, span := startSpan(ss.Context(), info.FullMethod, nil)
	defer func() {
		if r := recover(); r != nil {
			logger.Error(fmt.Errorf("panic: %v", r), "RPC handler panicked", "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		err = toStatus(ss.Context(), err)
		finish(span, logger, method, start, err)
	}()
	return handler(srv, &loggedStream{ServerStream: ss, ctx: klog.NewContext(ctx, logger)})
}

// startSpan begins the request's span as a child of the caller's, when the
// gRPC metadata carries a W3C traceparent (kubelet's does when it traces).
// With tracing off the propagator and tracer are no-ops.
func startSpan(ctx context.Context, fullMethod string, ids []any) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, trace.SpanFromContext(context.Background()) // a no-op span: nothing to build
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = tracing.Extract(ctx, metadataCarrier(md))
	}
	name := strings.TrimPrefix(fullMethod, "/")
	service, method, _ := strings.Cut(name, "/")
	attrs := []attribute.KeyValue{
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method),
	}
	for i := 0; i+1 < len(ids); i += 2 {
		attrs = append(attrs, attribute.String("crisp."+fmt.Sprint(ids[i]), fmt.Sprint(ids[i+1])))
	}
	return tracing.StartServer(ctx, name, attrs...)
}

// finish records the answered request in the log, the metrics and its span.
func finish(span trace.Span, logger klog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	metrics.CRIRequest(method, code.String(), time.Since(start))
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	tracing.End(span, err)
	logRPC(logger, method, start, err)
}

// metadataCarrier lets the propagator read gRPC metadata, whose keys are
// lower case as traceparent is.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// loggedStream hands a stream's handler the context with the RPC's logger.
type loggedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *loggedStream) Context() context.Context { return s.ctx }

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

func logRPC(logger klog.Logger, method string, start time.Time, err error) {
	d := time.Since(start)
	if err != nil {
		// NotFound is routine for status polls of objects kubelet already removed.
		if c := status.Code(err); c == codes.NotFound || c == codes.Unimplemented {
			logger.V(2).Info("RPC failed", "duration", d, "err", err)
			return
		}
		logger.Error(err, "RPC failed", "duration", d)
		return
	}
	// Polling calls would drown everything else at -v=2.
	if isPoll(method) {
		logger.V(4).Info("RPC done", "duration", d)
		return
	}
	logger.V(2).Info("RPC done", "duration", d)
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

// requestIDs names the objects a request is about, as key/value pairs for
// the RPC's logger.
func requestIDs(req any) []any {
	var kv []any
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		kv = append(kv, "pod", truncate(r.GetPodSandboxId(), 200))
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		kv = append(kv, "container", truncate(r.GetContainerId(), 200))
	}
	if r, ok := req.(interface{ GetImage() *runtimeapi.ImageSpec }); ok && r.GetImage() != nil {
		kv = append(kv, "image", truncate(r.GetImage().GetImage(), 200))
	}
	return kv
}

// truncate keeps hostile or absurd values from flooding the log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
