package config

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// CDI configures Container Device Interface devices: the directories of
// the vendors' spec files. The keys and defaults are containerd's
// (enable_cdi, cdi_spec_dirs) and CRI-O's; later directories win over
// earlier ones for a device defined in both.
type CDI struct {
	Enable   bool     `toml:"enable"`
	SpecDirs []string `toml:"spec_dirs"`
}

func defaultCDI() CDI {
	return CDI{Enable: true, SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}}
}

func (c *CDI) validate() error {
	for i, d := range c.SpecDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("config: cdi.spec_dirs[%d] must be an absolute path, got %q", i, d)
		}
	}
	return nil
}

// The CDI flags join the table in flags.go from here, so that the keys of
// this section stay in one file.
func init() {
	flagSetters = append(flagSetters,
		flagSetter{"cdi-enable", "inject CDI devices that containers request (key cdi.enable)", func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("--cdi-enable: %q is not true or false", v)
			}
			c.CDI.Enable = b
			return nil
		}},
		flagSetter{"cdi-spec-dirs", "comma-separated directories of CDI spec files (key cdi.spec_dirs)", func(c *Config, v string) error { c.CDI.SpecDirs = splitList(v); return nil }},
	)
	boolFlags["cdi-enable"] = true
}
