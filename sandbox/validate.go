package sandbox

import (
	"fmt"
	"net"
	"strings"

	"github.com/crisp-runtime/crisp/errdefs"
)

// validate rejects what crisp cannot honour before anything is created, naming
// the field as the CRI spells it so kubelet's event is actionable.
func (c *Config) validate() error {
	switch {
	case c.Metadata.Name == "":
		return errdefs.InvalidArgument("config.metadata.name is required")
	case c.Metadata.UID == "":
		return errdefs.InvalidArgument("config.metadata.uid is required")
	case c.Metadata.Namespace == "":
		return errdefs.InvalidArgument("config.metadata.namespace is required")
	}
	ns := c.Namespaces
	if err := validateUserns(ns); err != nil {
		return err
	}
	for field, m := range map[string]NamespaceMode{"network": ns.Network, "ipc": ns.IPC} {
		if m != ModePod && m != ModeNode {
			return errdefs.InvalidArgument("namespace_options.%s: mode %q is not supported for a pod", field, m)
		}
	}
	if ns.PID != ModePod && ns.PID != ModeNode && ns.PID != ModeContainer {
		return errdefs.InvalidArgument("namespace_options.pid: mode %q is not supported for a pod", ns.PID)
	}
	if c.Hostname != "" && (len(c.Hostname) > 64 || strings.ContainsAny(c.Hostname, " \t\n/")) {
		return errdefs.InvalidArgument("config.hostname %q is not a valid host name", c.Hostname)
	}
	for i, p := range c.PortMappings {
		switch p.Protocol {
		case "tcp", "udp", "sctp":
		default:
			return errdefs.InvalidArgument("config.port_mappings[%d].protocol %q is not supported", i, p.Protocol)
		}
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return errdefs.InvalidArgument("config.port_mappings[%d]: ports out of range", i)
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			return errdefs.InvalidArgument("config.port_mappings[%d].host_ip %q is not an IP address", i, p.HostIP)
		}
	}
	for k, v := range c.Sysctls {
		if err := validateSysctl(k, v, ns); err != nil {
			return err
		}
	}
	for _, r := range []*Resources{c.Overhead, c.Resources} {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}

// validateSysctl accepts only sysctls that are namespaced in a namespace the
// pod owns: anything else would change the whole node.
func validateSysctl(key, value string, ns NamespaceOptions) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\x00") || strings.Contains(key, "..") || strings.ContainsAny(value, "\n\x00") {
		return errdefs.InvalidArgument("linux.sysctls: invalid sysctl %q", key)
	}
	switch sysctlNamespace(key) {
	case NSNet:
		if ns.Network == ModeNode {
			return errdefs.InvalidArgument("linux.sysctls: %q needs a pod network namespace, the pod uses the host's", key)
		}
	case NSIPC:
		if ns.IPC == ModeNode {
			return errdefs.InvalidArgument("linux.sysctls: %q needs a pod IPC namespace, the pod uses the host's", key)
		}
	case NSUTS:
		if ns.Network == ModeNode {
			return errdefs.InvalidArgument("linux.sysctls: %q needs a pod UTS namespace, the pod uses the host's", key)
		}
	default:
		return errdefs.InvalidArgument("linux.sysctls: %q is not namespaced and would change the node", key)
	}
	return nil
}

// sysctlNamespace says which namespace a sysctl belongs to, "" for none. The
// list is the kernel's (and runc's) set of namespaced sysctls.
func sysctlNamespace(key string) string {
	key = strings.ReplaceAll(key, "/", ".")
	switch {
	case strings.HasPrefix(key, "net."):
		return NSNet
	case strings.HasPrefix(key, "fs.mqueue."),
		key == "kernel.sem", key == "kernel.shmall", key == "kernel.shmmax", key == "kernel.shmmni",
		key == "kernel.shm_rmid_forced", key == "kernel.msgmax", key == "kernel.msgmnb", key == "kernel.msgmni":
		return NSIPC
	case key == "kernel.domainname":
		// kernel.hostname is deliberately absent: config.hostname sets it.
		return NSUTS
	}
	return ""
}

func (r *Resources) validate() error {
	if r == nil {
		return nil
	}
	for name, v := range map[string]int64{"cpu_period": r.CPUPeriod, "cpu_shares": r.CPUShares, "memory_limit_in_bytes": r.MemoryLimit} {
		if v < 0 {
			return errdefs.InvalidArgument("resources.%s must not be negative, got %d", name, v)
		}
	}
	if r.CPUQuota < -1 {
		return errdefs.InvalidArgument("resources.cpu_quota must be -1 or more, got %d", r.CPUQuota)
	}
	if r.MemorySwapLimit < -1 {
		return errdefs.InvalidArgument("resources.memory_swap_limit_in_bytes must be -1 or more, got %d", r.MemorySwapLimit)
	}
	if r.OOMScoreAdj < -1000 || r.OOMScoreAdj > 1000 {
		return errdefs.InvalidArgument("resources.oom_score_adj must be within [-1000, 1000], got %d", r.OOMScoreAdj)
	}
	for name, v := range map[string]string{"cpuset_cpus": r.CpusetCPUs, "cpuset_mems": r.CpusetMems} {
		if err := validateCPUList(v); err != nil {
			return errdefs.InvalidArgument("resources.%s: %v", name, err)
		}
	}
	return nil
}

// validateCPUList checks the kernel's list format ("0-3,6").
func validateCPUList(s string) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		var a, b int
		if _, err := fmt.Sscanf(lo, "%d", &a); err != nil || a < 0 || fmt.Sprint(a) != lo {
			return fmt.Errorf("%q is not a CPU list", s)
		}
		if isRange {
			if _, err := fmt.Sscanf(hi, "%d", &b); err != nil || b < a || fmt.Sprint(b) != hi {
				return fmt.Errorf("%q is not a CPU list", s)
			}
		}
	}
	return nil
}
