// Package sandbox runs Kubernetes pod sandboxes without an infra process: a
// pod's namespaces are created by a short-lived child of the daemon and kept
// alive by bind-mounting their nsfs files (pinning), CRI-O's drop-infra model.
// Only a pod that shares one PID namespace keeps a process, its reaper, because
// a PID namespace cannot be joined once its first process is gone.
//
// The package has its own types; the CRI layer translates to and from them.
package sandbox

import (
	"encoding/json"
	"time"
)

// NamespaceMode says whose namespace a pod uses, mirroring the CRI's enum.
type NamespaceMode string

const (
	// ModePod gives the pod a namespace of its own, shared by its containers.
	ModePod NamespaceMode = "pod"
	// ModeContainer gives each container its own (PID only).
	ModeContainer NamespaceMode = "container"
	// ModeNode uses the host's namespace.
	ModeNode NamespaceMode = "node"
	// ModeTarget shares a container's namespace; valid for containers only.
	ModeTarget NamespaceMode = "target"
)

// NamespaceOptions are the pod-level namespace choices.
type NamespaceOptions struct {
	Network NamespaceMode `json:"network"`
	PID     NamespaceMode `json:"pid"`
	IPC     NamespaceMode `json:"ipc"`
	// User is ModePod for a pod with a user namespace of its own (kubelet's
	// hostUsers: false), mapped by UIDs and GIDs; "" or ModeNode is the
	// host's. See userns.go.
	User NamespaceMode `json:"user,omitempty"`
	UIDs []IDMap       `json:"uids,omitempty"`
	GIDs []IDMap       `json:"gids,omitempty"`
}

// Metadata identifies a pod to kubelet; name+uid+namespace+attempt is unique.
type Metadata struct {
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Attempt   uint32 `json:"attempt"`
}

// DNSConfig is rendered into the pod's resolv.conf.
type DNSConfig struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

func (d *DNSConfig) empty() bool {
	return d == nil || len(d.Servers)+len(d.Searches)+len(d.Options) == 0
}

// PortMapping is handed to CNI (portmap plugin) as-is.
type PortMapping struct {
	Protocol      string `json:"protocol"` // "tcp", "udp" or "sctp"
	ContainerPort int32  `json:"containerPort"`
	HostPort      int32  `json:"hostPort"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Resources are the pod-level overhead and the sum of its containers'
// resources that kubelet reports. With no infra process there is nothing to
// apply them to; they are recorded for containers and for status.
type Resources struct {
	CPUPeriod       int64             `json:"cpuPeriod,omitempty"`
	CPUQuota        int64             `json:"cpuQuota,omitempty"`
	CPUShares       int64             `json:"cpuShares,omitempty"`
	MemoryLimit     int64             `json:"memoryLimit,omitempty"`
	MemorySwapLimit int64             `json:"memorySwapLimit,omitempty"`
	OOMScoreAdj     int64             `json:"oomScoreAdj,omitempty"`
	CpusetCPUs      string            `json:"cpusetCpus,omitempty"`
	CpusetMems      string            `json:"cpusetMems,omitempty"`
	HugepageLimits  map[string]uint64 `json:"hugepageLimits,omitempty"`
	Unified         map[string]string `json:"unified,omitempty"`
}

// Config is what a pod is created from.
type Config struct {
	Metadata     Metadata          `json:"metadata"`
	Hostname     string            `json:"hostname,omitempty"`
	LogDirectory string            `json:"logDirectory,omitempty"`
	DNS          *DNSConfig        `json:"dns,omitempty"`
	PortMappings []PortMapping     `json:"portMappings,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	CgroupParent string            `json:"cgroupParent,omitempty"`
	Sysctls      map[string]string `json:"sysctls,omitempty"`
	Namespaces   NamespaceOptions  `json:"namespaces"`
	Privileged   bool              `json:"privileged,omitempty"`
	Overhead     *Resources        `json:"overhead,omitempty"`
	Resources    *Resources        `json:"resources,omitempty"`
}

// State is a pod's lifecycle state.
type State string

const (
	// StateCreating is persisted before any side effect so that a crash in
	// the middle of Run can be rolled back at start-up. Never listed.
	StateCreating State = "creating"
	StateReady    State = "ready"
	StateNotReady State = "notready"
)

// Namespace kinds a pod can own, also the file names of its pins.
const (
	NSNet = "net"
	NSIPC = "ipc"
	NSUTS = "uts"
	NSPID = "pid"
	// NSUser is pinned for pods with their own user namespace, which owns
	// the pod's other namespaces.
	NSUser = "user"
)

// PodNetwork is what CNI gave the pod.
type PodNetwork struct {
	IPs        []string        `json:"ips,omitempty"`
	Interfaces []string        `json:"interfaces,omitempty"`
	Name       string          `json:"name,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty"`
	// Attached is true from before CNI ADD until a DEL succeeded, so that a
	// failed DEL (or a crash around one) is retried on the next Stop/Remove.
	Attached bool `json:"attached"`
}

// Reaper identifies the PID 1 of a pod's PID namespace. StartTime (from
// /proc/<pid>/stat) guards against signalling a recycled PID after a
// restart, BootID (internal/bootid) against one of a later boot, where the
// same pid can start at the same tick. Records written before BootID have
// none (additive: no schema bump, an older crisp reads the field away).
type Reaper struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	BootID    string `json:"bootID,omitempty"`
}

// Sandbox is a pod's record: persisted as sandbox.json, and handed out as an
// immutable snapshot (callers must not modify it).
type Sandbox struct {
	ID        string    `json:"id"`
	Config    Config    `json:"config"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	// Hostname is the effective one (Config.Hostname may be empty).
	Hostname string `json:"hostname"`
	// Namespaces maps a kind (NSNet...) to its pin file; absent kinds are the
	// host's (or, for pid in container mode, each container's own).
	Namespaces map[string]string `json:"namespaces,omitempty"`
	Reaper     *Reaper           `json:"reaper,omitempty"`
	Network    PodNetwork        `json:"network"`
	// ShmPath is the pod's /dev/shm mount, or the host's for host IPC pods.
	ShmPath string `json:"shmPath"`
	// ShmMounted is whether ShmPath is a tmpfs crisp mounted (and unmounts).
	ShmMounted bool `json:"shmMounted,omitempty"`
	// ShmSize is the size of the tmpfs crisp mounted, in bytes.
	ShmSize int64 `json:"shmSize,omitempty"`
	// Dir holds hosts, hostname and resolv.conf.
	Dir          string `json:"dir"`
	HostsPath    string `json:"hostsPath"`
	ResolvPath   string `json:"resolvPath"`
	HostnamePath string `json:"hostnamePath"`
	// Cgroup is the pod cgroup path (cgroupfs form, e.g. /kubepods/pod<uid>);
	// CgroupCreated are the absolute directories crisp made for it, parents
	// first, so Remove deletes exactly those.
	Cgroup        string   `json:"cgroup"`
	CgroupCreated []string `json:"cgroupCreated,omitempty"`
	// StoppedAt is set by the first Stop.
	StoppedAt time.Time `json:"stoppedAt,omitzero"`
}

// IP is the primary pod IP, "" if none.
func (s *Sandbox) IP() string {
	if len(s.Network.IPs) == 0 {
		return ""
	}
	return s.Network.IPs[0]
}

// clone copies what a writer changes so that published snapshots stay
// immutable. Config maps are never modified after Run, so they are shared.
func (s *Sandbox) clone() *Sandbox {
	c := *s
	if s.Namespaces != nil {
		c.Namespaces = make(map[string]string, len(s.Namespaces))
		for k, v := range s.Namespaces {
			c.Namespaces[k] = v
		}
	}
	if s.Reaper != nil {
		r := *s.Reaper
		c.Reaper = &r
	}
	c.CgroupCreated = append([]string(nil), s.CgroupCreated...)
	c.Network.IPs = append([]string(nil), s.Network.IPs...)
	return &c
}
