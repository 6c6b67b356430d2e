package cri

import (
	"path"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
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
	img := s.Config().GetImage()
	return &runtimeapi.ImageSpec{
		Image:              s.Image.Name,
		Annotations:        img.GetAnnotations(),
		UserSpecifiedImage: img.GetUserSpecifiedImage(),
		RuntimeHandler:     img.GetRuntimeHandler(),
	}
}

func toCRIContainer(s *container.Snapshot) *runtimeapi.Container {
	cfg := s.Config()
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
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
	}
}

func toCRIContainerStatus(s *container.Snapshot) *runtimeapi.ContainerStatus {
	cfg := s.Config()
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
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
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
	ms := s.Config().GetMounts()
	if len(s.ImageVolumes) == 0 {
		return ms
	}
	ids := make(map[string]string, len(s.ImageVolumes))
	for _, v := range s.ImageVolumes {
		ids[v.ContainerPath] = v.ImageID
	}
	out := make([]*runtimeapi.Mount, len(ms))
	for i, m := range ms {
		if id, ok := ids[path.Clean(m.GetContainerPath())]; ok && m.GetImage() != nil {
			// The record's config is shared with other readers.
			m = proto.Clone(m).(*runtimeapi.Mount)
			m.Image.ImageRef = id
		}
		out[i] = m
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
