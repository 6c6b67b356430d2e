package config

import (
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestCDIKeys(t *testing.T) {
	d := Default().CDI
	if !d.Enable || !slices.Equal(d.SpecDirs, []string{"/etc/cdi", "/var/run/cdi"}) {
		t.Fatalf("defaults: %+v", d)
	}
	c, err := Load(writeFile(t, "[cdi]\nenable = false\nspec_dirs = [\"/srv/cdi\"]\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.CDI.Enable || !slices.Equal(c.CDI.SpecDirs, []string{"/srv/cdi"}) {
		t.Fatalf("cdi: %+v", c.CDI)
	}
	// What crisp config prints reads back the same.
	text, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "[cdi]") || !strings.Contains(text, "/srv/cdi") {
		t.Errorf("crisp config output lacks the cdi section:\n%s", text)
	}

	for name, tc := range map[string]struct{ body, key string }{
		"relative dir": {"[cdi]\nspec_dirs = [\"/etc/cdi\", \"cdi\"]\n", "cdi.spec_dirs[1]"},
		"unknown key":  {"[cdi]\nspec_dir = \"/etc/cdi\"\n", "cdi.spec_dir"},
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

func TestCDIFlags(t *testing.T) {
	fs := flag.NewFlagSet("crisp", flag.ContinueOnError)
	f := NewFlags(fs)
	if err := fs.Parse([]string{"--config", writeFile(t, ""), "--cdi-enable=false", "--cdi-spec-dirs", "/a, /b"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.CDI.Enable || !slices.Equal(c.CDI.SpecDirs, []string{"/a", "/b"}) {
		t.Fatalf("cdi: %+v", c.CDI)
	}

	fs = flag.NewFlagSet("crisp", flag.ContinueOnError)
	f = NewFlags(fs)
	if err := fs.Parse([]string{"--config", writeFile(t, ""), "--cdi-enable=perhaps"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "--cdi-enable") {
		t.Fatalf("want an error naming --cdi-enable, got %v", err)
	}
}
