package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestNRIKeys(t *testing.T) {
	d := Default().NRI
	if d.Enable || d.SocketPath != "/var/run/nri/nri.sock" || d.PluginRequestTimeout != 2*time.Second {
		t.Fatalf("defaults: %+v", d)
	}
	c, err := Load(writeFile(t, "[nri]\nenable = true\nsocket_path = \"/run/x/nri.sock\"\nplugin_request_timeout = \"7s\"\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := c.NRI; !n.Enable || n.SocketPath != "/run/x/nri.sock" || n.PluginRequestTimeout != 7*time.Second || n.PluginPath != "/opt/nri/plugins" {
		t.Fatalf("nri: %+v", n)
	}

	for name, tc := range map[string]struct{ body, key string }{
		"relative socket":  {"[nri]\nsocket_path = \"nri.sock\"\n", "nri.socket_path"},
		"relative plugins": {"[nri]\nplugin_path = \"plugins\"\n", "nri.plugin_path"},
		"zero request":     {"[nri]\nplugin_request_timeout = \"0s\"\n", "nri.plugin_request_timeout"},
		"negative reg":     {"[nri]\nplugin_registration_timeout = \"-1s\"\n", "nri.plugin_registration_timeout"},
		"unknown key":      {"[nri]\ndisable = true\n", "nri.disable"},
	} {
		c, err := Load(writeFile(t, tc.body), true)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: want an error naming %s, got %v", name, tc.key, err)
		}
	}
}

func TestNRIFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args    []string
		enabled bool
		wantErr string
	}{
		"bare":    {args: []string{"--nri-enable"}, enabled: true},
		"false":   {args: []string{"--nri-enable=false"}},
		"garbage": {args: []string{"--nri-enable=maybe"}, wantErr: "--nri-enable"},
		"timeout": {args: []string{"--nri-plugin-request-timeout=soon"}, wantErr: "--nri-plugin-request-timeout"},
	} {
		fs := flag.NewFlagSet("crisp", flag.ContinueOnError)
		f := NewFlags(fs)
		args := append([]string{"--config", writeFile(t, "")}, tc.args...)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, err := f.Load()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: want an error naming %s, got %v", name, tc.wantErr, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.NRI.Enable != tc.enabled {
			t.Errorf("%s: enable = %v", name, c.NRI.Enable)
		}
	}
}
