package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crisp-runtime/crisp/container/cdi"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/internal/hook"
	"github.com/crisp-runtime/crisp/internal/index"
	"github.com/crisp-runtime/crisp/internal/registrar"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Images is what containers need from the image store.
type Images interface {
	Get(ref string) (*image.Image, error)
	LayerDirs(ref string) ([]string, error)
	Lease(owner, ref string) error
	LeaseDeferred(owner, ref string) (sync func() error, err error)
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
	// CDI resolves the CDI devices containers request; nil when CDI is
	// disabled, which refuses containers that request any.
	CDI *cdi.Registry
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
	cdi       *cdi.Registry
	names     *registrar.Registrar
	events    *broadcaster
	stats     *sampler

	oomClampLogged sync.Once
	warned         sync.Map // spec warnings already logged
	hooks          hook.Slot[Hooks]

	containers *index.Index[Container, *entry]
	// quarantined describes unreadable records, set once by recover.
	quarantined []string

	stop chan struct{}
	wg   sync.WaitGroup
}

// entry is one container in the index, hidden while it is being created.
type entry struct {
	index.Entry[Container]
	// proc is set (under the entry's lock) before the entry is shown and
	// never changes afterwards, so readers that found it may use it.
	proc Process
	// podID is fixed at creation; StopPodContainers selects by it even
	// while the container is still being created.
	podID string
}

// newIndex is the containers' index; its commits are saved to s.
func newIndex(s *store) *index.Index[Container, *entry] {
	return index.New[Container, *entry](index.Config[Container]{
		Field: "container_id", Kind: "container", Kinds: "containers",
		ID:        func(c *Container) string { return c.ID },
		CreatedAt: func(c *Container) time.Time { return c.CreatedAt },
		Save:      s.save,
	})
}

func (e *entry) snapshot() *Snapshot {
	c := e.Load()
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
	st := &store{root: opts.Root, decodeCRIConfig: opts.DecodeCRIConfig}
	m := &Manager{
		store:      st,
		stateDir:   opts.State,
		images:     opts.Images,
		sandboxes:  opts.Sandboxes,
		runtime:    rt,
		monitor:    opts.MonitorBinary,
		specOpts:   opts.Spec,
		cdi:        opts.CDI,
		names:      registrar.New("container"),
		events:     newBroadcaster(),
		containers: newIndex(st),
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
func (m *Manager) lookup(id string) (*entry, error) { return m.containers.Lookup(id) }

// lockLive is lookup with the container's lifecycle lock held.
func (m *Manager) lockLive(id string) (*entry, error) { return m.containers.LockLive(id) }

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
	var out []*Snapshot
	var keep func(*entry) bool
	if f.PodID != "" {
		// Before sorting and copying: a pod's stats list its containers.
		keep = func(e *entry) bool { return e.podID == f.PodID }
	}
	for _, e := range m.containers.ListFunc(f.ID, keep) {
		if s := e.snapshot(); f.match(s) {
			out = append(out, s)
		}
	}
	return out
}

// Monitors counts the containers whose monitor process is alive.
func (m *Manager) Monitors() int {
	n := 0
	for _, e := range m.containers.List("") {
		if e.proc != nil && e.proc.MonitorRunning() {
			n++
		}
	}
	return n
}

// podEntries returns every indexed container of a pod, including those
// still being created: pod stop and remove must wait for them.
func (m *Manager) podEntries(podID string) []*entry {
	return m.containers.Select(func(e *entry) bool { return e.podID == podID })
}

// commit persists c and publishes it; the record on disk is never behind
// what List and Get report.
func (m *Manager) commit(e *entry, c *Container) error { return m.containers.Commit(e, c) }

// forget drops a removed container from the index.
func (m *Manager) forget(e *entry, c *Container) {
	m.containers.Delete(c.ID, e)
	m.names.Release(nameKey(c.PodID, c.Name, c.Attempt), c.ID)
	m.stats.forget(c.ID)
}
