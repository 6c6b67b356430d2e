package config

import (
	"strings"
	"testing"
	"time"
)

func TestStreamingKeys(t *testing.T) {
	c, err := Load(writeFile(t, "[streaming]\nidle_timeout = \"90m\"\ncreation_timeout = \"5s\"\nmax_streams = 7\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := c.Streaming; s.IdleTimeout != 90*time.Minute || s.CreationTimeout != 5*time.Second || s.MaxStreams != 7 || s.Address != "127.0.0.1" {
		t.Fatalf("streaming: %+v", s)
	}
	// Durations must survive `crisp config` output read back as a file.
	out, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(writeFile(t, out), true)
	if err != nil {
		t.Fatal(err)
	}
	if back.Streaming != c.Streaming {
		t.Fatalf("round trip: %+v != %+v", back.Streaming, c.Streaming)
	}

	for name, tc := range map[string]struct{ body, key string }{
		"hostname":     {"[streaming]\naddress = \"localhost\"\n", "streaming.address"},
		"empty":        {"[streaming]\naddress = \"\"\n", "streaming.address"},
		"cert alone":   {"[streaming]\ntls_cert_file = \"/c.pem\"\n", "streaming.tls_cert_file"},
		"relative key": {"[streaming]\ntls_cert_file = \"/c.pem\"\ntls_key_file = \"k.pem\"\n", "streaming.tls_key_file"},
		"zero idle":    {"[streaming]\nidle_timeout = \"0s\"\n", "streaming.idle_timeout"},
		"no streams":   {"[streaming]\nmax_streams = 0\n", "streaming.max_streams"},
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
