package cri

import (
	"path"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

var criContainerStates = map[container.State]runtimeapi.ContainerState{
	container.StateCreated: runtimeapi.ContainerState_CONTAINER_CREATED,
	container.StateRunning: runtimeapi.ContainerState_CONTAINER_RUNNING,
	container.StateExited:  runtimeapi.ContainerState_CONTAINER_EXITED,
	container.StateUnknown: runtimeapi.ContainerState_CONTAINER_UNKNOWN,
}

var containerStates = map[runtimeapi.ContainerState]container.State{
	runtimeapi.ContainerState_CONTAINER_CREATED: container.StateCreated,
	runtimeapi.ContainerState_CONTAINER_RUNNING: container.StateRunning,
	runtimeapi.ContainerState_CONTAINER_EXITED:  container.StateExited,
	runtimeapi.ContainerState_CONTAINER_UNKNOWN: container.StateUnknown,
}

// unixNano is 0 for an unset time, as the CRI wants, not year 1's value.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func toCRIContainerMetadata(s *container.Snapshot) *runtimeapi.ContainerMetadata {
	return &runtimeapi.ContainerMetadata{Name: s.Name, Attempt: s.Attempt}
}

// toCRIImageSpec reports the image as the user named it, with the request's
// annotations and runtime handler.
func toCRIImageSpec(s *container.Snapshot) *runtimeapi.ImageSpec {
	img := &s.Config.Image
	return &runtimeapi.ImageSpec{
		Image:              s.Image.Name,
		Annotations:        img.Annotations,
		UserSpecifiedImage: img.UserSpecifiedImage,
		RuntimeHandler:     img.RuntimeHandler,
	}
}

func toCRIContainer(s *container.Snapshot) *runtimeapi.Container {
	cfg := &s.Config
	return &runtimeapi.Container{
		Id:           s.ID,
		PodSandboxId: s.PodID,
		Metadata:     toCRIContainerMetadata(s),
		Image:        toCRIImageSpec(s),
		// containerd lists the image id here and a repo digest in status.
		ImageRef:    s.Image.ID,
		ImageId:     s.Image.ID,
		State:       criContainerStates[s.Status.State],
		CreatedAt:   unixNano(s.CreatedAt),
		Labels:      cfg.Labels,
		Annotations: cfg.Annotations,
	}
}

func toCRIContainerStatus(s *container.Snapshot) *runtimeapi.ContainerStatus {
	cfg := &s.Config
	st := &runtimeapi.ContainerStatus{
		Id:          s.ID,
		Metadata:    toCRIContainerMetadata(s),
		State:       criContainerStates[s.Status.State],
		CreatedAt:   unixNano(s.Status.CreatedAt),
		StartedAt:   unixNano(s.Status.StartedAt),
		FinishedAt:  unixNano(s.Status.FinishedAt),
		ExitCode:    int32(s.Status.ExitCode),
		Image:       toCRIImageSpec(s),
		ImageRef:    s.Image.Ref,
		ImageId:     s.Image.ID,
		Reason:      s.Status.Reason,
		Message:     s.Status.Message,
		Labels:      cfg.Labels,
		Annotations: cfg.Annotations,
		Mounts:      statusMounts(s),
		LogPath:     s.LogPath,
		Resources:   toCRIResources(s.Resources, s.Process),
	}
	if p := s.Process; p != nil {
		u := &runtimeapi.LinuxContainerUser{Uid: int64(p.User.UID), Gid: int64(p.User.GID)}
		for _, g := range p.User.AdditionalGids {
			u.SupplementalGroups = append(u.SupplementalGroups, int64(g))
		}
		st.User = &runtimeapi.ContainerUser{Linux: u}
	}
	return st
}

// statusMounts are the mounts as requested, each image volume with its
// image_ref: the id of the image mounted, which is what PullImage returned
// and what critest and kubelet compare it with.
func statusMounts(s *container.Snapshot) []*runtimeapi.Mount {
	ms := s.Config.Mounts
	if len(ms) == 0 {
		return nil
	}
	ids := make(map[string]string, len(s.ImageVolumes))
	for _, v := range s.ImageVolumes {
		ids[v.ContainerPath] = v.ImageID
	}
	out := make([]*runtimeapi.Mount, len(ms))
	for i := range ms {
		m := toCRIMount(&ms[i])
		if id, ok := ids[path.Clean(m.GetContainerPath())]; ok && m.GetImage() != nil {
			m.Image.ImageRef = id
		}
		out[i] = m
	}
	return out
}

// toCRIMount gives back the mount as it was requested.
func toCRIMount(m *spec.Mount) *runtimeapi.Mount {
	out := &runtimeapi.Mount{
		ContainerPath:     m.ContainerPath,
		HostPath:          m.HostPath,
		Readonly:          m.Readonly,
		SelinuxRelabel:    m.SELinuxRelabel,
		Propagation:       toCRIPropagation(m.Propagation),
		UidMappings:       toCRIIDMaps(m.UIDMappings),
		GidMappings:       toCRIIDMaps(m.GIDMappings),
		RecursiveReadOnly: m.RecursiveReadOnly,
		ImageSubPath:      m.ImageSubPath,
		MountOptions:      m.Options,
	}
	if img := m.Image; img != nil {
		out.Image = &runtimeapi.ImageSpec{
			Image: img.Image, Annotations: img.Annotations, UserSpecifiedImage: img.UserSpecifiedImage,
			RuntimeHandler: img.RuntimeHandler, ImageRef: img.ImageRef,
		}
	}
	return out
}

// toCRIResources reports the effective limits, as containerd does: kubelet
// compares them with the pod spec to follow in-place resizes.
func toCRIResources(r *specs.LinuxResources, p *specs.Process) *runtimeapi.ContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if r != nil {
		if c := r.CPU; c != nil {
			if c.Period != nil {
				out.CpuPeriod = int64(*c.Period)
			}
			if c.Quota != nil {
				out.CpuQuota = *c.Quota
			}
			if c.Shares != nil {
				out.CpuShares = int64(*c.Shares)
			}
			out.CpusetCpus, out.CpusetMems = c.Cpus, c.Mems
		}
		if m := r.Memory; m != nil {
			if m.Limit != nil {
				out.MemoryLimitInBytes = *m.Limit
			}
			if m.Swap != nil {
				out.MemorySwapLimitInBytes = *m.Swap
			}
		}
		for _, h := range r.HugepageLimits {
			out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.Pagesize, Limit: h.Limit})
		}
		out.Unified = r.Unified
	}
	if p != nil && p.OOMScoreAdj != nil {
		out.OomScoreAdj = int64(*p.OOMScoreAdj)
	}
	return &runtimeapi.ContainerResources{Linux: out}
}

func toContainerFilter(f *runtimeapi.ContainerFilter) container.Filter {
	out := container.Filter{ID: f.GetId(), PodID: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}
	if sv := f.GetState(); sv != nil {
		st := containerStates[sv.GetState()]
		out.State = &st
	}
	return out
}

// toContainerConfig is CreateContainer's translation. It checks what only
// the CRI shape can tell (an absent metadata message) and leaves the rest of
// the validation to package container and its spec generator, which report
// errors by the CRI field names. A nil config stays nil for the manager to
// refuse, after the pod id.
func toContainerConfig(c *runtimeapi.ContainerConfig) (*container.Config, error) {
	if c == nil {
		return nil, nil
	}
	md := c.GetMetadata()
	if md == nil {
		return nil, errdefs.InvalidArgument("config.metadata is required")
	}
	out := &container.Config{
		Name:        md.GetName(),
		Attempt:     md.GetAttempt(),
		Image:       toImageSpec(c.GetImage()),
		Command:     c.GetCommand(),
		Args:        c.GetArgs(),
		WorkingDir:  c.GetWorkingDir(),
		Labels:      c.GetLabels(),
		Annotations: c.GetAnnotations(),
		LogPath:     c.GetLogPath(),
		Stdin:       c.GetStdin(),
		StdinOnce:   c.GetStdinOnce(),
		Tty:         c.GetTty(),
		Resources:   toContainerResources(c.GetLinux().GetResources()),
		Security:    toSecurityContext(c.GetLinux().GetSecurityContext()),
	}
	for _, kv := range c.GetEnvs() {
		out.Envs = append(out.Envs, spec.KeyValue{Key: kv.GetKey(), Value: string(kv.GetValue())})
	}
	for _, m := range c.GetMounts() {
		out.Mounts = append(out.Mounts, toMount(m))
	}
	for _, d := range c.GetDevices() {
		out.Devices = append(out.Devices, spec.Device{ContainerPath: d.GetContainerPath(), HostPath: d.GetHostPath(), Permissions: d.GetPermissions()})
	}
	for _, d := range c.GetCDIDevices() {
		out.CDIDevices = append(out.CDIDevices, d.GetName())
	}
	return out, nil
}

// DecodeContainerConfig converts the CRI config that container records
// written before schema version 2 hold as protojson: it is
// container.Options.DecodeCRIConfig, so that upgrading crisp keeps the
// containers a node runs.
func DecodeContainerConfig(b []byte) (*container.Config, error) {
	c := &runtimeapi.ContainerConfig{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, c); err != nil {
		return nil, err
	}
	if c.Metadata == nil {
		// The container exists; its name is in the record as well.
		c.Metadata = &runtimeapi.ContainerMetadata{}
	}
	return toContainerConfig(c)
}

func toImageSpec(i *runtimeapi.ImageSpec) spec.ImageSpec {
	return spec.ImageSpec{
		Image: i.GetImage(), Annotations: i.GetAnnotations(), UserSpecifiedImage: i.GetUserSpecifiedImage(),
		RuntimeHandler: i.GetRuntimeHandler(), ImageRef: i.GetImageRef(),
	}
}

func toMount(m *runtimeapi.Mount) spec.Mount {
	out := spec.Mount{
		ContainerPath:     m.GetContainerPath(),
		HostPath:          m.GetHostPath(),
		Readonly:          m.GetReadonly(),
		RecursiveReadOnly: m.GetRecursiveReadOnly(),
		Propagation:       toPropagation(m.GetPropagation()),
		UIDMappings:       toSandboxIDMaps(m.GetUidMappings()),
		GIDMappings:       toSandboxIDMaps(m.GetGidMappings()),
		ImageSubPath:      m.GetImageSubPath(),
		SELinuxRelabel:    m.GetSelinuxRelabel(),
		Options:           m.GetMountOptions(),
	}
	if m.GetImage() != nil {
		// Present but empty is an invalid image volume, not a bind.
		img := toImageSpec(m.GetImage())
		out.Image = &img
	}
	return out
}

var propagations = map[runtimeapi.MountPropagation]spec.Propagation{
	runtimeapi.MountPropagation_PROPAGATION_PRIVATE:           spec.PropagationPrivate,
	runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER: spec.PropagationHostToContainer,
	runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:     spec.PropagationBidirectional,
}

// Enum values crisp does not know are kept as their number (see
// container.Config), so that they are refused only where they matter.

func toPropagation(p runtimeapi.MountPropagation) spec.Propagation {
	if v, ok := propagations[p]; ok {
		return v
	}
	return spec.Propagation(strconv.Itoa(int(p)))
}

func toCRIPropagation(p spec.Propagation) runtimeapi.MountPropagation {
	for k, v := range propagations {
		if v == p {
			return k
		}
	}
	n, _ := strconv.Atoi(string(p)) // "" and unknown words: PRIVATE, the zero value
	return runtimeapi.MountPropagation(n)
}

func toNamespaceMode(m runtimeapi.NamespaceMode) sandbox.NamespaceMode {
	if v, ok := namespaceModes[m]; ok {
		return v
	}
	return sandbox.NamespaceMode(strconv.Itoa(int(m)))
}

var groupsPolicies = map[runtimeapi.SupplementalGroupsPolicy]spec.SupplementalGroupsPolicy{
	runtimeapi.SupplementalGroupsPolicy_Merge:  spec.GroupsMerge,
	runtimeapi.SupplementalGroupsPolicy_Strict: spec.GroupsStrict,
}

func toGroupsPolicy(p runtimeapi.SupplementalGroupsPolicy) spec.SupplementalGroupsPolicy {
	if v, ok := groupsPolicies[p]; ok {
		return v
	}
	return spec.SupplementalGroupsPolicy(strconv.Itoa(int(p)))
}

var profileTypes = map[runtimeapi.SecurityProfile_ProfileType]spec.ProfileType{
	runtimeapi.SecurityProfile_RuntimeDefault: spec.ProfileRuntimeDefault,
	runtimeapi.SecurityProfile_Unconfined:     spec.ProfileUnconfined,
	runtimeapi.SecurityProfile_Localhost:      spec.ProfileLocalhost,
}

func toSecurityProfile(p *runtimeapi.SecurityProfile) *spec.SecurityProfile {
	if p == nil {
		return nil
	}
	t, ok := profileTypes[p.GetProfileType()]
	if !ok {
		t = spec.ProfileType(strconv.Itoa(int(p.GetProfileType())))
	}
	return &spec.SecurityProfile{Type: t, LocalhostRef: p.GetLocalhostRef()}
}

// toSecurityContext drops what crisp does not apply and nothing reports:
// SELinux options, ambient capabilities and the network and IPC modes,
// which are always the pod's.
func toSecurityContext(sc *runtimeapi.LinuxContainerSecurityContext) spec.SecurityContext {
	nso := sc.GetNamespaceOptions()
	out := spec.SecurityContext{
		Privileged:       sc.GetPrivileged(),
		AddCapabilities:  sc.GetCapabilities().GetAddCapabilities(),
		DropCapabilities: sc.GetCapabilities().GetDropCapabilities(),
		Namespaces: spec.NamespaceOptions{
			PID:      toNamespaceMode(nso.GetPid()),
			TargetID: nso.GetTargetId(),
		},
		RunAsUsername:            sc.GetRunAsUsername(),
		ReadonlyRootfs:           sc.GetReadonlyRootfs(),
		SupplementalGroups:       sc.GetSupplementalGroups(),
		SupplementalGroupsPolicy: toGroupsPolicy(sc.GetSupplementalGroupsPolicy()),
		NoNewPrivs:               sc.GetNoNewPrivs(),
		MaskedPaths:              sc.GetMaskedPaths(),
		ReadonlyPaths:            sc.GetReadonlyPaths(),
		Seccomp:                  toSecurityProfile(sc.GetSeccomp()),
		AppArmor:                 toSecurityProfile(sc.GetApparmor()),
		SeccompProfilePath:       sc.GetSeccompProfilePath(),
		AppArmorProfile:          sc.GetApparmorProfile(),
	}
	if u := nso.GetUsernsOptions(); u != nil {
		out.Namespaces.User = &spec.UserNamespace{
			Mode: toNamespaceMode(u.GetMode()), UIDs: toSandboxIDMaps(u.GetUids()), GIDs: toSandboxIDMaps(u.GetGids()),
		}
	}
	if v := sc.GetRunAsUser(); v != nil {
		uid := v.GetValue()
		out.RunAsUser = &uid
	}
	if v := sc.GetRunAsGroup(); v != nil {
		gid := v.GetValue()
		out.RunAsGroup = &gid
	}
	return out
}

// toContainerResources is nil for nil: no resources requested.
func toContainerResources(r *runtimeapi.LinuxContainerResources) *container.Resources {
	if r == nil {
		return nil
	}
	out := &container.Resources{
		CPUPeriod:       r.GetCpuPeriod(),
		CPUQuota:        r.GetCpuQuota(),
		CPUShares:       r.GetCpuShares(),
		MemoryLimit:     r.GetMemoryLimitInBytes(),
		MemorySwapLimit: r.GetMemorySwapLimitInBytes(),
		OOMScoreAdj:     r.GetOomScoreAdj(),
		CpusetCPUs:      r.GetCpusetCpus(),
		CpusetMems:      r.GetCpusetMems(),
		Unified:         r.GetUnified(),
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, spec.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return out
}
