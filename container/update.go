package container

import (
	"context"
	"errors"
	"fmt"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
)

// UpdateResources applies new resource limits to a created or running
// container's cgroup and records them for status. They replace the
// requested ones whole and go through the same translation (and
// validation) as at create.
func (m *Manager) UpdateResources(ctx context.Context, id string, r *Resources) error {
	return m.updateResources(ctx, id, r, m.lifecycleHooks())
}

// ApplyResources is UpdateResources without the hooks, for the updates
// that the hooks (NRI plugins) ask for themselves.
func (m *Manager) ApplyResources(ctx context.Context, id string, r *Resources) error {
	return m.updateResources(ctx, id, r, noHooks{})
}

func (m *Manager) updateResources(ctx context.Context, id string, r *Resources, hooks Hooks) error {
	if r == nil {
		return errdefs.InvalidArgument("linux resources are required")
	}
	e, err := m.lockLive(id)
	if err != nil {
		return err
	}
	defer e.Unlock()
	c := e.Load()
	if st := statusOf(c, e.proc).State; st != StateRunning && st != StateCreated {
		return errdefs.FailedPrecondition("container %s is %s", c.ID, st)
	}
	r, err = hooks.UpdateContainer(ctx, m.podOf(c.PodID), e.snapshot(), r)
	if err != nil {
		return err
	}
	cfg := c.Config
	cfg.Resources = r
	pod := spec.Pod{ID: c.PodID}
	if sb, err := m.sandboxes.Get(c.PodID); err == nil {
		pod = podSpec(sb)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	// A throwaway spec: only its resources are used. Generating it whole
	// keeps the conversion rules (swap defaults, v1/v2, validation) in one
	// place. The resolved args stand in for the image's entrypoint.
	gen := cfg
	gen.Args = nil
	if c.Process != nil {
		gen.Command = c.Process.Args
	}
	s, _, err := spec.Generate(spec.Input{
		ID: c.ID, Pod: pod, Config: &gen, RootfsPath: c.Rootfs, Options: m.specOpts,
		ImageName: c.Image.Name,
	})
	if err != nil {
		return err
	}
	if err := e.proc.Update(s.Linux.Resources); err != nil {
		if errors.Is(err, monitor.ErrNotRunning) {
			return errdefs.FailedPrecondition("container %s: %w", c.ID, err)
		}
		return fmt.Errorf("update container %s: %w", c.ID, err)
	}
	n := c.clone()
	n.Resources = s.Linux.Resources
	if c.Resources != nil {
		// The monitor keeps the device rules (see monitor.Update); so does
		// the record, with those CDI devices and NRI plugins added.
		n.Resources.Devices = c.Resources.Devices
	}
	n.Config = cfg
	if err := m.commit(e, n); err != nil {
		return err
	}
	hooks.PostUpdateContainer(ctx, m.podOf(c.PodID), e.snapshot())
	return nil
}

// ReopenLog makes the monitor reopen the container's log file after kubelet
// rotated it. Like containerd, only a running container can.
func (m *Manager) ReopenLog(_ context.Context, id string) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	s := e.snapshot()
	if s.Status.State != StateRunning {
		return errdefs.FailedPrecondition("container %s is %s, not running", s.ID, s.Status.State)
	}
	if err := e.proc.ReopenLog(); err != nil {
		if errors.Is(err, monitor.ErrNotRunning) {
			return errdefs.FailedPrecondition("container %s: %w", s.ID, err)
		}
		return fmt.Errorf("reopen log of container %s: %w", s.ID, err)
	}
	return nil
}
