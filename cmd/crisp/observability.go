package main

import (
	"context"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/internal/tracing"
	"github.com/crisp-runtime/crisp/sandbox"
)

// startTracing installs the OTLP exporter when tracing.endpoint is set;
// without it every span is OpenTelemetry's no-op.
func startTracing(cfg *config.Config) (stop func(), err error) {
	if cfg.Tracing.Endpoint == "" {
		return func() {}, nil
	}
	shutdown, err := tracing.Setup(context.Background(), cfg.Tracing.Endpoint, cfg.Tracing.SamplingRatio, version)
	if err != nil {
		return nil, err
	}
	klog.InfoS("Exporting traces", "endpoint", cfg.Tracing.Endpoint, "samplingRatio", cfg.Tracing.SamplingRatio)
	return func() {
		// The spans of the last requests, flushed if the collector answers soon.
		ctx, cancel := context.WithTimeout(context.Background(), timeouts.TraceFlush)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			klog.InfoS("Flushing traces at exit failed", "err", err)
		}
	}, nil
}

// startMetrics serves /metrics on metrics.address when it is set, with the
// pod, container, monitor and image store gauges read from the managers.
func startMetrics(cfg *config.Config, pods *sandbox.Manager, containers *container.Manager, images *image.Store) (stop func(), err error) {
	if cfg.Metrics.Address == "" {
		return func() {}, nil
	}
	err = metrics.RegisterSource(metrics.Source{
		Pods: func() map[string]int {
			n := map[string]int{}
			for _, s := range []sandbox.State{sandbox.StateCreating, sandbox.StateReady, sandbox.StateNotReady} {
				n[string(s)] = 0
			}
			for _, sb := range pods.List(sandbox.Filter{}) {
				n[string(sb.State)]++
			}
			return n
		},
		Containers: func() map[string]int {
			n := map[string]int{}
			for _, s := range []container.State{container.StateCreated, container.StateRunning, container.StateExited, container.StateUnknown} {
				n[s.String()] = 0
			}
			for _, c := range containers.List(container.Filter{}) {
				n[c.Status.State.String()]++
			}
			return n
		},
		Monitors: containers.Monitors,
		ImageStoreBytes: func() (uint64, error) {
			u, err := images.Usage()
			return u.UsedBytes, err
		},
	})
	if err != nil {
		return nil, err
	}
	_, stop, err = metrics.Serve(cfg.Metrics.Address)
	return stop, err
}
