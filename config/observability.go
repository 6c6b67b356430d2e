package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Address is host:port to serve /metrics on; empty serves none.
	Address string `toml:"address"`
}

// Tracing configures the OpenTelemetry exporter.
type Tracing struct {
	// Endpoint is an OTLP/gRPC collector, http://host:port (plain) or
	// https://host:port (TLS); empty exports nothing.
	Endpoint string `toml:"endpoint"`
	// SamplingRatio of the traces that begin at crisp; a request that
	// carries kubelet's trace context follows kubelet's decision.
	SamplingRatio float64 `toml:"sampling_ratio"`
}

func defaultTracing() Tracing { return Tracing{SamplingRatio: 1} }

func (m *Metrics) validate() error {
	if m.Address == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(m.Address); err != nil || port == "" {
		return fmt.Errorf("config: metrics.address must be host:port such as 127.0.0.1:9090, got %q", m.Address)
	}
	return nil
}

func (t *Tracing) validate() error {
	if t.SamplingRatio < 0 || t.SamplingRatio > 1 {
		return fmt.Errorf("config: tracing.sampling_ratio must be between 0 and 1, got %v", t.SamplingRatio)
	}
	if t.Endpoint == "" {
		return nil
	}
	if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: tracing.endpoint must be an http:// or https:// URL of an OTLP/gRPC collector such as http://127.0.0.1:4317, got %q", t.Endpoint)
	}
	return nil
}

func parseRatio(flag, v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("--%s: %q is not a number", flag, v)
	}
	return f, nil
}
