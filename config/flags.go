package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flags binds a command line to the configuration. Only flags given on the
// command line override the file, so a flag's zero value never hides a key.
type Flags struct {
	fs         *flag.FlagSet
	ConfigPath string
	values     map[string]*string
	// registry holds the repeatable per-host flags, by flag name.
	registry map[string]*repeated
}

type repeated []string

func (m *repeated) String() string     { return strings.Join(*m, ",") }
func (m *repeated) Set(v string) error { *m = append(*m, v); return nil }

// registryFlags override the keys of registries."HOST"; each is repeatable.
// withValue flags take HOST=VALUE, the others just HOST.
var registryFlags = []struct {
	name, usage string
	withValue   bool
	apply       func(r *Registry, v string)
}{
	{"registry-mirror", "HOST=URL: try URL before registry HOST (repeatable; key registries.HOST.mirrors)", true,
		func(r *Registry, v string) { r.Mirrors = append(r.Mirrors, v) }},
	{"registry-ca-file", "HOST=PATH: trust the CA bundle PATH for HOST and its mirrors (repeatable; key registries.HOST.ca_file)", true,
		func(r *Registry, v string) { r.CAFile = v }},
	{"registry-insecure", "HOST: allow plain HTTP and unverified TLS for HOST (repeatable; key registries.HOST.insecure)", false,
		func(r *Registry, _ string) { r.Insecure = true }},
	{"registry-skip-upstream", "HOST: never fall back to HOST itself after its mirrors (repeatable; key registries.HOST.skip_upstream)", false,
		func(r *Registry, _ string) { r.SkipUpstream = true }},
}

// flagSetter is a scalar or list key's flag.
type flagSetter struct {
	name, usage string
	apply       func(c *Config, v string) error
}

// flagSetters maps each scalar or list key to the flag that overrides it.
var flagSetters = []flagSetter{
	{"listen", "path of the CRI unix socket (key listen)", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"root", "directory for persistent state (key root)", func(c *Config, v string) error { c.Root = v; return nil }},
	{"state", "directory for volatile state (key state)", func(c *Config, v string) error { c.State = v; return nil }},
	{"cgroup-driver", "cgroupfs or systemd (key cgroup_driver)", func(c *Config, v string) error { c.CgroupDriver = v; return nil }},
	{"cni-conf-dir", "directory of CNI network configurations (key cni.conf_dir)", func(c *Config, v string) error { c.CNI.ConfDir = v; return nil }},
	{"cni-bin-dir", "comma-separated directories of CNI plugins (key cni.bin_dirs)", func(c *Config, v string) error { c.CNI.BinDirs = splitList(v); return nil }},
	{"pinned-images", "comma-separated image references reported as pinned (key pinned_images)", func(c *Config, v string) error { c.PinnedImages = splitList(v); return nil }},
	{"insecure-registries", "comma-separated host[:port] patterns reachable over plain HTTP (key insecure_registries)", func(c *Config, v string) error { c.InsecureRegistries = splitList(v); return nil }},
	{"max-concurrent-downloads", "layers fetched at once per pull (key max_concurrent_downloads)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("--max-concurrent-downloads: %q is not a number", v)
		}
		c.MaxConcurrentDownloads = n
		return nil
	}},
	{"max-layer-bytes", "most uncompressed bytes one image layer may unpack to (key max_layer_bytes)", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("--max-layer-bytes: %q is not a number", v)
		}
		c.MaxLayerBytes = n
		return nil
	}},
	{"max-layer-entries", "most files, directories and links one image layer may hold (key max_layer_entries)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("--max-layer-entries: %q is not a number", v)
		}
		c.MaxLayerEntries = n
		return nil
	}},
	{"image-pull-progress-timeout", "abandon a layer download that receives nothing this long, 0 never (key image_pull_progress_timeout)", func(c *Config, v string) error {
		d, err := parseDuration("image-pull-progress-timeout", v)
		c.ImagePullProgressTimeout = d
		return err
	}},
	{"shm-size", "size of a pod's /dev/shm, a quantity such as 64Mi, or pod-memory-limit (key shm_size)", func(c *Config, v string) error { c.ShmSize = v; return nil }},
	{"default-ulimits", "comma-separated rlimits of every container, e.g. memlock=-1:-1,nofile=1048576:1048576 (key default_ulimits)", func(c *Config, v string) error { c.DefaultUlimits = splitList(v); return nil }},
	{"streaming-address", "address the streaming server listens on (key streaming.address)", func(c *Config, v string) error { c.Streaming.Address = v; return nil }},
	{"streaming-port", "port of the streaming server, 0 for a random one (key streaming.port)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("--streaming-port: %q is not a number", v)
		}
		c.Streaming.Port = n
		return nil
	}},
	{"streaming-tls-cert-file", "TLS certificate of the streaming server (key streaming.tls_cert_file)", func(c *Config, v string) error { c.Streaming.TLSCertFile = v; return nil }},
	{"streaming-tls-key-file", "TLS key of the streaming server (key streaming.tls_key_file)", func(c *Config, v string) error { c.Streaming.TLSKeyFile = v; return nil }},
	{"streaming-idle-timeout", "close streaming sessions idle this long (key streaming.idle_timeout)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("--streaming-idle-timeout: %q is not a duration", v)
		}
		c.Streaming.IdleTimeout = d
		return nil
	}},
	{"streaming-creation-timeout", "time a client has to open a session's streams (key streaming.creation_timeout)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("--streaming-creation-timeout: %q is not a duration", v)
		}
		c.Streaming.CreationTimeout = d
		return nil
	}},
	{"streaming-max-streams", "streaming sessions plus port-forward connections at once (key streaming.max_streams)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("--streaming-max-streams: %q is not a number", v)
		}
		c.Streaming.MaxStreams = n
		return nil
	}},
	{"nri-enable", "relay pod and container events to NRI plugins (key nri.enable)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("--nri-enable: %q is not true or false", v)
		}
		c.NRI.Enable = b
		return nil
	}},
	{"nri-socket-path", "unix socket NRI plugins connect to (key nri.socket_path)", func(c *Config, v string) error { c.NRI.SocketPath = v; return nil }},
	{"nri-plugin-path", "directory of NRI plugins crisp starts (key nri.plugin_path)", func(c *Config, v string) error { c.NRI.PluginPath = v; return nil }},
	{"nri-plugin-config-path", "directory of their configurations (key nri.plugin_config_path)", func(c *Config, v string) error { c.NRI.PluginConfigPath = v; return nil }},
	{"nri-plugin-registration-timeout", "time an NRI plugin has to register (key nri.plugin_registration_timeout)", func(c *Config, v string) (err error) {
		c.NRI.PluginRegistrationTimeout, err = parseDuration("nri-plugin-registration-timeout", v)
		return err
	}},
	{"nri-plugin-request-timeout", "time an NRI plugin has to handle an event (key nri.plugin_request_timeout)", func(c *Config, v string) (err error) {
		c.NRI.PluginRequestTimeout, err = parseDuration("nri-plugin-request-timeout", v)
		return err
	}},
	{"metrics-address", "host:port to serve Prometheus /metrics on, empty for none (key metrics.address)", func(c *Config, v string) error { c.Metrics.Address = v; return nil }},
	{"tracing-endpoint", "OTLP/gRPC collector URL to export traces to, empty for none (key tracing.endpoint)", func(c *Config, v string) error { c.Tracing.Endpoint = v; return nil }},
	{"tracing-sampling-ratio", "share of the traces starting at crisp that are sampled (key tracing.sampling_ratio)", func(c *Config, v string) (err error) {
		c.Tracing.SamplingRatio, err = parseRatio("tracing-sampling-ratio", v)
		return err
	}},
}

// boolFlags may be given without a value, as -name.
var boolFlags = map[string]bool{"nri-enable": true}

type boolFlag struct{ v *string }

func (b boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}
func (b boolFlag) Set(v string) error { *b.v = v; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

func parseDuration(flag, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("--%s: %q is not a duration", flag, v)
	}
	return d, nil
}

// NewFlags registers crisp's configuration flags on fs.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: map[string]*string{}}
	fs.StringVar(&f.ConfigPath, "config", DefaultPath, "configuration file")
	for _, s := range flagSetters {
		if boolFlags[s.name] {
			v := new(string)
			fs.Var(boolFlag{v}, s.name, s.usage)
			f.values[s.name] = v
			continue
		}
		f.values[s.name] = fs.String(s.name, "", s.usage)
	}
	f.registry = map[string]*repeated{}
	for _, r := range registryFlags {
		f.registry[r.name] = new(repeated)
		fs.Var(f.registry[r.name], r.name, r.usage)
	}
	return f
}

// Load reads the configuration file and applies the flags given on the command line.
func (f *Flags) Load() (*Config, error) {
	explicit := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "config" {
			explicit = true
		}
	})
	c, err := Load(f.ConfigPath, explicit)
	if err != nil {
		return nil, err
	}
	var applyErr error
	f.fs.Visit(func(fl *flag.Flag) {
		for _, s := range flagSetters {
			if s.name == fl.Name && applyErr == nil {
				applyErr = s.apply(c, *f.values[s.name])
			}
		}
	})
	if applyErr != nil {
		return nil, applyErr
	}
	for _, rf := range registryFlags {
		for _, arg := range *f.registry[rf.name] {
			host, v, ok := strings.Cut(arg, "=")
			if host == "" || ok != rf.withValue || (ok && v == "") {
				want := "HOST"
				if rf.withValue {
					want = "HOST=VALUE"
				}
				return nil, fmt.Errorf("--%s: want %s, got %q", rf.name, want, arg)
			}
			if c.Registries == nil {
				c.Registries = map[string]Registry{}
			}
			r := c.Registries[host]
			rf.apply(&r, v)
			c.Registries[host] = r
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
