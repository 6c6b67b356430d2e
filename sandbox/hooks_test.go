package sandbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// recordingHooks records hook calls and fails RunPod while failRun is set.
type recordingHooks struct {
	mu      sync.Mutex
	calls   []string
	failRun bool
	blocked int
}

func (h *recordingHooks) record(call string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, call)
}

func (h *recordingHooks) BlockSync() func() {
	h.mu.Lock()
	h.blocked++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.blocked--
		h.mu.Unlock()
	}
}

func (h *recordingHooks) RunPod(_ context.Context, sb *Sandbox) error {
	h.record("run " + sb.Config.Metadata.Name)
	if h.failRun {
		return errors.New("induced failure")
	}
	return nil
}

func (h *recordingHooks) StopPod(_ context.Context, sb *Sandbox) {
	h.record("stop " + sb.Config.Metadata.Name)
}

func (h *recordingHooks) RemovePod(_ context.Context, sb *Sandbox) {
	h.record("remove " + sb.Config.Metadata.Name)
}

func (h *recordingHooks) UpdatePod(_ context.Context, sb *Sandbox, _, r *Resources) error {
	h.record("update " + sb.Config.Metadata.Name)
	if h.failRun {
		return errors.New("induced failure")
	}
	return nil
}

func (h *recordingHooks) PostUpdatePod(_ context.Context, sb *Sandbox) {
	h.record("post-update " + sb.Config.Metadata.Name)
}

func (m *Manager) mustGet(t *testing.T, id string) *Sandbox {
	t.Helper()
	sb, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func hostPodConfig(name string) Config {
	return Config{
		Metadata:   Metadata{Name: name, UID: "uid-" + name, Namespace: "ns"},
		Namespaces: NamespaceOptions{Network: ModeNode, PID: ModeNode, IPC: ModeNode},
	}
}

func TestHooksSeePodLifecycleAndCanFailRun(t *testing.T) {
	m := testManager(t, nil)
	h := &recordingHooks{}
	m.SetHooks(h)
	ctx := context.Background()

	a, err := m.Run(ctx, hostPodConfig("a"))
	if err != nil {
		t.Fatal(err)
	}

	h.failRun = true
	if _, err := m.Run(ctx, hostPodConfig("b")); err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Fatalf("Run with a failing hook: %v", err)
	}
	// The rollback removes b only: a's record and files stay.
	if !m.podDirExists(a) {
		t.Fatalf("rolling back b removed pod a's directory")
	}
	if pods := m.List(Filter{}); len(pods) != 1 || pods[0].ID != a {
		t.Fatalf("pods after a failed run: %v", pods)
	}
	h.failRun = false
	b, err := m.Run(ctx, hostPodConfig("b"))
	if err != nil {
		t.Fatalf("retry after a failed hook: %v", err)
	}

	// A refused update leaves the recorded resources alone.
	h.failRun = true
	if err := m.UpdateResources(ctx, a, nil, &Resources{MemoryLimit: 1 << 30}); err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Fatalf("UpdateResources with a failing hook: %v", err)
	}
	if r := m.mustGet(t, a).Config.Resources; r != nil {
		t.Fatalf("refused update recorded: %+v", r)
	}
	h.failRun = false
	if err := m.UpdateResources(ctx, a, nil, &Resources{MemoryLimit: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if r := m.mustGet(t, a).Config.Resources; r == nil || r.MemoryLimit != 1<<30 {
		t.Fatalf("update not recorded: %+v", r)
	}

	for range 2 {
		if err := m.Stop(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, b); err != nil {
		t.Fatal(err)
	}
	want := []string{"run a", "run b", "run b", "update a", "update a", "post-update a", "stop a", "stop a", "stop a", "remove a", "stop b", "remove b"}
	if strings.Join(h.calls, ",") != strings.Join(want, ",") {
		t.Errorf("hook calls:\n got %v\nwant %v", h.calls, want)
	}
	if h.blocked != 0 {
		t.Errorf("%d BlockSync calls not undone", h.blocked)
	}
}
