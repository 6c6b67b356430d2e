package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "crisp.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMissingDefaultFileMeansDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.toml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "/run/crisp/crisp.sock" || c.Root != "/var/lib/crisp" || c.State != "/run/crisp" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.toml"), true); err == nil {
		t.Fatal("an explicitly requested missing file must be an error")
	}
}

func TestFileThenFlags(t *testing.T) {
	p := writeFile(t, `
root = "/srv/crisp"
cgroup_driver = "systemd"
[cni]
conf_dir = "/etc/other"
[registries."registry.k8s.io"]
mirrors = ["http://127.0.0.1:5000"]
`)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f := NewFlags(fs)
	if err := fs.Parse([]string{"--config", p, "--root", "/tmp/r", "--registry-mirror", "gcr.io=http://127.0.0.1:5000"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != "/tmp/r" {
		t.Errorf("flag must win over file: root=%q", c.Root)
	}
	if c.CgroupDriver != "systemd" || c.CNI.ConfDir != "/etc/other" {
		t.Errorf("file values lost: %+v", c)
	}
	if got := c.Registries["registry.k8s.io"].Mirrors; len(got) != 1 || got[0] != "http://127.0.0.1:5000" {
		t.Errorf("file mirrors: %v", got)
	}
	if got := c.Registries["gcr.io"].Mirrors; len(got) != 1 {
		t.Errorf("flag mirrors: %v", got)
	}
	if len(c.CNI.BinDirs) != 2 {
		t.Errorf("default bin dirs lost: %v", c.CNI.BinDirs)
	}
}

func TestRejectsUnknownAndInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ body, wantKey string }{
		"unknown top":     {"colour = 1\n", "colour"},
		"unknown nested":  {"[cni]\nconfdir = \"/x\"\n", "cni.confdir"},
		"relative root":   {"root = \"rel\"\n", "root"},
		"bad driver":      {"cgroup_driver = \"lxc\"\n", "cgroup_driver"},
		"bad port":        {"[streaming]\nport = 70000\n", "streaming.port"},
		"bad mirror":      {"[registries.\"docker.io\"]\nmirrors = [\"ftp://x\"]\n", "mirrors[0]"},
		"wrong type":      {"root = 5\n", "root"},
		"bad downloads":   {"max_concurrent_downloads = 0\n", "max_concurrent_downloads"},
		"bad progress":    {"image_pull_progress_timeout = \"-1s\"\n", "image_pull_progress_timeout"},
		"bad bin dir":     {"[cni]\nbin_dirs = [\"x\"]\n", "cni.bin_dirs[0]"},
		"bad registry ca": {"[registries.\"docker.io\"]\nca_file = \"x.pem\"\n", "ca_file"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(writeFile(t, tc.body), true)
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("want an error naming %q, got %v", tc.wantKey, err)
			}
		})
	}
}

func TestTOMLRoundTrip(t *testing.T) {
	c := Default()
	c.Registries["docker.io"] = Registry{Mirrors: []string{"http://127.0.0.1:5000"}}
	s, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(writeFile(t, s), true)
	if err != nil {
		t.Fatalf("printed config does not load back: %v\n%s", err, s)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("crisp config's output loads as\n%+v\nnot\n%+v\n%s", back, c, s)
	}
}

func TestRegistryFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f := NewFlags(fs)
	if err := fs.Parse([]string{"--config", writeFile(t, ""),
		"--registry-mirror", "gcr.io=http://127.0.0.1:5000", "--registry-mirror", "gcr.io=https://m2.example",
		"--registry-insecure", "10.0.0.1:5000", "--registry-skip-upstream", "gcr.io",
		"--registry-ca-file", "gcr.io=/etc/ssl/mirror.pem"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	g := c.Registries["gcr.io"]
	if len(g.Mirrors) != 2 || !g.SkipUpstream || g.CAFile != "/etc/ssl/mirror.pem" || g.Insecure {
		t.Errorf("gcr.io: %+v", g)
	}
	if !c.Registries["10.0.0.1:5000"].Insecure {
		t.Errorf("insecure host: %+v", c.Registries["10.0.0.1:5000"])
	}
	for _, args := range [][]string{
		{"--registry-insecure", "gcr.io=true"},
		{"--registry-mirror", "gcr.io"},
		{"--registry-ca-file", "=x"},
		{"--registry-ca-file", "gcr.io=relative.pem"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := NewFlags(fs)
		if err := fs.Parse(append([]string{"--config", writeFile(t, "")}, args...)); err != nil {
			t.Fatal(err)
		}
		// Either the flag ("--registry-...") or the key ("registries.") is named.
		if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "regist") {
			t.Errorf("%v: want an error naming the flag or key, got %v", args, err)
		}
	}
}
