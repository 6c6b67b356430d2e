package sandbox

import "context"

// Hooks are told about pod lifecycle changes; crisp's NRI adaptation relays
// them to plugins. They are called with the pod's lock held and must not
// call back into the Manager for the same pod.
type Hooks interface {
	// BlockSync keeps newly connecting plugins from taking their first view
	// of the node until the returned function is called, so that a pod being
	// created is either in that view or announced to them by RunPod.
	BlockSync() (unblock func())
	// RunPod is called once the pod is set up and before anyone can see it.
	// An error fails RunPodSandbox, which then rolls the pod back.
	RunPod(ctx context.Context, sb *Sandbox) error
	// StopPod is called after the pod's containers stopped and before its
	// namespaces and network are released. It cannot fail the stop: a
	// plugin must not be able to keep a pod's resources allocated.
	StopPod(ctx context.Context, sb *Sandbox)
	// RemovePod is called once the pod is gone.
	RemovePod(ctx context.Context, sb *Sandbox)
	// UpdatePod is called with the pod's new resources before they are
	// recorded; an error refuses the update. PostUpdatePod follows once
	// they are.
	UpdatePod(ctx context.Context, sb *Sandbox, overhead, resources *Resources) error
	PostUpdatePod(ctx context.Context, sb *Sandbox)
}

// SetHooks installs the lifecycle hooks; nil removes them. Set them before
// serving: pods created before are only in the hooks' first view.
func (m *Manager) SetHooks(h Hooks) { m.hooks.Set(h) }

func (m *Manager) lifecycleHooks() Hooks {
	if h := m.hooks.Get(); h != nil {
		return h
	}
	return noHooks{}
}

type noHooks struct{}

func (noHooks) BlockSync() func()                      { return func() {} }
func (noHooks) RunPod(context.Context, *Sandbox) error { return nil }
func (noHooks) StopPod(context.Context, *Sandbox)      {}
func (noHooks) RemovePod(context.Context, *Sandbox)    {}
func (noHooks) UpdatePod(context.Context, *Sandbox, *Resources, *Resources) error {
	return nil
}
func (noHooks) PostUpdatePod(context.Context, *Sandbox) {}
