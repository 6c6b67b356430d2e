package nri

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/sandbox"
)

func TestLifecycleEventsInOrderAndOnce(t *testing.T) {
	n, sock := startNRI(t, &fakePods{}, newFakeContainers())
	p := &testPlugin{adjust: func(a *api.ContainerAdjustment) { a.AddEnv("INJECTED", "yes") }}
	connect(t, n, sock, p)
	ctx := context.Background()
	pod := testPod("pod1", "web")

	if err := n.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	c := testContainer("c1", "pod1", container.StateUnknown)
	s := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}, Env: []string{"PATH=/bin"}}}
	if err := n.CreateContainer(ctx, pod, c.Container, s); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "INJECTED=yes") {
		t.Errorf("adjusted env: %v", s.Process.Env)
	}
	c.Status.State = container.StateCreated
	if err := n.StartContainer(ctx, pod, c); err != nil {
		t.Fatal(err)
	}
	c.Status.State = container.StateExited
	// The stop is reported by the stop itself and by the exit watcher.
	n.StopContainer(ctx, pod, c)
	n.StopContainer(ctx, pod, c)
	n.RemoveContainer(ctx, pod, c)
	n.StopPod(ctx, pod)
	n.StopPod(ctx, pod)
	n.RemovePod(ctx, pod)

	want := []string{
		"RunPodSandbox web", "CreateContainer ctr-c1", "StartContainer c1", "StopContainer c1",
		"RemoveContainer c1", "StopPodSandbox pod1", "RemovePodSandbox pod1",
	}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

func TestRemoveWithoutStopTellsStopFirst(t *testing.T) {
	n, sock := startNRI(t, &fakePods{}, newFakeContainers())
	p := &testPlugin{}
	connect(t, n, sock, p)
	ctx := context.Background()
	c := testContainer("c1", "gone-pod", container.StateUnknown)
	if err := n.CreateContainer(ctx, nil, c.Container, &specs.Spec{Process: &specs.Process{}}); err != nil {
		t.Fatal(err)
	}
	n.RemoveContainer(ctx, nil, c)
	want := []string{"CreateContainer ctr-c1", "StopContainer c1", "RemoveContainer c1"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

func TestFailedCreateIsUndoneForPlugins(t *testing.T) {
	n, sock := startNRI(t, &fakePods{}, newFakeContainers())
	p := &testPlugin{failCreate: true}
	connect(t, n, sock, p)
	c := testContainer("c1", "pod1", container.StateUnknown)
	err := n.CreateContainer(context.Background(), testPod("pod1", "web"), c.Container, &specs.Spec{Process: &specs.Process{}})
	if err == nil || !strings.Contains(err.Error(), "induced failure") || !strings.Contains(err.Error(), "ctr-c1") {
		t.Fatalf("CreateContainer: %v", err)
	}
	want := []string{"CreateContainer ctr-c1", "StopContainer c1", "RemoveContainer c1"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

func TestAdjustmentThatCannotApplyFailsCreate(t *testing.T) {
	n, sock := startNRI(t, &fakePods{}, newFakeContainers())
	p := &testPlugin{adjust: func(a *api.ContainerAdjustment) { a.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/gpu=0"}) }}
	connect(t, n, sock, p)
	c := testContainer("c1", "pod1", container.StateUnknown)
	err := n.CreateContainer(context.Background(), testPod("pod1", "web"), c.Container, &specs.Spec{Process: &specs.Process{}})
	if err == nil || !strings.Contains(err.Error(), "CDI") {
		t.Fatalf("CreateContainer: %v", err)
	}
	if got := p.seen(); !slices.Contains(got, "RemoveContainer c1") {
		t.Errorf("plugin was not told of the rollback: %v", got)
	}
}

func TestSynchronizeSeesPodsAndLiveContainers(t *testing.T) {
	pods := &fakePods{pods: []*sandbox.Sandbox{testPod("p1", "a")}}
	run := testContainer("run", "p1", container.StateRunning)
	ctrs := newFakeContainers(run, testContainer("new", "p1", container.StateCreated), testContainer("done", "p1", container.StateExited))
	n, sock := startNRI(t, pods, ctrs)
	p := &testPlugin{}
	connect(t, n, sock, p)
	slices.Sort(p.syncedCtrs)
	if !slices.Equal(p.syncedPods, []string{"p1"}) || !slices.Equal(p.syncedCtrs, []string{"new", "run"}) {
		t.Fatalf("first view: pods %v, containers %v", p.syncedPods, p.syncedCtrs)
	}
	// What existed before the plugin connected is stopped once for it too.
	ctx := context.Background()
	n.StopContainer(ctx, pods.pods[0], run)
	n.StopContainer(ctx, pods.pods[0], run)
	n.StopPod(ctx, pods.pods[0])
	n.StopPod(ctx, pods.pods[0])
	want := []string{"StopContainer run", "StopPodSandbox p1"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

func TestUpdatesFromPluginsMergeIntoCurrentResources(t *testing.T) {
	c1 := testContainer("c1", "p1", container.StateRunning)
	ctrs := newFakeContainers(c1)
	n, sock := startNRI(t, &fakePods{}, ctrs)
	s := connect(t, n, sock, &testPlugin{})

	u := &api.ContainerUpdate{}
	u.SetContainerId("c1")
	u.SetLinuxMemoryLimit(1 << 30)
	missing := &api.ContainerUpdate{}
	missing.SetContainerId("nope")
	missing.SetLinuxCPUShares(2)
	ignored := &api.ContainerUpdate{}
	ignored.SetContainerId("nope-either")
	ignored.SetLinuxCPUShares(2)
	ignored.SetIgnoreFailure()
	failed, err := s.UpdateContainers([]*api.ContainerUpdate{u, missing, ignored})
	if len(failed) != 1 || failed[0].GetContainerId() != "nope" {
		t.Errorf("failed updates: %v (%v)", failed, err)
	}
	if r := ctrs.applied["c1"]; r == nil || r.MemoryLimit != 1<<30 {
		t.Errorf("applied: %v", r)
	}
}

func TestEvictionStopsContainers(t *testing.T) {
	ctrs := newFakeContainers(testContainer("c1", "p1", container.StateRunning))
	n := &NRI{containers: ctrs, state: map[string]state{}}
	n.sideEffects(nil, []*api.ContainerEviction{{ContainerId: "c1", Reason: "test"}})
	n.wg.Wait()
	if !slices.Equal(ctrs.stopped, []string{"c1"}) {
		t.Errorf("stopped: %v", ctrs.stopped)
	}
}

func TestPodResourceUpdateRelayedAndRefusable(t *testing.T) {
	n, sock := startNRI(t, &fakePods{}, newFakeContainers())
	p := &testPlugin{}
	connect(t, n, sock, p)
	ctx := context.Background()
	pod := testPod("pod1", "web")
	if err := n.UpdatePod(ctx, pod, nil, &sandbox.Resources{MemoryLimit: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	updated := *pod
	updated.Config.Resources = &sandbox.Resources{MemoryLimit: 1 << 20}
	n.PostUpdatePod(ctx, &updated)
	p.failCreate = true
	if err := n.UpdatePod(ctx, pod, nil, &sandbox.Resources{MemoryLimit: 2 << 20}); err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Errorf("refused update: %v", err)
	}
	want := []string{"UpdatePodSandbox pod1 memory=1048576", "PostUpdatePodSandbox pod1 memory=1048576", "UpdatePodSandbox pod1 memory=2097152"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

// A plugin whose first Synchronize takes longer than one event may take
// (critest holds it open for 2 s, the default request timeout) stays
// connected, and a container created meanwhile reaches it: in its first
// view or as a CreateContainer event after it.
func TestContainerCreatedDuringSlowSynchronizeIsNotLost(t *testing.T) {
	const request = 200 * time.Millisecond
	pod := testPod("p1", "a")
	ctrs := newFakeContainers()
	n, sock := startNRIWithTimeout(t, &fakePods{pods: []*sandbox.Sandbox{pod}}, ctrs, request)
	p := &testPlugin{syncing: make(chan struct{}), syncDelay: 5 * request}
	startPlugin(t, sock, p)
	select {
	case <-p.syncing:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin was not asked to synchronize")
	}
	// What CreateContainer does: block plugin synchronization, tell the
	// plugins, and be listed before unblocking.
	created := make(chan error, 1)
	go func() {
		unblock := n.BlockSync()
		defer unblock()
		c := testContainer("c2", "p1", container.StateUnknown)
		s := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}}
		err := n.CreateContainer(context.Background(), pod, c.Container, s)
		c.Status.State = container.StateCreated
		ctrs.mu.Lock()
		ctrs.ctrs[c.ID] = c
		ctrs.mu.Unlock()
		created <- err
	}()
	select {
	case <-p.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin did not finish synchronizing")
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	inView := slices.Contains(p.syncedCtrs, "c2")
	p.mu.Unlock()
	if !inView && !slices.Contains(p.seen(), "CreateContainer ctr-c2") {
		t.Fatalf("the plugin never heard of the container created while it synchronized; events %v", p.seen())
	}
}
