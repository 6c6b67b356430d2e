package container

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/sandbox"
)

// recordingHooks records the calls; failStart makes StartContainer fail and
// cpuShares replaces the shares of every update.
type recordingHooks struct {
	noHooks
	mu        sync.Mutex
	calls     []string
	failStart bool
	cpuShares int64
}

func (h *recordingHooks) record(call string, c *Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, call+" "+c.Status.State.String())
}

func (h *recordingHooks) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *recordingHooks) StartContainer(_ context.Context, _ *sandbox.Sandbox, c *Snapshot) error {
	h.record("start", c)
	if h.failStart {
		return errors.New("induced failure")
	}
	return nil
}

func (h *recordingHooks) PostStartContainer(_ context.Context, _ *sandbox.Sandbox, c *Snapshot) {
	h.record("poststart", c)
}

func (h *recordingHooks) UpdateContainer(_ context.Context, _ *sandbox.Sandbox, c *Snapshot, r *Resources) (*Resources, error) {
	h.record("update", c)
	r.CPUShares = h.cpuShares
	return r, nil
}

func (h *recordingHooks) PostUpdateContainer(_ context.Context, _ *sandbox.Sandbox, c *Snapshot) {
	h.record("postupdate", c)
}

func (h *recordingHooks) StopContainer(_ context.Context, _ *sandbox.Sandbox, c *Snapshot) {
	h.record("stop", c)
}

func (h *recordingHooks) RemoveContainer(_ context.Context, _ *sandbox.Sandbox, c *Snapshot) {
	h.record("remove", c)
}

func TestHooksSeeLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pods.pods["shared"] = &sandbox.Sandbox{ID: "shared", State: sandbox.StateReady, Namespaces: map[string]string{sandbox.NSPID: "/proc/1/ns/pid"}}
	p := e.put(t, "aaaa1111", "shared", "c", monitor.StateCreated, nil)
	// UpdateResources regenerates the spec, which needs a command.
	en, _ := e.m.containers.Get("aaaa1111")
	c := en.Load().clone()
	c.Process = &specs.Process{Args: []string{"sleep", "1d"}}
	en.Store(c)
	h := &recordingHooks{failStart: true, cpuShares: 512}
	e.m.SetHooks(h)

	if err := e.m.Start(ctx, "aaaa1111"); err == nil {
		t.Fatal("start succeeded although a hook failed it")
	}
	if s, _ := e.m.Get("aaaa1111"); s.Status.State != StateCreated {
		t.Fatalf("state %v after a refused start", s.Status.State)
	}
	h.failStart = false
	if err := e.m.Start(ctx, "aaaa1111"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.UpdateResources(ctx, "aaaa1111", &Resources{CPUShares: 2}); err != nil {
		t.Fatal(err)
	}
	// Updates the hooks ask for themselves do not go through them again.
	if err := e.m.ApplyResources(ctx, "aaaa1111", &Resources{CPUShares: 1024}); err != nil {
		t.Fatal(err)
	}
	var shares []uint64
	for _, u := range p.updates {
		shares = append(shares, *u.CPU.Shares)
	}
	if !slices.Equal(shares, []uint64{512, 1024}) {
		t.Errorf("cpu shares applied: %v", shares)
	}
	if err := e.m.Stop(ctx, "aaaa1111", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, "aaaa1111"); err != nil {
		t.Fatal(err)
	}
	want := []string{"start created", "start created", "poststart running", "update running", "postupdate running", "stop exited"}
	got := h.seen()
	if len(got) < 7 || !slices.Equal(got[:6], want) || !slices.Contains(got[6:], "remove exited") {
		t.Errorf("hook calls:\n got %v\nwant %v, then remove", got, want)
	}
}

var _ Hooks = (*recordingHooks)(nil)
