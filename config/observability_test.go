package config

import (
	"flag"
	"strings"
	"testing"
)

func TestMetricsAndTracingOffByDefault(t *testing.T) {
	c := Default()
	if c.Metrics.Address != "" || c.Tracing.Endpoint != "" {
		t.Fatalf("metrics and tracing must be off by default: %+v %+v", c.Metrics, c.Tracing)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsAndTracingKeysAndFlags(t *testing.T) {
	p := writeFile(t, "[metrics]\naddress = \"127.0.0.1:9090\"\n[tracing]\nendpoint = \"http://127.0.0.1:4317\"\n")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f := NewFlags(fs)
	if err := fs.Parse([]string{"--config", p, "--tracing-sampling-ratio", "0.25"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Address != "127.0.0.1:9090" || c.Tracing.Endpoint != "http://127.0.0.1:4317" || c.Tracing.SamplingRatio != 0.25 {
		t.Fatalf("got %+v %+v", c.Metrics, c.Tracing)
	}
}

func TestMetricsAndTracingBadValuesNameTheKey(t *testing.T) {
	for _, tc := range []struct{ body, key string }{
		{"[metrics]\naddress = \"9090\"", "metrics.address"},
		{"[tracing]\nendpoint = \"127.0.0.1:4317\"", "tracing.endpoint"},
		{"[tracing]\nsampling_ratio = 2.0", "tracing.sampling_ratio"},
	} {
		c, err := Load(writeFile(t, tc.body), true)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: want an error naming %s, got %v", tc.body, tc.key, err)
		}
	}
}
