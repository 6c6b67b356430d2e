package cri

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/config"
)

// What crictl info shows as "config" is the file's own keys and values: the
// JSON turned into TOML loads back as the running configuration.
func TestStatusInfoConfigPastesBack(t *testing.T) {
	cfg := config.Default()
	cfg.Streaming.IdleTimeout = 90 * time.Minute
	cfg.Registries["docker.io"] = config.Registry{Mirrors: []string{"http://127.0.0.1:5000"}, SkipUpstream: true}
	s := New(Deps{Config: cfg})
	resp, err := s.Status(t.Context(), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(resp.Info["config"])))
	dec.UseNumber()
	var shown map[string]any
	if err := dec.Decode(&shown); err != nil {
		t.Fatalf("info config is not a JSON object: %v\n%s", err, resp.Info["config"])
	}
	streaming, _ := shown["streaming"].(map[string]any)
	if got := streaming["idle_timeout"]; got != "1h30m0s" {
		t.Errorf("streaming.idle_timeout shows as %#v, want \"1h30m0s\"", got)
	}
	var file bytes.Buffer
	if err := toml.NewEncoder(&file).Encode(tomlNumbers(shown)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "crisp.toml")
	if err := os.WriteFile(p, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := config.Load(p, true)
	if err != nil {
		t.Fatalf("crictl info's config does not load as a file: %v\n%s", err, file.String())
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("crictl info's config loads as\n%+v\nnot the running\n%+v", back, cfg)
	}
}

// tomlNumbers turns JSON numbers back into TOML integers.
func tomlNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = tomlNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = tomlNumbers(e)
		}
	}
	return v
}
