package container

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/sandbox"
)

// fakeProc is a Process whose state the test drives.
type fakeProc struct {
	mu        sync.Mutex
	st        monitor.Status
	done      chan struct{}
	destroyed bool
	stops     []syscall.Signal
	updates   []*specs.LinuxResources
	execCode  int
	execOut   string
	execBlock bool
}

func newFakeProc(state monitor.State) *fakeProc {
	p := &fakeProc{st: monitor.Status{State: state, Pid: 4242, CreatedAt: time.Now()}, done: make(chan struct{})}
	if state == monitor.StateExited {
		close(p.done)
	}
	return p
}

func (p *fakeProc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.State != monitor.StateCreated {
		return errors.New("not created")
	}
	p.st.State, p.st.StartedAt = monitor.StateRunning, time.Now()
	return nil
}

func (p *fakeProc) Status() monitor.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

func (p *fakeProc) Wait() <-chan struct{} { return p.done }

func (p *fakeProc) exit(code int, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	p.st.State, p.st.ExitCode, p.st.Reason, p.st.FinishedAt = monitor.StateExited, code, reason, time.Now()
	close(p.done)
}

func (p *fakeProc) Stop(_ context.Context, sig syscall.Signal, _ time.Duration) error {
	p.mu.Lock()
	p.stops = append(p.stops, sig)
	p.mu.Unlock()
	p.exit(128+int(sig), monitor.ReasonError)
	return nil
}

func (p *fakeProc) Destroy() error {
	p.exit(137, monitor.ReasonError)
	p.mu.Lock()
	p.destroyed = true
	p.mu.Unlock()
	return nil
}

func (p *fakeProc) Update(r *specs.LinuxResources) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.updates = append(p.updates, r)
	return nil
}

func (p *fakeProc) Attach(ctx context.Context, _ io.Reader, _, _ io.Writer, _ <-chan monitor.TermSize) error {
	<-ctx.Done()
	return ctx.Err()
}

func (p *fakeProc) Exec(ctx context.Context, sp *specs.Process, _ io.Reader, stdout, _ io.Writer, _ bool, _ <-chan monitor.TermSize) (int, error) {
	if p.execBlock {
		<-ctx.Done()
		return -1, ctx.Err()
	}
	io.WriteString(stdout, p.execOut)
	return p.execCode, nil
}

func (p *fakeProc) ReopenLog() error     { return nil }
func (p *fakeProc) MonitorRunning() bool { return p.Status().State != StateExited }
func (p *fakeProc) Stats() (*monitor.Stats, error) {
	return &monitor.Stats{Timestamp: time.Now(), CPUUsageNanos: 1000, MemoryUsageBytes: 2048, MemoryWorkingSetBytes: 1024}, nil
}
func (p *fakeProc) Usage() (*monitor.Stats, error) { return p.Stats() }

// fakeRuntime hands out fakeProcs; Load finds them by bundle.
type fakeRuntime struct {
	mu      sync.Mutex
	procs   map[string]*fakeProc // bundle -> proc
	created []monitor.Config
	fail    error
}

func (r *fakeRuntime) Create(_ context.Context, cfg monitor.Config) (Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	p := newFakeProc(monitor.StateCreated)
	r.procs[cfg.Bundle] = p
	r.created = append(r.created, cfg)
	return p, nil
}

func (r *fakeRuntime) Load(bundle, _ string) (Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.procs[bundle]; ok {
		return p, nil
	}
	return nil, errors.New("no monitor")
}

type fakeImages struct {
	mu     sync.Mutex
	leases map[string]string
	// layers are the test image's layer directories; none exist unless
	// a test sets them.
	layers []string
}

var testImage = &image.Image{
	ID:          "sha256:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12",
	RepoTags:    []string{"registry.k8s.io/busybox:1"},
	RepoDigests: []string{"registry.k8s.io/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000001"},
}

func (f *fakeImages) Get(ref string) (*image.Image, error) {
	if ref == testImage.ID || ref == testImage.RepoTags[0] {
		return testImage, nil
	}
	return nil, errdefs.NotFound("image %q", ref)
}
func (f *fakeImages) LayerDirs(string) ([]string, error) {
	if f.layers == nil {
		return []string{"/nonexistent"}, nil
	}
	return f.layers, nil
}
func (f *fakeImages) Lease(owner, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases[owner] = ref
	return nil
}
func (f *fakeImages) LeaseMounted(owner, ref string) error { return f.Lease(owner, ref) }
func (f *fakeImages) LeaseDeferred(owner, ref string) (func() error, error) {
	return func() error { return nil }, f.Lease(owner, ref)
}
func (f *fakeImages) Unlease(owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.leases, owner)
	return nil
}

type fakeSandboxes struct{ pods map[string]*sandbox.Sandbox }

func (f *fakeSandboxes) Get(id string) (*sandbox.Sandbox, error) {
	if sb, ok := f.pods[id]; ok {
		return sb, nil
	}
	return nil, errdefs.NotFound("pod %q", id)
}

type env struct {
	m      *Manager
	rt     *fakeRuntime
	images *fakeImages
	pods   *fakeSandboxes
	opts   Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		rt:     &fakeRuntime{procs: map[string]*fakeProc{}},
		images: &fakeImages{leases: map[string]string{}},
		pods: &fakeSandboxes{pods: map[string]*sandbox.Sandbox{
			"pod1":     {ID: "pod1", State: sandbox.StateReady},
			"notready": {ID: "notready", State: sandbox.StateNotReady},
		}},
	}
	e.opts = Options{Root: dir + "/root", State: dir + "/state", Images: e.images, Sandboxes: e.pods, Runtime: e.rt, StatsInterval: -1}
	e.start(t)
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	m, err := New(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	e.m = m
}

// put records a container as if created by an earlier daemon, with a fake
// monitor in state st, and restarts the manager to load it.
func (e *env) put(t *testing.T, id, pod, name string, st monitor.State, labels map[string]string) *fakeProc {
	t.Helper()
	c := &Container{ID: id, PodID: pod, Name: name, Phase: PhaseCreated, CreatedAt: time.Now(), Image: ImageInfo{ID: testImage.ID, Ref: testImage.ID, Name: "busybox"}, Rootfs: e.m.rootfsDir(id),
		Config: Config{Name: name, Labels: labels}}
	if err := e.m.store.save(c); err != nil {
		t.Fatal(err)
	}
	p := newFakeProc(st)
	e.rt.procs[e.m.bundleDir(id)] = p
	e.m.Close()
	e.start(t)
	return p
}
