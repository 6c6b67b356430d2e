package sandbox

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/errdefs"
)

func TestStopAndRemoveUnknownSucceed(t *testing.T) {
	m := testManager(t, &fakeNetwork{})
	ctx := context.Background()
	if err := m.Stop(ctx, "nope"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := m.Remove(ctx, "nope"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := m.Get("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get: %v, want NotFound", err)
	}
}

func TestFailedTeardownIsRetried(t *testing.T) {
	net := &fakeNetwork{failDel: 1}
	m := testManager(t, net)
	ctx := context.Background()
	sb := pod("p1", "web", StateReady, nil)
	sb.Network = PodNetwork{IPs: []string{"10.0.0.2"}, Attached: true}
	addPod(t, m, sb)

	if err := m.Stop(ctx, "p1"); err == nil {
		t.Fatal("Stop hid a failed CNI DEL")
	}
	got, _ := m.Get("p1")
	if got.State != StateNotReady || !got.Network.Attached {
		t.Fatalf("after failed DEL: state %s attached %v", got.State, got.Network.Attached)
	}
	// The flag is persisted, so a restart would retry too.
	if rec, err := m.store.load("p1"); err != nil || !rec.Network.Attached {
		t.Fatalf("persisted record: %+v, %v", rec, err)
	}
	if err := m.Stop(ctx, "p1"); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if got, _ := m.Get("p1"); got.Network.Attached {
		t.Fatal("DEL succeeded but the pod still counts as attached")
	}
	// A third Stop has nothing left to tear down.
	if err := m.Stop(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if len(net.teardowns) != 2 {
		t.Fatalf("teardowns = %v, want 2", net.teardowns)
	}
}

func TestRemoveRetriesTeardownAndReleasesName(t *testing.T) {
	net := &fakeNetwork{failDel: 1}
	m := testManager(t, net)
	ctx := context.Background()
	sb := pod("p1", "web", StateReady, nil)
	sb.Network.Attached = true
	addPod(t, m, sb)

	if err := m.Remove(ctx, "p1"); err == nil {
		t.Fatal("Remove succeeded although the network could not be torn down")
	}
	if _, err := m.Get("p1"); err != nil {
		t.Fatalf("pod vanished after a failed Remove: %v", err)
	}
	if err := m.Remove(ctx, "p1"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if _, err := m.Get("p1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if m.podDirExists("p1") {
		t.Fatal("record left on disk")
	}
	if err := m.names.Reserve(nameKey(sb.Config.Metadata), "p2"); err != nil {
		t.Fatalf("name not released: %v", err)
	}
}

type recordingStopper struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingStopper) StopPodContainers(_ context.Context, id string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "stop "+id)
	return nil
}

func (r *recordingStopper) RemovePodContainers(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "remove "+id)
	return nil
}

func TestContainerHook(t *testing.T) {
	m := testManager(t, &fakeNetwork{})
	cs := &recordingStopper{}
	m.SetContainerStopper(cs)
	addPod(t, m, pod("p1", "web", StateReady, nil))
	ctx := context.Background()
	if err := m.Stop(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop p1", "stop p1", "stop p1", "remove p1"}
	if len(cs.calls) != len(want) {
		t.Fatalf("calls = %v, want %v", cs.calls, want)
	}
	for i := range want {
		if cs.calls[i] != want[i] {
			t.Fatalf("calls = %v, want %v", cs.calls, want)
		}
	}
}

func TestUpdateResources(t *testing.T) {
	m := testManager(t, nil)
	addPod(t, m, pod("p1", "web", StateReady, nil))
	ctx := context.Background()
	if err := m.UpdateResources(ctx, "p1", nil, &Resources{OOMScoreAdj: 5000}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("invalid resources: %v", err)
	}
	if err := m.UpdateResources(ctx, "p1", &Resources{CPUShares: 10}, &Resources{MemoryLimit: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Get("p1")
	if got.Config.Overhead.CPUShares != 10 || got.Config.Resources.MemoryLimit != 1<<20 {
		t.Fatalf("not recorded: %+v %+v", got.Config.Overhead, got.Config.Resources)
	}
	rec, _ := m.store.load("p1")
	if rec.Config.Resources == nil || rec.Config.Resources.MemoryLimit != 1<<20 {
		t.Fatal("not persisted")
	}
	if err := m.UpdateResources(ctx, "nope", nil, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown pod: %v", err)
	}
}

func TestSnapshotsAreImmutable(t *testing.T) {
	m := testManager(t, &fakeNetwork{})
	sb := pod("p1", "web", StateReady, nil)
	sb.Network.Attached = true
	sb.Namespaces = map[string]string{}
	addPod(t, m, sb)
	before, _ := m.Get("p1")
	if err := m.Stop(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if before.State != StateReady || !before.Network.Attached {
		t.Fatal("Stop modified a snapshot handed out earlier")
	}
}

func TestRunRejectsInvalidConfigWithoutSideEffects(t *testing.T) {
	m := testManager(t, &fakeNetwork{})
	_, err := m.Run(context.Background(), Config{Metadata: Metadata{Name: "x", Namespace: "y"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Run: %v", err)
	}
	if pods, orphans, _ := m.store.loadAll(); len(pods)+len(orphans) != 0 {
		t.Fatal("an invalid Run left a record")
	}
}

// raceStopper is the container manager's side of a pod stop with a
// CreateContainer arriving just after the stop listed the pod's
// containers: the create checks the pod (as container.Create does, after
// indexing its container) and would create if it found it ready.
type raceStopper struct {
	m           *Manager
	createdInto []State // pod state each racing create saw
}

func (r *raceStopper) StopPodContainers(_ context.Context, id string, _ time.Duration) error {
	sb, err := r.m.Get(id)
	if err != nil {
		return err
	}
	r.createdInto = append(r.createdInto, sb.State)
	return nil
}

func (r *raceStopper) RemovePodContainers(context.Context, string) error { return nil }

// TestStopClosesThePodBeforeListingContainers: a CreateContainer that
// checks the pod after the stop listed its containers must find it not
// ready; one that checked before is in the list and is stopped. Otherwise
// a container is created (and may start) in a pod being torn down.
func TestStopClosesThePodBeforeListingContainers(t *testing.T) {
	m := testManager(t, &fakeNetwork{})
	rs := &raceStopper{m: m}
	m.SetContainerStopper(rs)
	addPod(t, m, pod("p1", "web", StateReady, nil))
	if err := m.Stop(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if len(rs.createdInto) != 1 || rs.createdInto[0] != StateNotReady {
		t.Fatalf("a create racing the stop found the pod %v; want it not ready", rs.createdInto)
	}
	// Memory and disk agree while the stop is under way.
	if rec, err := m.store.load("p1"); err != nil || rec.State != StateNotReady {
		t.Fatalf("persisted record: %+v, %v", rec, err)
	}
}
