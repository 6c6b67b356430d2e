package nri

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/cdi"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/internal/tracing"
	"github.com/crisp-runtime/crisp/sandbox"
)

// CreateContainer implements container.Hooks: the plugins' adjustments are
// applied to s. When a plugin fails it, or its adjustment does not apply,
// plugins are told that the container stopped and went away.
func (n *NRI) CreateContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Container, s *specs.Spec) (err error) {
	ctx, span := tracing.Start(ctx, "nri.CreateContainer")
	defer func() { tracing.End(span, err) }()
	pod := podOrStub(sb, c.PodID)
	ctr := containerToNRI(&container.Snapshot{Container: c, Status: container.Status{State: container.StateUnknown, CreatedAt: c.CreatedAt}}, s)
	n.mu.Lock()
	rpl, err := n.nri.CreateContainer(ctx, &api.CreateContainerRequest{Pod: pod, Container: ctr})
	n.setState(c.ID, created)
	if err != nil {
		n.undoCreateLocked(ctx, pod, ctr)
		n.mu.Unlock()
		return fmt.Errorf("NRI plugin failed CreateContainer of container %q in pod %s: %w", c.Name, c.PodID, err)
	}
	n.mu.Unlock()
	if err = adjust(s, rpl.GetAdjust(), n.cdi); err != nil {
		n.mu.Lock()
		n.undoCreateLocked(ctx, pod, ctr)
		n.mu.Unlock()
		return errdefs.FailedPrecondition("NRI adjustment of container %q in pod %s: %w", c.Name, c.PodID, err)
	}
	n.sideEffects(rpl.GetUpdate(), rpl.GetEvict())
	return nil
}

// UndoCreateContainer implements container.Hooks.
func (n *NRI) UndoCreateContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Container) {
	ctx, span := tracing.Start(ctx, "nri.UndoCreateContainer")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.undoCreateLocked(ctx, podOrStub(sb, c.PodID), &api.Container{Id: c.ID, PodSandboxId: c.PodID, Name: c.Name})
}

func (n *NRI) undoCreateLocked(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeouts.NRIUndo)
	defer cancel()
	n.sideEffects(n.stopContainerLocked(ctx, pod, ctr), nil)
	n.removeContainerLocked(ctx, pod, ctr)
}

// PostCreateContainer implements container.Hooks.
func (n *NRI) PostCreateContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot) {
	ctx, span := tracing.Start(ctx, "nri.PostCreateContainer")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.nri.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: podOrStub(sb, c.PodID), Container: containerToNRI(c, nil)})
	logFailure(ctx, c, "PostCreateContainer", err)
}

// StartContainer implements container.Hooks; a plugin can fail the start.
func (n *NRI) StartContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot) (err error) {
	ctx, span := tracing.Start(ctx, "nri.StartContainer")
	defer func() { tracing.End(span, err) }()
	n.mu.Lock()
	defer n.mu.Unlock()
	err = n.nri.StartContainer(ctx, &api.StartContainerRequest{Pod: podOrStub(sb, c.PodID), Container: containerToNRI(c, nil)})
	n.setState(c.ID, running)
	if err != nil {
		return fmt.Errorf("NRI plugin failed StartContainer of container %s: %w", c.ID, err)
	}
	return nil
}

// PostStartContainer implements container.Hooks.
func (n *NRI) PostStartContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot) {
	ctx, span := tracing.Start(ctx, "nri.PostStartContainer")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.nri.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: podOrStub(sb, c.PodID), Container: containerToNRI(c, nil)})
	logFailure(ctx, c, "PostStartContainer", err)
}

// UpdateContainer implements container.Hooks: plugins may change the
// requested resources, and ask for updates of other containers.
func (n *NRI) UpdateContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot, r *container.Resources) (_ *container.Resources, err error) {
	ctx, span := tracing.Start(ctx, "nri.UpdateContainer")
	defer func() { tracing.End(span, err) }()
	n.mu.Lock()
	rpl, err := n.nri.UpdateContainer(ctx, &api.UpdateContainerRequest{
		Pod: podOrStub(sb, c.PodID), Container: containerToNRI(c, nil), LinuxResources: resourcesToNRI(r),
	})
	n.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("NRI plugin failed UpdateContainer of container %s: %w", c.ID, err)
	}
	var own *api.LinuxResources
	var others []*api.ContainerUpdate
	for _, u := range rpl.GetUpdate() {
		if u.GetContainerId() == c.ID {
			own = u.GetLinux().GetResources()
		} else {
			others = append(others, u)
		}
	}
	n.sideEffects(others, rpl.GetEvict())
	if own == nil {
		return r, nil
	}
	return mergeResources(r, own), nil
}

// PostUpdateContainer implements container.Hooks.
func (n *NRI) PostUpdateContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot) {
	ctx, span := tracing.Start(ctx, "nri.PostUpdateContainer")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.nri.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: podOrStub(sb, c.PodID), Container: containerToNRI(c, nil)})
	logFailure(ctx, c, "PostUpdateContainer", err)
}

// StopContainer implements container.Hooks; only the first call for a
// container reaches plugins.
func (n *NRI) StopContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot) {
	ctx, span := tracing.Start(ctx, "nri.StopContainer")
	defer span.End()
	n.mu.Lock()
	updates := n.stopContainerLocked(ctx, podOrStub(sb, c.PodID), containerToNRI(c, nil))
	n.mu.Unlock()
	n.sideEffects(updates, nil)
}

// RemoveContainer implements container.Hooks; plugins that were not told
// about the stop hear of it first.
func (n *NRI) RemoveContainer(ctx context.Context, sb *sandbox.Sandbox, c *container.Snapshot) {
	ctx, span := tracing.Start(ctx, "nri.RemoveContainer")
	defer span.End()
	pod, ctr := podOrStub(sb, c.PodID), containerToNRI(c, nil)
	n.mu.Lock()
	updates := n.stopContainerLocked(ctx, pod, ctr)
	n.removeContainerLocked(ctx, pod, ctr)
	n.mu.Unlock()
	n.sideEffects(updates, nil)
}

// stopContainerLocked returns the updates of other containers plugins ask
// for in answer; the caller applies them once it released n.mu.
func (n *NRI) stopContainerLocked(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) []*api.ContainerUpdate {
	if !n.needsStop(ctr.Id) {
		return nil
	}
	n.setState(ctr.Id, stopped)
	rpl, err := n.nri.StopContainer(ctx, &api.StopContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		klog.FromContext(ctx).Info("NRI StopContainer failed", "container", ctr.Id, "err", err)
		tracing.Fail(ctx, err)
		return nil
	}
	return rpl.GetUpdate()
}

func (n *NRI) removeContainerLocked(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if !n.needsRemove(ctr.Id) {
		return
	}
	n.setState(ctr.Id, gone)
	if err := n.nri.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: pod, Container: ctr}); err != nil {
		klog.FromContext(ctx).Info("NRI RemoveContainer failed", "container", ctr.Id, "err", err)
		tracing.Fail(ctx, err)
	}
}

func logFailure(ctx context.Context, c *container.Snapshot, event string, err error) {
	if err != nil {
		klog.FromContext(ctx).Info("NRI event failed", "event", event, "container", c.ID, "err", err)
		tracing.Fail(ctx, err)
	}
}

func podOrStub(sb *sandbox.Sandbox, id string) *api.PodSandbox {
	if sb == nil {
		return podStub(id)
	}
	return podToNRI(sb)
}

var containerStates = map[container.State]api.ContainerState{
	container.StateCreated: api.ContainerState_CONTAINER_CREATED,
	container.StateRunning: api.ContainerState_CONTAINER_RUNNING,
	container.StateExited:  api.ContainerState_CONTAINER_STOPPED,
	container.StateUnknown: api.ContainerState_CONTAINER_UNKNOWN,
}

// containerToNRI describes a container to plugins: from its spec while it
// is being created, from its record afterwards (which keeps the process
// and resources, not the mounts or devices).
func containerToNRI(c *container.Snapshot, s *specs.Spec) *api.Container {
	cfg := &c.Config
	st := c.Status
	ctr := &api.Container{
		Id:            c.ID,
		PodSandboxId:  c.PodID,
		Name:          c.Name,
		State:         containerStates[st.State],
		Labels:        maps.Clone(cfg.Labels),
		Annotations:   maps.Clone(cfg.Annotations),
		Pid:           uint32(max(st.Pid, 0)),
		ExitCode:      int32(st.ExitCode),
		StatusReason:  st.Reason,
		StatusMessage: st.Message,
		Image:         imageToNRI(c.Image),
		CreatedAt:     unixNano(st.CreatedAt),
		StartedAt:     unixNano(st.StartedAt),
		FinishedAt:    unixNano(st.FinishedAt),
	}
	// Validated at create; a record cannot hold a bad name.
	devs, _ := cdi.Requested(cfg.CDIDevices, cfg.Annotations)
	for _, d := range devs {
		ctr.CDIDevices = append(ctr.CDIDevices, &api.CDIDevice{Name: d})
	}
	if s == nil {
		s = &specs.Spec{Process: c.Process, Linux: &specs.Linux{Resources: c.Resources}}
	} else if s.Annotations != nil {
		ctr.Annotations = maps.Clone(s.Annotations)
	}
	if p := s.Process; p != nil {
		ctr.Args = append([]string(nil), p.Args...)
		ctr.Env = append([]string(nil), p.Env...)
		ctr.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: append([]uint32(nil), p.User.AdditionalGids...)}
		for _, l := range p.Rlimits {
			ctr.Rlimits = append(ctr.Rlimits, &api.POSIXRlimit{Type: l.Type, Hard: l.Hard, Soft: l.Soft})
		}
	}
	ctr.Mounts = api.FromOCIMounts(s.Mounts)
	ctr.Hooks = api.FromOCIHooks(s.Hooks)
	if l := s.Linux; l != nil {
		ctr.Linux = &api.LinuxContainer{
			Namespaces:  api.FromOCILinuxNamespaces(l.Namespaces),
			Devices:     api.FromOCILinuxDevices(l.Devices),
			Resources:   api.FromOCILinuxResources(l.Resources, nil),
			CgroupsPath: l.CgroupsPath,
			Sysctl:      maps.Clone(l.Sysctl),
		}
		if p := s.Process; p != nil && p.OOMScoreAdj != nil {
			ctr.Linux.OomScoreAdj = api.Int(p.OOMScoreAdj)
		}
	}
	return ctr
}

func imageToNRI(img container.ImageInfo) *api.Image {
	out := &api.Image{Name: img.Name, ConfigDigest: img.ID}
	if _, digest, ok := strings.Cut(img.Ref, "@"); ok {
		out.Digest = digest
	}
	return out
}

// unixNano is 0 for a time that never came, not year 1's large negative.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
