package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/internal/ids"
	"github.com/crisp-runtime/crisp/internal/registrar"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Images is what containers need from the image store.
type Images interface {
	Get(ref string) (*image.Image, error)
	LayerDirs(ref string) ([]string, error)
	Lease(owner, ref string) error
	LeaseMounted(owner, ref string) error
	Unlease(owner string) error
}

// Sandboxes is what containers need from the sandbox manager.
type Sandboxes interface {
	Get(id string) (*sandbox.Sandbox, error)
}

// Options configure a Manager.
type Options struct {
	// Root keeps records, writable layers and monitor bundles:
	// <Root>/<id>/{container.json,fs/,bundle/}. It must survive reboots.
	Root string
	// State is crisp's volatile state directory: rootfs mounts go to
	// <State>/containers/<id>/rootfs, monitor sockets to <State>/mon/.
	State     string
	Images    Images
	Sandboxes Sandboxes
	// Runtime is MonitorRuntime{} unless a test fakes it.
	Runtime Runtime
	// MonitorBinary is the crisp-monitor executable.
	MonitorBinary string
	// Spec are the spec generation options (host facts and settings).
	Spec spec.Options
	// StatsInterval is how often CPU and writable-layer usage are sampled;
	// 0 means the default, negative disables the sampler.
	StatsInterval time.Duration
	// DecodeCRIConfig converts the CRI ContainerConfig (as protojson) that
	// records of crisp before schema version 2 hold; package cri provides
	// it, as this package knows no CRI types.
	DecodeCRIConfig func([]byte) (*Config, error)
}

// Manager runs containers. It orchestrates small parts: the record store,
// name reservations, rootfs mounts, spec generation, monitors and events.
type Manager struct {
	store     *store
	stateDir  string
	images    Images
	sandboxes Sandboxes
	runtime   Runtime
	monitor   string
	specOpts  spec.Options
	names     *registrar.Registrar
	events    *broadcaster
	stats     *sampler

	oomClampLogged sync.Once
	warned         sync.Map // spec warnings already logged
	hooks          atomic.Pointer[Hooks]

	// mu guards the index only; lifecycle work holds the container's lock.
	mu         sync.RWMutex
	containers map[string]*entry

	stop chan struct{}
	wg   sync.WaitGroup
}

// entry is one container in the index. Readers load c without locking;
// writers hold mu, store a fresh copy and persist it.
type entry struct {
	mu sync.Mutex
	c  atomic.Pointer[Container]
	// proc is set (under mu) before visible becomes true and never
	// changes afterwards, so readers that saw visible may use it.
	proc    Process
	visible atomic.Bool
	removed bool
	// podID is fixed at creation; StopPodContainers selects by it even
	// while the container is still being created.
	podID string
}

func (e *entry) snapshot() *Snapshot {
	c := e.c.Load()
	return &Snapshot{Container: c, Status: statusOf(c, e.proc)}
}

// New loads the containers of a previous run, re-attaches to their
// monitors, and rolls back those whose creation was interrupted.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Images == nil || opts.Sandboxes == nil {
		return nil, errors.New("container: images and sandboxes are required")
	}
	rt := opts.Runtime
	if rt == nil {
		rt = MonitorRuntime{}
	}
	m := &Manager{
		store:      &store{root: opts.Root, decodeCRIConfig: opts.DecodeCRIConfig},
		stateDir:   opts.State,
		images:     opts.Images,
		sandboxes:  opts.Sandboxes,
		runtime:    rt,
		monitor:    opts.MonitorBinary,
		specOpts:   opts.Spec,
		names:      registrar.New("container"),
		events:     newBroadcaster(),
		containers: map[string]*entry{},
		stop:       make(chan struct{}),
	}
	m.stats = newSampler(m)
	for _, d := range []string{opts.Root, filepath.Join(opts.State, "containers"), filepath.Join(opts.State, "mon")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("container: %w", err)
		}
	}
	if err := m.recover(ctx); err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	interval := opts.StatsInterval
	if interval == 0 {
		interval = defaultStatsInterval
	}
	if interval > 0 {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.stats.run(interval, m.stop) }()
	}
	return m, nil
}

// Close stops background work. Containers keep running: they belong to
// their monitors, and kubelet expects a runtime restart to be invisible.
func (m *Manager) Close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.wg.Wait()
}

// bundleDir is the monitor's persistent directory, inside the record's.
func (m *Manager) bundleDir(id string) string { return filepath.Join(m.store.dir(id), "bundle") }

// monitorStateDir is the monitor's volatile directory. It holds the attach
// socket, whose path must fit in 107 bytes: half the id is as unique in
// practice and keeps long state paths (tests, critest) working.
func (m *Manager) monitorStateDir(id string) string {
	return filepath.Join(m.stateDir, "mon", id[:min(len(id), 32)])
}

// lookup finds a visible container by id or unique id prefix.
func (m *Manager) lookup(id string) (*entry, error) {
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id is required")
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e, ok := m.containers[id]; ok && e.visible.Load() {
		return e, nil
	}
	full, ok, ambiguous := ids.Resolve(m.visibleIDs, id)
	if ambiguous {
		return nil, errdefs.InvalidArgument("container id prefix %q matches several containers", id)
	}
	if !ok {
		return nil, errdefs.NotFound("container %q", id)
	}
	return m.containers[full], nil
}

// lockLive returns the container's entry with its lifecycle lock held (the
// caller unlocks it), or NotFound when it is unknown or was removed while
// the caller waited for the lock.
func (m *Manager) lockLive(id string) (*entry, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.removed {
		e.mu.Unlock()
		return nil, errdefs.NotFound("container %q", id)
	}
	return e, nil
}

// visibleIDs iterates the listed part of the index; callers hold mu.
func (m *Manager) visibleIDs(yield func(string) bool) {
	for id, e := range m.containers {
		if e.visible.Load() && !yield(id) {
			return
		}
	}
}

// Get returns a snapshot of a container, from memory: kubelet polls it.
func (m *Manager) Get(id string) (*Snapshot, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	return e.snapshot(), nil
}

// List returns snapshots of the containers f selects, oldest first.
func (m *Manager) List(f Filter) []*Snapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Snapshot
	if f.ID != "" {
		id, ok, _ := ids.Resolve(m.visibleIDs, f.ID)
		if !ok {
			return nil
		}
		if s := m.containers[id].snapshot(); f.match(s) {
			out = append(out, s)
		}
		return out
	}
	for _, e := range m.containers {
		if !e.visible.Load() {
			continue
		}
		if s := e.snapshot(); f.match(s) {
			out = append(out, s)
		}
	}
	sortByCreation(out)
	return out
}

// podEntries returns every indexed container of a pod, including those
// still being created: pod stop and remove must wait for them.
func (m *Manager) podEntries(podID string) []*entry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*entry
	for _, e := range m.containers {
		if e.podID == podID {
			out = append(out, e)
		}
	}
	return out
}

// commit persists c and publishes it; the record on disk is never behind
// what List and Get report.
func (m *Manager) commit(e *entry, c *Container) error {
	if err := m.store.save(c); err != nil {
		return fmt.Errorf("save container %s: %w", c.ID, err)
	}
	e.c.Store(c)
	return nil
}

// forget drops a removed container from the index.
func (m *Manager) forget(e *entry, c *Container) {
	e.removed = true
	m.mu.Lock()
	delete(m.containers, c.ID)
	m.mu.Unlock()
	m.names.Release(nameKey(c.PodID, c.Name, c.Attempt), c.ID)
	m.stats.forget(c.ID)
}
