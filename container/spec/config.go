package spec

import "github.com/crisp-runtime/crisp/sandbox"

// Config is what a container is created from: crisp's own form of the CRI
// ContainerConfig, which package cri converts once. It is defined here
// rather than in package container because Generate consumes it and
// container imports this package; container names it container.Config.
//
// Every enum-like field's zero value means what the CRI's zero value means
// (POD, private propagation, RuntimeDefault, Merge), so that a Config built
// in Go reads like the request it stands for. A value cri could not name
// (an enum number newer than crisp) is kept as its decimal number, and
// Generate rejects it where the field matters, as it always did.
//
// Containers record it as JSON, so field names are part of the record's
// schema.
type Config struct {
	Name    string    `json:"name"`
	Attempt uint32    `json:"attempt,omitempty"`
	Image   ImageSpec `json:"image"`
	// Command replaces the image's Entrypoint, Args its Cmd (see
	// processArgs).
	Command    []string   `json:"command,omitempty"`
	Args       []string   `json:"args,omitempty"`
	WorkingDir string     `json:"workingDir,omitempty"`
	Envs       []KeyValue `json:"envs,omitempty"`
	Mounts     []Mount    `json:"mounts,omitempty"`
	Devices    []Device   `json:"devices,omitempty"`
	// CDIDevices are fully qualified CDI device names (vendor/class=name)
	// from the CRI field; those of cdi.k8s.io/* annotations stay in
	// Annotations. Package container/cdi resolves both after Generate.
	CDIDevices []string `json:"cdiDevices,omitempty"`
	// Labels and Annotations are the request's, reported back in status;
	// the annotations are not copied into the OCI spec (see annotations).
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// LogPath is relative to the pod's log directory.
	LogPath   string `json:"logPath,omitempty"`
	Stdin     bool   `json:"stdin,omitempty"`
	StdinOnce bool   `json:"stdinOnce,omitempty"`
	Tty       bool   `json:"tty,omitempty"`
	// Resources are nil when the request has none, which leaves even
	// oom_score_adj to the runtime.
	Resources *Resources      `json:"resources,omitempty"`
	Security  SecurityContext `json:"security"`
}

// ImageSpec names an image as a request did.
type ImageSpec struct {
	Image              string            `json:"image"`
	Annotations        map[string]string `json:"annotations,omitempty"`
	UserSpecifiedImage string            `json:"userSpecifiedImage,omitempty"`
	RuntimeHandler     string            `json:"runtimeHandler,omitempty"`
	// ImageRef is only reported: the image an image volume mounted.
	ImageRef string `json:"imageRef,omitempty"`
}

// KeyValue is one environment variable. Value may hold any bytes but NUL.
type KeyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Propagation is a bind mount's propagation; "" is PropagationPrivate.
type Propagation string

const (
	PropagationPrivate         Propagation = "private"
	PropagationHostToContainer Propagation = "host-to-container"
	PropagationBidirectional   Propagation = "bidirectional"
)

// Mount is a bind mount of a host path, or with Image an image volume.
type Mount struct {
	ContainerPath     string          `json:"containerPath"`
	HostPath          string          `json:"hostPath,omitempty"`
	Readonly          bool            `json:"readonly,omitempty"`
	RecursiveReadOnly bool            `json:"recursiveReadOnly,omitempty"`
	Propagation       Propagation     `json:"propagation,omitempty"`
	UIDMappings       []sandbox.IDMap `json:"uidMappings,omitempty"`
	GIDMappings       []sandbox.IDMap `json:"gidMappings,omitempty"`
	// Image is set for an image volume (kubelet's ImageVolume); an
	// ImageSpec without an image is an invalid request, not a bind.
	Image        *ImageSpec `json:"image,omitempty"`
	ImageSubPath string     `json:"imageSubPath,omitempty"`
	// SELinuxRelabel and Options are accepted and reported back in status;
	// crisp applies neither.
	SELinuxRelabel bool     `json:"selinuxRelabel,omitempty"`
	Options        []string `json:"options,omitempty"`
}

// Device is a host device node (or a directory of them) to expose.
type Device struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	// Permissions are cgroup device access, some of "rwm"; "" is all.
	Permissions string `json:"permissions,omitempty"`
}

// Resources are a container's cgroup limits as requested, in the CRI's
// units; zero means unset. UpdateContainerResources replaces them whole.
type Resources struct {
	CPUPeriod       int64             `json:"cpuPeriod,omitempty"`
	CPUQuota        int64             `json:"cpuQuota,omitempty"`
	CPUShares       int64             `json:"cpuShares,omitempty"`
	MemoryLimit     int64             `json:"memoryLimit,omitempty"`
	MemorySwapLimit int64             `json:"memorySwapLimit,omitempty"`
	OOMScoreAdj     int64             `json:"oomScoreAdj,omitempty"`
	CpusetCPUs      string            `json:"cpusetCpus,omitempty"`
	CpusetMems      string            `json:"cpusetMems,omitempty"`
	HugepageLimits  []HugepageLimit   `json:"hugepageLimits,omitempty"`
	Unified         map[string]string `json:"unified,omitempty"`
}

// HugepageLimit limits one huge page size ("2MB") in bytes.
type HugepageLimit struct {
	PageSize string `json:"pageSize"`
	Limit    uint64 `json:"limit"`
}

// SupplementalGroupsPolicy says where supplementary groups come from; ""
// is GroupsMerge.
type SupplementalGroupsPolicy string

const (
	// GroupsMerge adds the groups the image's /etc/group lists the user in.
	GroupsMerge SupplementalGroupsPolicy = "Merge"
	// GroupsStrict uses only the requested ones.
	GroupsStrict SupplementalGroupsPolicy = "Strict"
)

// ProfileType selects a seccomp or AppArmor profile; "" is
// ProfileRuntimeDefault.
type ProfileType string

const (
	ProfileRuntimeDefault ProfileType = "RuntimeDefault"
	ProfileUnconfined     ProfileType = "Unconfined"
	ProfileLocalhost      ProfileType = "Localhost"
)

// SecurityProfile is a seccomp or AppArmor profile request.
type SecurityProfile struct {
	Type ProfileType `json:"type,omitempty"`
	// LocalhostRef names the profile for ProfileLocalhost.
	LocalhostRef string `json:"localhostRef,omitempty"`
}

// NamespaceOptions are a container's namespace choices. Network, IPC and
// UTS are always the pod's, so they have no option here.
type NamespaceOptions struct {
	// PID is ModePod ("" too: as the pod), ModeContainer, ModeNode or
	// ModeTarget (TargetID's namespace).
	PID      sandbox.NamespaceMode `json:"pid,omitempty"`
	TargetID string                `json:"targetId,omitempty"`
	// User is nil to follow the pod; kubelet repeats the pod's choice.
	User *UserNamespace `json:"user,omitempty"`
}

// UserNamespace repeats the pod's user namespace choice: ModePod with the
// pod's mappings, or ModeNode.
type UserNamespace struct {
	Mode sandbox.NamespaceMode `json:"mode"`
	UIDs []sandbox.IDMap       `json:"uids,omitempty"`
	GIDs []sandbox.IDMap       `json:"gids,omitempty"`
}

// SecurityContext is the container's Linux security settings.
type SecurityContext struct {
	Privileged bool `json:"privileged,omitempty"`
	// AddCapabilities and DropCapabilities change the default set; "ALL"
	// means every capability.
	AddCapabilities  []string         `json:"addCapabilities,omitempty"`
	DropCapabilities []string         `json:"dropCapabilities,omitempty"`
	Namespaces       NamespaceOptions `json:"namespaces"`
	// RunAsUsername, else RunAsUser, else the image's USER; RunAsGroup
	// overrides the group of the first two.
	RunAsUser                *int64                   `json:"runAsUser,omitempty"`
	RunAsGroup               *int64                   `json:"runAsGroup,omitempty"`
	RunAsUsername            string                   `json:"runAsUsername,omitempty"`
	ReadonlyRootfs           bool                     `json:"readonlyRootfs,omitempty"`
	SupplementalGroups       []int64                  `json:"supplementalGroups,omitempty"`
	SupplementalGroupsPolicy SupplementalGroupsPolicy `json:"supplementalGroupsPolicy,omitempty"`
	NoNewPrivs               bool                     `json:"noNewPrivs,omitempty"`
	// MaskedPaths and ReadonlyPaths replace the defaults when non-nil, so
	// nil and empty differ (and both survive the record).
	MaskedPaths   []string `json:"maskedPaths"`
	ReadonlyPaths []string `json:"readonlyPaths"`
	// Seccomp and AppArmor are nil when not requested; then the deprecated
	// string forms ("runtime/default", "unconfined", "localhost/<ref>")
	// apply if set.
	Seccomp            *SecurityProfile `json:"seccomp,omitempty"`
	AppArmor           *SecurityProfile `json:"apparmor,omitempty"`
	SeccompProfilePath string           `json:"seccompProfilePath,omitempty"`
	AppArmorProfile    string           `json:"apparmorProfile,omitempty"`
}
