package config

import (
	"flag"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2Gi": 2 << 30, "64Mi": 64 << 20, "1G": 1e9, "4096": 4096, "1.5Gi": 3 << 29} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "64m", "-1Gi", "0", "2GB", "lots", "1.5"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestWorkloadKeys(t *testing.T) {
	c := Default()
	if c.ShmSize != "64Mi" || len(c.DefaultUlimits) != 0 {
		t.Fatalf("defaults: shm_size %q default_ulimits %v", c.ShmSize, c.DefaultUlimits)
	}
	if err := c.decode([]byte("shm_size = \"pod-memory-limit\"\ndefault_ulimits = [\"memlock=-1:-1\", \"nofile=1048576:1048576\"]\n"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for toml, key := range map[string]string{
		`shm_size = "64m"`:                 "shm_size",
		`default_ulimits = ["memlock"]`:    "default_ulimits",
		`default_ulimits = ["nofile=9:1"]`: "default_ulimits",
	} {
		c := Default()
		if err := c.decode([]byte(toml), "test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v does not name %s", toml, err, key)
		}
	}
}

func TestWorkloadFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f := NewFlags(fs)
	p := writeFile(t, "shm_size = \"1Gi\"\ndefault_ulimits = [\"nofile=1:2\"]\n")
	if err := fs.Parse([]string{"--config", p, "--shm-size", "pod-memory-limit", "--default-ulimits", "memlock=-1:-1, nofile=1048576"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.ShmSize != ShmPodMemoryLimit || len(c.DefaultUlimits) != 2 || c.DefaultUlimits[1] != "nofile=1048576" {
		t.Errorf("flags must win over the file: shm_size %q default_ulimits %q", c.ShmSize, c.DefaultUlimits)
	}
}
