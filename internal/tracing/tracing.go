// Package tracing gives crisp's packages OpenTelemetry spans that cost
// nothing until Setup installs an exporter: before that the global tracer
// provider and propagator are OpenTelemetry's no-ops, so Start returns a
// non-recording span and the CRI interceptor extracts no trace context.
//
// Like package metrics it is a leaf: the CRI interceptor makes one server
// span per request, continuing kubelet's trace (W3C traceparent in the gRPC
// metadata), and the packages below add child spans for the steps that take
// time (a layer's download and unpack, CNI ADD and DEL, a monitor's create,
// NRI hooks) through the request's context.
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// enabled is set once Setup installed an exporter.
var enabled atomic.Bool

// Enabled reports whether spans are exported; callers skip building
// attributes nobody would see.
func Enabled() bool { return enabled.Load() }

// tracer follows the global provider, so spans started through it begin
// recording once Setup has run.
var tracer = otel.Tracer("github.com/crisp-runtime/crisp")

// Start begins a child span of whatever span ctx carries.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartServer begins the span of a request crisp serves.
func StartServer(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// End ends span, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Fail marks the span ctx carries as failed when err is not nil, for the
// calls whose failure is logged and not returned.
func Fail(ctx context.Context, err error) {
	if err != nil {
		trace.SpanFromContext(ctx).SetStatus(codes.Error, err.Error())
	}
}

// Extract returns ctx with the remote span context carrier holds, if any.
func Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, carrier)
}

// Setup exports spans over OTLP/gRPC to endpoint ("http://host:port" in
// plain text, "https://host:port" over TLS), sampling ratio of the traces
// that start here; a trace kubelet started keeps kubelet's decision. The
// returned func flushes what is buffered and stops exporting.
func Setup(ctx context.Context, endpoint string, ratio float64, version string) (shutdown func(context.Context) error, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: endpoint must be an http:// or https:// URL, got %q", endpoint)
	}
	// The exporter connects lazily: an absent collector costs dropped
	// spans, never a failed start.
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "crisp"),
			attribute.String("service.version", version),
		)),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	enabled.Store(true)
	return tp.Shutdown, nil
}
