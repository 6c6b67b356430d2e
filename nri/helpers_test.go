package nri

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// fakePods and fakeContainers stand for the managers.
type fakePods struct{ pods []*sandbox.Sandbox }

func (f *fakePods) List(sandbox.Filter) []*sandbox.Sandbox { return f.pods }

type fakeContainers struct {
	mu      sync.Mutex
	ctrs    map[string]*container.Snapshot
	applied map[string]*container.Resources
	stopped []string
}

func newFakeContainers(ctrs ...*container.Snapshot) *fakeContainers {
	f := &fakeContainers{ctrs: map[string]*container.Snapshot{}, applied: map[string]*container.Resources{}}
	for _, c := range ctrs {
		f.ctrs[c.ID] = c
	}
	return f
}

func (f *fakeContainers) List(container.Filter) []*container.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*container.Snapshot
	for _, c := range f.ctrs {
		out = append(out, c)
	}
	return out
}

func (f *fakeContainers) Get(id string) (*container.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.ctrs[id]; ok {
		return c, nil
	}
	return nil, errdefs.NotFound("container %q", id)
}

func (f *fakeContainers) ApplyResources(_ context.Context, id string, r *container.Resources) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ctrs[id]; !ok {
		return errdefs.NotFound("container %q", id)
	}
	f.applied[id] = r
	return nil
}

func (f *fakeContainers) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, id)
	return nil
}

// testPlugin records the events it sees; its behaviour is set per test.
type testPlugin struct {
	mu     sync.Mutex
	events []string
	synced chan struct{}
	// syncedPods and syncedCtrs are the ids of its first view.
	syncedPods, syncedCtrs []string

	// syncing is closed when Synchronize begins, which then takes
	// syncDelay to answer.
	syncing   chan struct{}
	syncDelay time.Duration

	failCreate bool
	adjust     func(*api.ContainerAdjustment)
	evict      []*api.ContainerEviction
}

func (p *testPlugin) record(e string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
}

func (p *testPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *testPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	if p.syncing != nil {
		close(p.syncing)
	}
	time.Sleep(p.syncDelay)
	p.mu.Lock()
	for _, pod := range pods {
		p.syncedPods = append(p.syncedPods, pod.GetId())
	}
	for _, c := range ctrs {
		p.syncedCtrs = append(p.syncedCtrs, c.GetId())
	}
	p.mu.Unlock()
	close(p.synced)
	return nil, nil
}

func (p *testPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox " + pod.GetName())
	return nil
}

func (p *testPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox " + pod.GetId())
	return nil
}

func (p *testPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox " + pod.GetId())
	return nil
}

func (p *testPlugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, overhead, resources *api.LinuxResources) error {
	p.record(fmt.Sprintf("UpdatePodSandbox %s memory=%d", pod.GetId(), resources.GetMemory().GetLimit().GetValue()))
	if p.failCreate {
		return errors.New("induced failure")
	}
	return nil
}

func (p *testPlugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record(fmt.Sprintf("PostUpdatePodSandbox %s memory=%d", pod.GetId(), pod.GetLinux().GetPodResources().GetMemory().GetLimit().GetValue()))
	return nil
}

func (p *testPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer " + c.GetName())
	if p.failCreate {
		return nil, nil, errors.New("induced failure")
	}
	a := &api.ContainerAdjustment{}
	if p.adjust != nil {
		p.adjust(a)
	}
	return a, nil, nil
}

func (p *testPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer " + c.GetId())
	return nil
}

func (p *testPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer " + c.GetId())
	return nil, nil
}

func (p *testPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer " + c.GetId())
	return nil
}

// startNRI runs an adaptation over the fakes on a private socket.
func startNRI(t *testing.T, pods Pods, ctrs Containers) (*NRI, string) {
	t.Helper()
	return startNRIWithTimeout(t, pods, ctrs, 5*time.Second)
}

func startNRIWithTimeout(t *testing.T, pods Pods, ctrs Containers, request time.Duration) (*NRI, string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	n, err := New(Options{
		RuntimeName: "crisp", RuntimeVersion: "test", SocketPath: sock,
		PluginPath: filepath.Join(dir, "plugins"), PluginConfigPath: filepath.Join(dir, "conf.d"),
		RegistrationTimeout: 5 * time.Second, RequestTimeout: request,
		Pods: pods, Containers: ctrs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n, sock
}

// connect starts p as an external plugin and waits until the adaptation
// has registered it.
func connect(t *testing.T, n *NRI, sock string, p *testPlugin) stub.Stub {
	t.Helper()
	s := startPlugin(t, sock, p)
	select {
	case <-p.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin was not synchronized")
	}
	// The adaptation holds plugin synchronization until the plugin is
	// registered; blocking it once waits for that.
	n.BlockSync()()
	return s
}

// startPlugin connects p without waiting for its synchronization.
func startPlugin(t *testing.T, sock string, p *testPlugin) stub.Stub {
	t.Helper()
	p.synced = make(chan struct{})
	s, err := stub.New(p, stub.WithSocketPath(sock), stub.WithPluginName("test"), stub.WithPluginIdx("10"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func testPod(id, name string) *sandbox.Sandbox {
	return &sandbox.Sandbox{ID: id, State: sandbox.StateReady, Config: sandbox.Config{Metadata: sandbox.Metadata{Name: name, UID: "uid-" + name, Namespace: "ns"}}}
}

func testContainer(id, podID string, st container.State) *container.Snapshot {
	return &container.Snapshot{
		Container: &container.Container{ID: id, PodID: podID, Name: "ctr-" + id},
		Status:    container.Status{State: st},
	}
}
