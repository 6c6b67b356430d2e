package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/ids"
	"github.com/crisp-runtime/crisp/internal/registrar"
	"github.com/crisp-runtime/crisp/network"
)

// Network is what pods need from the network manager.
type Network interface {
	// Setup is CNI ADD; it rolls itself back when it fails.
	Setup(ctx context.Context, pod network.Pod) (*network.Result, error)
	// Teardown is CNI DEL; it is idempotent.
	Teardown(ctx context.Context, pod network.Pod) error
	// GC releases everything CNI holds for pods not in keep.
	GC(ctx context.Context, keep []network.Pod) error
}

// ContainerStopper is how the container side of crisp hooks into pod
// lifecycle: Stop must stop every container of the pod, Remove remove them.
// Both are called with the pod's lock held and must not call back into the
// Manager for the same pod.
type ContainerStopper interface {
	StopPodContainers(ctx context.Context, podID string, grace time.Duration) error
	RemovePodContainers(ctx context.Context, podID string) error
}

// Options configure a Manager.
type Options struct {
	// Root keeps pods' records and files: <Root>/<id>/sandbox.json,
	// hosts, hostname, resolv.conf. It must survive reboots.
	Root string
	// State is crisp's volatile state directory; pins go to <State>/ns/<id>
	// and pod shm mounts to <State>/pods/<id>/shm.
	State string
	// Network may be nil only if no pod uses a pod network.
	Network Network
	// Exe is started with podinit.Command to create a pod's namespaces; it
	// stays as the reaper of shared-PID pods, so the lean crisp-monitor
	// binary is the better choice. /proc/self/exe by default.
	Exe string
	// CgroupDriver is "cgroupfs" (default) or "systemd": pod cgroups are
	// then slices, and the reaper's cgroup a scope, made through systemd.
	CgroupDriver string
}

// Manager runs pod sandboxes. It orchestrates small parts: the record store,
// name reservations, namespace pinning, the pod cgroup, shm and pod files.
type Manager struct {
	store   *store
	pins    *pinner
	cgroups *cgroups
	shmDir  string
	net     Network
	names   *registrar.Registrar

	containers atomic.Pointer[ContainerStopper]
	events     atomic.Pointer[func(Event)]
	hooks      atomic.Pointer[Hooks]

	// usernsErr is UserNamespaces' verdict, probed once.
	usernsOnce sync.Once
	usernsErr  error

	// mu guards the index only; lifecycle work holds the pod's own lock.
	mu   sync.RWMutex
	pods map[string]*entry
}

// entry is one pod in the index. Readers load sb without locking; writers
// hold mu, store a fresh copy and persist it.
type entry struct {
	mu sync.Mutex
	sb atomic.Pointer[Sandbox]
	// reaperExit is closed when the pod's reaper exited; nil without one.
	reaperExit processExit
	removed    bool
}

// New loads the pods of a previous run, rolls back those whose creation was
// interrupted, checks that the others still have their namespaces, and lets
// CNI release what belongs to pods that no longer exist.
func New(ctx context.Context, opts Options) (*Manager, error) {
	cg, err := detectCgroups()
	if err != nil {
		return nil, err
	}
	cg.systemd = opts.CgroupDriver == "systemd"
	exe := opts.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	m := &Manager{
		store:   &store{root: opts.Root},
		pins:    &pinner{dir: filepath.Join(opts.State, "ns"), exe: exe},
		cgroups: cg,
		shmDir:  filepath.Join(opts.State, "pods"),
		net:     opts.Network,
		names:   registrar.New("pod"),
		pods:    map[string]*entry{},
	}
	for _, d := range []string{m.pins.dir, m.shmDir} {
		if err := makeSharedMountpoint(d); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	if err := m.recover(ctx); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return m, nil
}

// SetContainerStopper installs the container hook; nil removes it.
func (m *Manager) SetContainerStopper(cs ContainerStopper) {
	if cs == nil {
		m.containers.Store(nil)
		return
	}
	m.containers.Store(&cs)
}

func (m *Manager) containerStopper() ContainerStopper {
	if p := m.containers.Load(); p != nil {
		return *p
	}
	return nil
}

// lookup finds a pod by id or unique id prefix.
func (m *Manager) lookup(id string) (*entry, error) {
	if id == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id is required")
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e, ok := m.pods[id]; ok {
		return e, nil
	}
	full, ok, ambiguous := ids.Resolve(m.ids, id)
	if ambiguous {
		return nil, errdefs.InvalidArgument("pod sandbox id prefix %q matches several pods", id)
	}
	if !ok {
		return nil, errdefs.NotFound("pod sandbox %q", id)
	}
	return m.pods[full], nil
}

// lockLive returns the pod's entry with its lock held (the caller unlocks
// it), or NotFound when the pod is unknown or was removed while the caller
// waited for the lock.
func (m *Manager) lockLive(id string) (*entry, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.removed {
		e.mu.Unlock()
		return nil, errdefs.NotFound("pod sandbox %q", id)
	}
	return e, nil
}

// ids iterates the index; callers hold mu.
func (m *Manager) ids(yield func(string) bool) {
	for id := range m.pods {
		if !yield(id) {
			return
		}
	}
}

// Get returns a snapshot of a pod. It serves kubelet's status polls from
// memory: no disk and no /proc.
func (m *Manager) Get(id string) (*Sandbox, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	return e.sb.Load(), nil
}

// List returns snapshots of the pods f selects, oldest first.
func (m *Manager) List(f Filter) []*Sandbox {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Sandbox
	if f.ID != "" {
		id, ok, _ := ids.Resolve(m.ids, f.ID)
		if !ok {
			return nil
		}
		if sb := m.pods[id].sb.Load(); f.match(sb) {
			out = append(out, sb)
		}
		return out
	}
	for _, e := range m.pods {
		if sb := e.sb.Load(); f.match(sb) {
			out = append(out, sb)
		}
	}
	sortByCreation(out)
	return out
}

// UpdateResources records the pod's overhead and resources. Without an
// infra process nothing runs at pod level to apply them to; the container
// side reads them from the record. A nil argument keeps the current value.
func (m *Manager) UpdateResources(ctx context.Context, id string, overhead, resources *Resources) error {
	for _, r := range []*Resources{overhead, resources} {
		if err := r.validate(); err != nil {
			return err
		}
	}
	e, err := m.lockLive(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	hooks := m.lifecycleHooks()
	if err := hooks.UpdatePod(ctx, e.sb.Load(), overhead, resources); err != nil {
		return err
	}
	sb := e.sb.Load().clone()
	if overhead != nil {
		sb.Config.Overhead = overhead
	}
	if resources != nil {
		sb.Config.Resources = resources
	}
	if err := m.commit(e, sb); err != nil {
		return err
	}
	hooks.PostUpdatePod(ctx, sb)
	return nil
}

// commit persists sb and publishes it; the record on disk is never behind
// what List and Get report.
func (m *Manager) commit(e *entry, sb *Sandbox) error {
	if err := m.store.save(sb); err != nil {
		return fmt.Errorf("save pod %s: %w", sb.ID, err)
	}
	e.sb.Store(sb)
	return nil
}

// netPod describes sb to the network manager.
func netPod(sb *Sandbox) network.Pod {
	p := network.Pod{
		ID:           sb.ID,
		Name:         sb.Config.Metadata.Name,
		Namespace:    sb.Config.Metadata.Namespace,
		UID:          sb.Config.Metadata.UID,
		NetNS:        sb.Namespaces[NSNet],
		CgroupParent: sb.Cgroup,
	}
	for _, pm := range sb.Config.PortMappings {
		p.PortMappings = append(p.PortMappings, network.PortMapping{
			Protocol: pm.Protocol, ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, HostIP: pm.HostIP,
		})
	}
	if d := sb.Config.DNS; !d.empty() {
		p.DNS = &network.DNSConfig{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	return p
}

var errNoNetwork = errors.New("pod network requested but no network manager is configured")
