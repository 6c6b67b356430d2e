// Package spec translates a container's Config into the OCI runtime spec
// that crisp's monitor hands to libcontainer (specconv.CreateLibcontainerConfig).
//
// It is crisp's counterpart of containerd's internal/cri/opts and CRI-O's
// container factory: the defaults (capabilities, masked paths, mounts, device
// rules) follow containerd 2.x unless a comment says otherwise. Generate has
// only a few side effects, all of which containerd has too: it creates a
// missing bind-mount source directory, and reads the container rootfs's
// /etc/passwd and /etc/group, the host's mount table, /dev and
// /proc/self/oom_score_adj.
package spec

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Pod is what a container needs to know about its sandbox.
type Pod struct {
	ID, Name, Namespace, UID string
	// Paths of the pod's pinned namespaces; "" means the host's namespace
	// (host network/IPC pods).
	NetNS, IPCNS, UTSNS string
	// PIDNS is the pod's shared PID namespace ("" unless the pod asked for
	// NamespaceMode_POD).
	PIDNS string
	// UserNS is the pod's own user namespace ("" for the host's), which
	// UIDMappings and GIDMappings describe.
	UserNS                   string
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// CgroupParent is the pod cgroup: a cgroupfs path, or with the systemd
	// driver a slice name or a path whose last element is the slice.
	CgroupParent string
	// Files and directories prepared by the sandbox and bind-mounted into
	// the container; "" (or a file that does not exist) skips the mount.
	HostsPath, ResolvConfPath, HostnamePath, ShmPath string
	// Hostname becomes the container's HOSTNAME variable; "" means the
	// node's hostname (a host network pod).
	Hostname string
	// Sysctls are the pod's; they must be namespaced in a namespace the pod
	// owns.
	Sysctls map[string]string
	// Privileged pods may have privileged containers.
	Privileged bool
	// PIDMode is the pod's PID namespace choice: ModePod (with PIDNS),
	// ModeContainer or ModeNode.
	PIDMode sandbox.NamespaceMode
	// Ulimits is the pod's sandbox.UlimitsAnnotation, "" without one.
	Ulimits string
}

// Options are the daemon's settings and host facts; DetectOptions fills the
// host facts.
type Options struct {
	CgroupDriver string // "cgroupfs" (default) or "systemd"
	CgroupV2     bool
	// SwapController is whether the memory controller accounts swap
	// (memory.memsw.* on v1, memory.swap.max on v2). Without it a swap limit
	// cannot be set, so none is.
	SwapController bool
	// HugetlbController is whether hugetlb limits can be set. Without it they
	// are skipped with a warning (containerd's default
	// tolerate_missing_hugetlb_controller = true).
	HugetlbController bool
	// RestrictOOMScoreAdj clamps oom_score_adj to at least the daemon's own,
	// for a daemon without CAP_SYS_RESOURCE (lowering it needs that cap).
	RestrictOOMScoreAdj bool
	// SeccompProfileRoot resolves relative Localhost seccomp profiles.
	SeccompProfileRoot string
	// SeccompCompatArches keeps the native architecture's compat ABIs (x86
	// and x32 on amd64) in the RuntimeDefault profile. Off by default: see
	// seccomp.go.
	SeccompCompatArches bool
	// AppArmorEnabled is whether the host has AppArmor; AppArmorDefaultProfile
	// is a profile that is already loaded, used for RuntimeDefault and when
	// the container asks for nothing. crisp does not load profiles itself.
	AppArmorEnabled        bool
	AppArmorDefaultProfile string
	// DefaultCapabilities replaces the default capability set when non-nil.
	DefaultCapabilities []string
	// Rlimits are every container's, all sixteen listed (see
	// internal/rlimit); nil lists none, which leaves the monitor's.
	Rlimits []specs.POSIXRlimit
	// RecursiveReadOnlyMounts is whether the kernel can make a bind mount
	// and its submounts read-only (mount_setattr, Linux 5.12+).
	RecursiveReadOnlyMounts bool
}

// Input is one CreateContainer request, resolved by the caller.
type Input struct {
	ID     string
	Pod    Pod
	Config *Config
	Image  imagespec.ImageConfig
	// ImageName is the image reference reported in annotations.
	ImageName string
	// RootfsPath is the container's mounted rootfs; user and group names are
	// resolved against its /etc/passwd and /etc/group.
	RootfsPath string
	// TargetPIDNS is the PID namespace of the target container, required
	// when Config.Security.Namespaces.PID is ModeTarget.
	TargetPIDNS string
	// RunAsNonRoot is kubelet's runAsNonRoot. The CRI has no such field (kubelet
	// checks it before CreateContainer), so callers that know it set it here
	// to have the resolved user checked as well.
	RunAsNonRoot bool
	// ImageVolumes maps the cleaned container path of each image volume to
	// the host directory (or file) to bind there: the caller mounts the
	// images and resolves their sub-paths.
	ImageVolumes map[string]string
	Options      Options
}

// Notes are facts about the generated spec that the caller should log or
// report, so that this package does not log.
type Notes struct {
	// OOMScoreAdjClamped is set when RestrictOOMScoreAdj raised the requested
	// oom_score_adj to the daemon's own.
	OOMScoreAdjClamped   bool
	RequestedOOMScoreAdj int
	Warnings             []string
}

// CRI annotations that containerd sets on every container spec; tools that
// inspect runc state (and NRI plugins) look for them.
const (
	AnnotationContainerType     = "io.kubernetes.cri.container-type"
	AnnotationContainerName     = "io.kubernetes.cri.container-name"
	AnnotationSandboxID         = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName       = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace  = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID        = "io.kubernetes.cri.sandbox-uid"
	AnnotationImageName         = "io.kubernetes.cri.image-name"
	containerTypeContainer      = "container"
	maxAnnotationBytes          = 256 << 10
	systemdScopePrefix          = "crisp"
	defaultCgroupfsParentPrefix = "/crisp"
)

// Generate builds the OCI spec for in. Errors caused by the request wrap
// errdefs.ErrInvalidArgument (or ErrUnimplemented) and name the field.
func Generate(in Input) (*specs.Spec, Notes, error) {
	var notes Notes
	if err := validate(&in); err != nil {
		return nil, notes, err
	}
	cfg := in.Config
	sc := &cfg.Security
	if sc.Privileged && !in.Pod.Privileged {
		// Same rule as containerd and kubelet: a privileged container in an
		// unprivileged pod would escape the pod's policy.
		return nil, notes, errdefs.InvalidArgument("linux.security_context.privileged: no privileged container allowed in an unprivileged sandbox")
	}

	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: in.RootfsPath, Readonly: sc.ReadonlyRootfs},
		// Hostname stays empty: the container joins the pod's UTS namespace
		// (or the host's), whose hostname the sandbox already set; runc
		// would otherwise call sethostname again.
		Process: &specs.Process{Terminal: cfg.Tty},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{},
		},
	}

	var err error
	if s.Process.Args, err = processArgs(cfg, &in.Image); err != nil {
		return nil, notes, err
	}
	hostname := in.Pod.Hostname
	if hostname == "" {
		if hostname, err = os.Hostname(); err != nil {
			return nil, notes, fmt.Errorf("hostname: %w", err)
		}
	}
	if s.Process.Env, err = processEnv(hostname, in.Image.Env, cfg.Envs); err != nil {
		return nil, notes, err
	}
	s.Process.Cwd = processCwd(cfg, &in.Image)
	if s.Process.Rlimits, err = processRlimits(&in); err != nil {
		return nil, notes, err
	}

	if s.Process.User, err = resolveUser(&in); err != nil {
		return nil, notes, err
	}
	if s.Linux.Namespaces, err = namespaces(&in); err != nil {
		return nil, notes, err
	}
	if s.Linux.CgroupsPath, err = cgroupsPath(in.Options.CgroupDriver, in.Pod.CgroupParent, in.ID); err != nil {
		return nil, notes, err
	}
	if s.Mounts, s.Linux.RootfsPropagation, err = mounts(&in); err != nil {
		return nil, notes, err
	}
	if err := devices(&in, s); err != nil {
		return nil, notes, err
	}
	if err := resources(&in, s, &notes); err != nil {
		return nil, notes, err
	}
	if err := security(&in, s, &notes); err != nil {
		return nil, notes, err
	}
	s.Annotations = annotations(&in)
	return s, notes, nil
}

// validate checks what the rest relies on.
func validate(in *Input) error {
	if in.ID == "" {
		return fmt.Errorf("container id is empty")
	}
	if !filepath.IsAbs(in.RootfsPath) {
		return fmt.Errorf("rootfs path %q is not absolute", in.RootfsPath)
	}
	if in.Config == nil {
		return errdefs.InvalidArgument("config is required")
	}
	if in.Config.Name == "" {
		return errdefs.InvalidArgument("config.metadata.name is required")
	}
	if in.Pod.ID == "" {
		return fmt.Errorf("sandbox id is empty")
	}
	if n := len(in.Config.Command) + len(in.Config.Args); n > maxArgs {
		return errdefs.InvalidArgument("config.command/args: %d entries, at most %d", n, maxArgs)
	}
	size := 0
	for k, v := range in.Config.Annotations {
		size += len(k) + len(v)
	}
	if size > maxAnnotationBytes {
		return errdefs.InvalidArgument("config.annotations: %d bytes, at most %d", size, maxAnnotationBytes)
	}
	switch in.Options.CgroupDriver {
	case "", "cgroupfs", "systemd":
	default:
		return fmt.Errorf("unknown cgroup driver %q", in.Options.CgroupDriver)
	}
	return nil
}

// cgroupsPath is the container cgroup in the form libcontainer expects:
// an absolute cgroupfs path, or "slice:prefix:name" for systemd.
func cgroupsPath(driver, parent, id string) (string, error) {
	if driver == "systemd" {
		slice := ""
		if parent != "" {
			slice = path.Base(parent)
			if !strings.HasSuffix(slice, ".slice") {
				return "", errdefs.InvalidArgument("linux.cgroup_parent %q is not a systemd slice, but the cgroup driver is systemd", parent)
			}
		}
		// An empty slice makes runc use system.slice.
		return slice + ":" + systemdScopePrefix + ":" + id, nil
	}
	if parent == "" {
		return path.Join(defaultCgroupfsParentPrefix, id), nil
	}
	if strings.Contains(parent, "..") || strings.ContainsRune(parent, ':') {
		return "", errdefs.InvalidArgument("linux.cgroup_parent %q is not a cgroupfs path", parent)
	}
	return path.Join("/", parent, id), nil
}

// annotations are containerd's io.kubernetes.cri.* set. The request's own
// annotations are deliberately not copied: runc interprets some annotations
// (org.systemd.property.* become unit properties of the container's scope),
// which a pod author must not control. crisp keeps them in its own store.
func annotations(in *Input) map[string]string {
	return map[string]string{
		AnnotationContainerType:    containerTypeContainer,
		AnnotationContainerName:    in.Config.Name,
		AnnotationSandboxID:        in.Pod.ID,
		AnnotationSandboxName:      in.Pod.Name,
		AnnotationSandboxNamespace: in.Pod.Namespace,
		AnnotationSandboxUID:       in.Pod.UID,
		AnnotationImageName:        in.ImageName,
	}
}
