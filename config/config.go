// Package config holds crisp's configuration: defaults, the TOML file and the
// command-line flags that override it, in that order of precedence.
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where crisp looks for its configuration file.
const DefaultPath = "/etc/crisp/crisp.toml"

// Config is the effective configuration. Field tags are the TOML keys.
type Config struct {
	// Listen is the path of the CRI unix socket.
	Listen string `toml:"listen"`
	// Root holds persistent state (images, pod and container records).
	Root string `toml:"root"`
	// State holds volatile state that must not survive a reboot (namespaces, sockets).
	State string `toml:"state"`
	// CgroupDriver is "cgroupfs" or "systemd", reported to kubelet by RuntimeConfig.
	CgroupDriver string `toml:"cgroup_driver"`
	// PinnedImages are never garbage collected by kubelet and reported as pinned.
	PinnedImages []string `toml:"pinned_images"`
	// MaxConcurrentDownloads bounds the layers fetched at once per pull.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"`
	// ImagePullProgressTimeout abandons a layer download that receives
	// nothing for this long and tries the next endpoint; 0 never does.
	ImagePullProgressTimeout time.Duration `toml:"image_pull_progress_timeout"`
	// ShmSize sizes a pod's /dev/shm: a quantity ("64Mi") or ShmPodMemoryLimit.
	ShmSize string `toml:"shm_size"`
	// DefaultUlimits are every container's rlimits ("memlock=-1:-1"), over
	// crisp's explicit baseline; see internal/rlimit.
	DefaultUlimits []string `toml:"default_ulimits"`
	// MaxLayerBytes and MaxLayerEntries bound what one image layer may
	// unpack to: its uncompressed bytes (files at their full size) and its
	// tar entries. A pull over either fails with ResourceExhausted.
	MaxLayerBytes   int64 `toml:"max_layer_bytes"`
	MaxLayerEntries int   `toml:"max_layer_entries"`

	CNI        CNI                 `toml:"cni"`
	Streaming  Streaming           `toml:"streaming"`
	NRI        NRI                 `toml:"nri"`
	CDI        CDI                 `toml:"cdi"`
	Metrics    Metrics             `toml:"metrics"`
	Tracing    Tracing             `toml:"tracing"`
	Registries map[string]Registry `toml:"registries"`
	// InsecureRegistries may be reached over plain HTTP or with unverified TLS.
	// Entries are host[:port] patterns; "*" matches any port or host label.
	InsecureRegistries []string `toml:"insecure_registries"`
}

// CNI configures pod networking.
type CNI struct {
	ConfDir string   `toml:"conf_dir"`
	BinDirs []string `toml:"bin_dirs"`
}

// Streaming configures the exec/attach/port-forward server.
type Streaming struct {
	// Address is an IP; the loopback default exposes nothing to the network.
	Address string `toml:"address"`
	Port    int    `toml:"port"`
	// TLSCertFile and TLSKeyFile (both or neither) make the server HTTPS.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// IdleTimeout closes sessions without traffic, as kubelet's does.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// CreationTimeout bounds how long a client takes to open a session's streams.
	CreationTimeout time.Duration `toml:"creation_timeout"`
	// MaxStreams bounds sessions plus port-forward connections served at once.
	MaxStreams int `toml:"max_streams"`
}

// Registry is the per-host configuration of an upstream registry, e.g. "docker.io".
type Registry struct {
	// Mirrors are endpoints tried in order before the upstream host, such as
	// "http://127.0.0.1:5000". A path in the URL is prepended to the repository.
	Mirrors []string `toml:"mirrors"`
	// Insecure allows plain HTTP and unverified TLS for the upstream host.
	Insecure bool `toml:"insecure"`
	// CAFile is a PEM bundle trusted for this host and its mirrors.
	CAFile string `toml:"ca_file"`
	// SkipUpstream stops crisp falling back to the upstream host when every
	// mirror failed: what an air-gapped node wants.
	SkipUpstream bool `toml:"skip_upstream"`
}

// Default returns the configuration used when no file and no flags say otherwise.
func Default() *Config {
	return &Config{
		Listen:       "/run/crisp/crisp.sock",
		Root:         "/var/lib/crisp",
		State:        "/run/crisp",
		CgroupDriver: "cgroupfs",
		// Empty, not nil: the file crisp config prints lists the key.
		PinnedImages:             []string{},
		DefaultUlimits:           []string{},
		MaxConcurrentDownloads:   3,
		ImagePullProgressTimeout: 5 * time.Minute,
		ShmSize:                  "64Mi",
		// Far above real layers (the largest, of model weights, are tens
		// of GiB; a few hundred thousand files), far below a bomb.
		MaxLayerBytes:   256 << 30,
		MaxLayerEntries: 4_000_000,
		CNI: CNI{
			ConfDir: "/etc/cni/net.d",
			BinDirs: []string{"/opt/cni/bin", "/usr/lib/cni"},
		},
		Streaming:          Streaming{Address: "127.0.0.1", Port: 0, IdleTimeout: 4 * time.Hour, CreationTimeout: 30 * time.Second, MaxStreams: 128},
		Registries:         map[string]Registry{},
		InsecureRegistries: []string{"localhost:*", "127.0.0.1:*"},
		NRI:                defaultNRI(),
		CDI:                defaultCDI(),
		Tracing:            defaultTracing(),
	}
}

// Load reads path over the defaults. A missing file at the default path means
// defaults; a missing file that was asked for explicitly is an error.
func Load(path string, explicit bool) (*Config, error) {
	c := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) && !explicit {
			return c, nil
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.decode(data, path); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) decode(data []byte, source string) error {
	// Decoding into a fresh map first lets a file clear a list default.
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return fmt.Errorf("config %s: %w", source, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, 0, len(und))
		for _, k := range und {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		return fmt.Errorf("config %s: unknown key %s", source, strings.Join(keys, ", "))
	}
	return nil
}

// Validate reports the first invalid value, naming its key.
func (c *Config) Validate() error {
	for key, p := range map[string]string{"listen": c.Listen, "root": c.Root, "state": c.State, "cni.conf_dir": c.CNI.ConfDir} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("config: %s must be an absolute path, got %q", key, p)
		}
	}
	for i, d := range c.CNI.BinDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("config: cni.bin_dirs[%d] must be an absolute path, got %q", i, d)
		}
	}
	if c.CgroupDriver != "cgroupfs" && c.CgroupDriver != "systemd" {
		return fmt.Errorf("config: cgroup_driver must be \"cgroupfs\" or \"systemd\", got %q", c.CgroupDriver)
	}
	if c.ImagePullProgressTimeout < 0 {
		return fmt.Errorf("config: image_pull_progress_timeout must not be negative, got %v", c.ImagePullProgressTimeout)
	}
	if c.MaxLayerBytes <= 0 {
		return fmt.Errorf("config: max_layer_bytes must be positive, got %d", c.MaxLayerBytes)
	}
	if c.MaxLayerEntries <= 0 {
		return fmt.Errorf("config: max_layer_entries must be positive, got %d", c.MaxLayerEntries)
	}
	if c.MaxConcurrentDownloads < 1 || c.MaxConcurrentDownloads > 64 {
		return fmt.Errorf("config: max_concurrent_downloads must be between 1 and 64, got %d", c.MaxConcurrentDownloads)
	}
	if c.Streaming.Port < 0 || c.Streaming.Port > 65535 {
		return fmt.Errorf("config: streaming.port must be between 0 and 65535, got %d", c.Streaming.Port)
	}
	if err := c.validateWorkload(); err != nil {
		return err
	}
	if err := c.Streaming.validate(); err != nil {
		return err
	}
	if err := c.NRI.validate(); err != nil {
		return err
	}
	if err := c.CDI.validate(); err != nil {
		return err
	}
	if err := c.Metrics.validate(); err != nil {
		return err
	}
	if err := c.Tracing.validate(); err != nil {
		return err
	}
	for host, r := range c.Registries {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("config: registries.%q: the key must be a registry host such as \"docker.io\"", host)
		}
		for i, m := range r.Mirrors {
			u, err := url.Parse(m)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("config: registries.%q.mirrors[%d]: want an http:// or https:// URL, got %q", host, i, m)
			}
		}
		if r.CAFile != "" && !filepath.IsAbs(r.CAFile) {
			return fmt.Errorf("config: registries.%q.ca_file must be an absolute path, got %q", host, r.CAFile)
		}
	}
	return nil
}

func (s *Streaming) validate() error {
	if net.ParseIP(s.Address) == nil {
		return fmt.Errorf("config: streaming.address must be an IP address, got %q", s.Address)
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		return fmt.Errorf("config: streaming.tls_cert_file and streaming.tls_key_file go together")
	}
	for key, p := range map[string]string{"streaming.tls_cert_file": s.TLSCertFile, "streaming.tls_key_file": s.TLSKeyFile} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("config: %s must be an absolute path, got %q", key, p)
		}
	}
	if s.IdleTimeout <= 0 {
		return fmt.Errorf("config: streaming.idle_timeout must be positive, got %v", s.IdleTimeout)
	}
	if s.CreationTimeout <= 0 {
		return fmt.Errorf("config: streaming.creation_timeout must be positive, got %v", s.CreationTimeout)
	}
	if s.MaxStreams < 1 {
		return fmt.Errorf("config: streaming.max_streams must be at least 1, got %d", s.MaxStreams)
	}
	return nil
}

// TOML renders the configuration as a file that Load reads back unchanged.
func (c *Config) TOML() (string, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return "", err
	}
	return b.String(), nil
}

// SocketDir etc. derive paths so that every package agrees on the layout.

// ImageRoot is where the image store keeps blobs, layers and metadata.
func (c *Config) ImageRoot() string { return filepath.Join(c.Root, "images") }

// SandboxRoot keeps the persistent records of pods.
func (c *Config) SandboxRoot() string { return filepath.Join(c.Root, "pods") }

// ContainerRoot keeps the persistent records and writable layers of containers.
func (c *Config) ContainerRoot() string { return filepath.Join(c.Root, "containers") }
