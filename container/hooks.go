package container

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/sandbox"
)

// Hooks are told about container lifecycle changes; crisp's NRI adaptation
// relays them to plugins. pod is nil when the pod is gone. Hooks that can
// fail the operation are called with the container's lock held; none may
// call back into the Manager for the same container.
type Hooks interface {
	// BlockSync keeps newly connecting plugins from taking their first view
	// of the node until the returned function is called, so that a container
	// being created is either in that view or announced by CreateContainer.
	BlockSync() (unblock func())
	// CreateContainer may adjust s before the container is created; the
	// container is not listed yet. An error fails (and rolls back)
	// CreateContainer.
	CreateContainer(ctx context.Context, pod *sandbox.Sandbox, c *Container, s *specs.Spec) error
	// UndoCreateContainer tells them that a container CreateContainer
	// accepted was rolled back.
	UndoCreateContainer(ctx context.Context, pod *sandbox.Sandbox, c *Container)
	PostCreateContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot)
	// StartContainer is called before the process starts; an error fails
	// the start.
	StartContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot) error
	PostStartContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot)
	// UpdateContainer may replace the requested resources; an error fails
	// the update.
	UpdateContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot, r *Resources) (*Resources, error)
	PostUpdateContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot)
	// StopContainer is called when a container was stopped or exited on its
	// own, possibly more than once: the hooks keep count.
	StopContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot)
	RemoveContainer(ctx context.Context, pod *sandbox.Sandbox, c *Snapshot)
}

// SetHooks installs the lifecycle hooks; nil removes them. Set them before
// serving: containers created before are only in the hooks' first view.
func (m *Manager) SetHooks(h Hooks) { m.hooks.Set(h) }

func (m *Manager) lifecycleHooks() Hooks {
	if h := m.hooks.Get(); h != nil {
		return h
	}
	return noHooks{}
}

// podOf is the pod for a hook, nil once it is gone.
func (m *Manager) podOf(id string) *sandbox.Sandbox {
	sb, err := m.sandboxes.Get(id)
	if err != nil {
		return nil
	}
	return sb
}

type noHooks struct{}

func (noHooks) BlockSync() func() { return func() {} }
func (noHooks) CreateContainer(context.Context, *sandbox.Sandbox, *Container, *specs.Spec) error {
	return nil
}
func (noHooks) UndoCreateContainer(context.Context, *sandbox.Sandbox, *Container) {}
func (noHooks) PostCreateContainer(context.Context, *sandbox.Sandbox, *Snapshot)  {}
func (noHooks) StartContainer(context.Context, *sandbox.Sandbox, *Snapshot) error { return nil }
func (noHooks) PostStartContainer(context.Context, *sandbox.Sandbox, *Snapshot)   {}
func (noHooks) PostUpdateContainer(context.Context, *sandbox.Sandbox, *Snapshot)  {}
func (noHooks) StopContainer(context.Context, *sandbox.Sandbox, *Snapshot)        {}
func (noHooks) RemoveContainer(context.Context, *sandbox.Sandbox, *Snapshot)      {}
func (noHooks) UpdateContainer(_ context.Context, _ *sandbox.Sandbox, _ *Snapshot, r *Resources) (*Resources, error) {
	return r, nil
}
