package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

func validConfig() Config {
	return Config{
		Metadata:   Metadata{Name: "web", UID: "u1", Namespace: "default"},
		Namespaces: NamespaceOptions{Network: ModePod, PID: ModeContainer, IPC: ModePod},
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		field  string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Metadata.Name = "" }, "config.metadata.name"},
		{"no uid", func(c *Config) { c.Metadata.UID = "" }, "config.metadata.uid"},
		{"no namespace", func(c *Config) { c.Metadata.Namespace = "" }, "config.metadata.namespace"},
		{"target pid", func(c *Config) { c.Namespaces.PID = ModeTarget }, "namespace_options.pid"},
		{"container network", func(c *Config) { c.Namespaces.Network = ModeContainer }, "namespace_options.network"},
		{"container user namespace", func(c *Config) { c.Namespaces.User = ModeContainer }, "userns_options.mode"},
		{"net sysctl", func(c *Config) { c.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} }, ""},
		{"slash sysctl", func(c *Config) { c.Sysctls = map[string]string{"net/ipv4/conf/eth0.100/forwarding": "1"} }, ""},
		{"ipc sysctl", func(c *Config) { c.Sysctls = map[string]string{"kernel.shmmax": "1000"} }, ""},
		{"mqueue sysctl", func(c *Config) { c.Sysctls = map[string]string{"fs.mqueue.msg_max": "20"} }, ""},
		{"node sysctl", func(c *Config) { c.Sysctls = map[string]string{"vm.swappiness": "1"} }, "linux.sysctls"},
		{"hostname sysctl", func(c *Config) { c.Sysctls = map[string]string{"kernel.hostname": "x"} }, "linux.sysctls"},
		{"escaping sysctl", func(c *Config) { c.Sysctls = map[string]string{"net/../../kernel/x": "1"} }, "linux.sysctls"},
		{"net sysctl on host network", func(c *Config) {
			c.Namespaces.Network = ModeNode
			c.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, "linux.sysctls"},
		{"ipc sysctl on host ipc", func(c *Config) {
			c.Namespaces.IPC = ModeNode
			c.Sysctls = map[string]string{"kernel.msgmax": "1"}
		}, "linux.sysctls"},
		{"bad protocol", func(c *Config) { c.PortMappings = []PortMapping{{Protocol: "icmp", ContainerPort: 80}} }, "protocol"},
		{"bad port", func(c *Config) { c.PortMappings = []PortMapping{{Protocol: "tcp", ContainerPort: 0}} }, "port_mappings[0]"},
		{"bad host ip", func(c *Config) { c.PortMappings = []PortMapping{{Protocol: "tcp", ContainerPort: 80, HostIP: "x"}} }, "host_ip"},
		{"bad oom score", func(c *Config) { c.Resources = &Resources{OOMScoreAdj: 1001} }, "oom_score_adj"},
		{"bad cpuset", func(c *Config) { c.Overhead = &Resources{CpusetCPUs: "0-"} }, "cpuset_cpus"},
		{"good cpuset", func(c *Config) { c.Overhead = &Resources{CpusetCPUs: "0-3,6", CpusetMems: "0"} }, ""},
		{"negative memory", func(c *Config) { c.Resources = &Resources{MemoryLimit: -1} }, "memory_limit_in_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}
