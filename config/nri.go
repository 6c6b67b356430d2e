package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// NRI configures the Node Resource Interface: plugins that see every pod and
// container lifecycle event and may adjust containers. The keys and defaults
// are containerd's.
type NRI struct {
	Enable bool `toml:"enable"`
	// SocketPath is where external plugins connect.
	SocketPath string `toml:"socket_path"`
	// PluginPath holds plugins crisp starts itself, named NN-name.
	PluginPath string `toml:"plugin_path"`
	// PluginConfigPath holds those plugins' configuration (NN-name.conf or name.conf).
	PluginConfigPath string `toml:"plugin_config_path"`
	// PluginRegistrationTimeout bounds a plugin's registration and its
	// first Synchronize.
	PluginRegistrationTimeout time.Duration `toml:"plugin_registration_timeout"`
	// PluginRequestTimeout bounds each event a plugin handles; a plugin that
	// does not answer in time is disconnected.
	PluginRequestTimeout time.Duration `toml:"plugin_request_timeout"`
}

func defaultNRI() NRI {
	return NRI{
		SocketPath:                "/var/run/nri/nri.sock",
		PluginPath:                "/opt/nri/plugins",
		PluginConfigPath:          "/etc/nri/conf.d",
		PluginRegistrationTimeout: 5 * time.Second,
		PluginRequestTimeout:      2 * time.Second,
	}
}

func (n *NRI) validate() error {
	for key, p := range map[string]string{"nri.socket_path": n.SocketPath, "nri.plugin_path": n.PluginPath, "nri.plugin_config_path": n.PluginConfigPath} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("config: %s must be an absolute path, got %q", key, p)
		}
	}
	if n.PluginRegistrationTimeout <= 0 {
		return fmt.Errorf("config: nri.plugin_registration_timeout must be positive, got %v", n.PluginRegistrationTimeout)
	}
	if n.PluginRequestTimeout <= 0 {
		return fmt.Errorf("config: nri.plugin_request_timeout must be positive, got %v", n.PluginRequestTimeout)
	}
	return nil
}
