package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/crisp-runtime/crisp/internal/hook"
	"github.com/crisp-runtime/crisp/internal/index"
	"github.com/crisp-runtime/crisp/internal/registrar"
	"github.com/crisp-runtime/crisp/internal/rlimit"
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
	// Shm sizes pods' /dev/shm.
	Shm ShmOptions
	// Rlimits checks a pod's ulimits annotation against what the daemon
	// can grant.
	Rlimits rlimit.Host
}

// Manager runs pod sandboxes. It orchestrates small parts: the record store,
// name reservations, namespace pinning, the pod cgroup, shm and pod files.
type Manager struct {
	store   *store
	pins    *pinner
	cgroups *cgroups
	shmDir  string
	shm     ShmOptions
	rlimits rlimit.Host
	net     Network
	names   *registrar.Registrar

	containers hook.Slot[ContainerStopper]
	events     hook.Slot[func(Event)]
	hooks      hook.Slot[Hooks]

	// usernsErr is UserNamespaces' verdict, probed once.
	usernsOnce sync.Once
	usernsErr  error

	pods *index.Index[Sandbox, *entry]
	// quarantined describes unreadable records, set once by recover.
	quarantined []string
}

// entry is one pod in the index; a pod is indexed only once it is complete.
type entry struct {
	index.Entry[Sandbox]
	// reaperExit is closed when the pod's reaper exited; nil without one.
	reaperExit processExit
}

// newIndex is the pods' index; its commits are saved to s.
func newIndex(s *store) *index.Index[Sandbox, *entry] {
	return index.New[Sandbox, *entry](index.Config[Sandbox]{
		Field: "pod_sandbox_id", Kind: "pod sandbox", Kinds: "pods",
		ID:        func(sb *Sandbox) string { return sb.ID },
		CreatedAt: func(sb *Sandbox) time.Time { return sb.CreatedAt },
		Save:      s.save,
	})
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
	st := &store{root: opts.Root}
	m := &Manager{
		store:   st,
		pins:    &pinner{dir: filepath.Join(opts.State, "ns"), exe: exe},
		cgroups: cg,
		shmDir:  filepath.Join(opts.State, "pods"),
		shm:     opts.Shm,
		rlimits: opts.Rlimits,
		net:     opts.Network,
		names:   registrar.New("pod"),
		pods:    newIndex(st),
	}
	for _, d := range []string{m.pins.dir, m.shmDir} {
		if err := makeSharedMountpoint(d); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	m.recover(ctx)
	return m, nil
}

// SetContainerStopper installs the container hook; nil removes it.
func (m *Manager) SetContainerStopper(cs ContainerStopper) { m.containers.Set(cs) }

func (m *Manager) containerStopper() ContainerStopper { return m.containers.Get() }

// Get returns a snapshot of a pod. It serves kubelet's status polls from
// memory: no disk and no /proc.
func (m *Manager) Get(id string) (*Sandbox, error) {
	e, err := m.pods.Lookup(id)
	if err != nil {
		return nil, err
	}
	return e.Load(), nil
}

// List returns snapshots of the pods f selects, oldest first.
func (m *Manager) List(f Filter) []*Sandbox {
	var out []*Sandbox
	for _, e := range m.pods.List(f.ID) {
		if sb := e.Load(); f.match(sb) {
			out = append(out, sb)
		}
	}
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
	e, err := m.pods.LockLive(id)
	if err != nil {
		return err
	}
	defer e.Unlock()
	hooks := m.lifecycleHooks()
	if err := hooks.UpdatePod(ctx, e.Load(), overhead, resources); err != nil {
		return err
	}
	sb := e.Load().clone()
	if overhead != nil {
		sb.Config.Overhead = overhead
	}
	if resources != nil {
		sb.Config.Resources = resources
	}
	if err := m.pods.Commit(e, sb); err != nil {
		return err
	}
	hooks.PostUpdatePod(ctx, sb)
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
