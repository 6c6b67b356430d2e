package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/registrar"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

func cfg(name string) *Config {
	return &Config{Name: name, Image: spec.ImageSpec{Image: testImage.ID}}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		pod  string
		cfg  *Config
		want error
	}{
		{"no pod id", "", cfg("a"), errdefs.ErrInvalidArgument},
		{"no config", "pod1", nil, errdefs.ErrInvalidArgument},
		{"no name", "pod1", &Config{Image: spec.ImageSpec{Image: "x"}}, errdefs.ErrInvalidArgument},
		{"no image", "pod1", &Config{Name: "a"}, errdefs.ErrInvalidArgument},
		{"unknown pod", "nopod", cfg("a"), errdefs.ErrNotFound},
		{"pod not ready", "notready", cfg("a"), errdefs.ErrFailedPrecondition},
		{"unknown image", "pod1", &Config{Name: "a", Image: spec.ImageSpec{Image: "nope"}}, errdefs.ErrNotFound},
		{"bad CDI device name", "pod1", &Config{Name: "a", Image: spec.ImageSpec{Image: testImage.ID}, CDIDevices: []string{"gpu0"}}, errdefs.ErrInvalidArgument},
		{"CDI disabled", "pod1", &Config{Name: "a", Image: spec.ImageSpec{Image: testImage.ID}, Annotations: map[string]string{"cdi.k8s.io/x": "vendor.example/gpu=gpu0"}}, errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Create(ctx, tc.pod, tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Failed creates leave nothing: no index entry, no record, no name.
	if n := e.m.containers.Len(); n != 0 {
		t.Fatalf("%d index entries left", n)
	}
	if ents, _ := os.ReadDir(e.opts.Root); len(ents) != 0 {
		t.Fatalf("directories left: %v", ents)
	}
	if n := e.m.names.Len(); n != 0 {
		t.Fatalf("%d names left reserved", n)
	}
}

func TestNameReservation(t *testing.T) {
	n := registrar.New("container")
	k := nameKey("pod", "c", 0)
	if err := n.Reserve(k, "id1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Reserve(k, "id1"); err != nil {
		t.Fatalf("same owner again: %v", err)
	}
	if err := n.Reserve(k, "id2"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second owner: %v", err)
	}
	if err := n.Reserve(nameKey("pod", "c", 1), "id2"); err != nil {
		t.Fatalf("next attempt: %v", err)
	}
	n.Release(k, "id2") // not the owner: no effect
	if err := n.Reserve(k, "id3"); err == nil {
		t.Fatal("release by a non-owner freed the name")
	}
	n.Release(k, "id1")
	if err := n.Reserve(k, "id3"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRollbackOnMonitorFailure(t *testing.T) {
	e := newEnv(t)
	e.rt.fail = errors.New("boom")
	// LayerDirs is /nonexistent, so the overlay mount fails before the
	// monitor: either way, everything must be rolled back.
	if _, err := e.m.Create(context.Background(), "pod1", cfg("a")); err == nil {
		t.Fatal("create succeeded")
	}
	if len(e.images.leases) != 0 {
		t.Fatalf("lease left: %v", e.images.leases)
	}
	if ents, _ := os.ReadDir(e.opts.Root); len(ents) != 0 {
		t.Fatalf("directories left: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.opts.State, "containers")); len(ents) != 0 {
		t.Fatalf("state left: %v", ents)
	}
	if _, err := e.m.Create(context.Background(), "pod1", cfg("a")); errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatal("name still reserved after rollback")
	}
}

func TestStateMachine(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.put(t, "aaaa1111", "pod1", "c", monitor.StateCreated, nil)
	sub := e.m.Subscribe()
	defer sub.Close()

	s, err := e.m.Get("aaaa")
	if err != nil || s.Status.State != StateCreated {
		t.Fatalf("Get by prefix: %v %v", s, err)
	}
	if err := e.m.Start(ctx, "aaaa1111"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, "aaaa1111"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second start: %v", err)
	}
	if s, _ := e.m.Get("aaaa1111"); s.Status.State != StateRunning {
		t.Fatalf("state %v after start", s.Status.State)
	}
	if err := e.m.Stop(ctx, "aaaa1111", time.Second); err != nil {
		t.Fatal(err)
	}
	if p.stops[0] != 15 {
		t.Fatalf("stop signal %v, want SIGTERM", p.stops[0])
	}
	// Idempotent on an exited container and for unknown ids.
	if err := e.m.Stop(ctx, "aaaa1111", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, "unknown", time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the exit to be recorded", 5*time.Second, func() bool { s, _ := e.m.Get("aaaa1111"); return s.Exit != nil })
	s, _ = e.m.Get("aaaa1111")
	if s.Status.State != StateExited || s.Status.ExitCode != 143 || s.Status.Reason != monitor.ReasonError {
		t.Fatalf("status after stop: %+v", s.Status)
	}
	if err := e.m.Start(ctx, "aaaa1111"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("start of exited container: %v", err)
	}
	if err := e.m.Remove(ctx, "aaaa1111"); err != nil {
		t.Fatal(err)
	}
	if !p.destroyed {
		t.Fatal("monitor not destroyed")
	}
	if _, err := e.m.Get("aaaa1111"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after remove: %v", err)
	}
	if err := e.m.Remove(ctx, "aaaa1111"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := os.Stat(e.m.store.dir("aaaa1111")); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	var got []EventType
	for len(got) < 3 {
		select {
		case ev := <-sub.C():
			got = append(got, ev.Type)
		case <-time.After(5 * time.Second):
			t.Fatalf("events %v", got)
		}
	}
	if got[0] != EventStarted || got[1] != EventStopped || got[2] != EventDeleted {
		t.Fatalf("events %v", got)
	}
}

func TestCreatedContainerStopsWithSIGKILL(t *testing.T) {
	e := newEnv(t)
	p := e.put(t, "bbbb", "pod1", "c", monitor.StateCreated, nil)
	if err := e.m.Stop(context.Background(), "bbbb", time.Minute); err != nil {
		t.Fatal(err)
	}
	if len(p.stops) != 1 || p.stops[0] != 9 {
		t.Fatalf("stops %v", p.stops)
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t)
	e.put(t, "c1aaaa", "pod1", "a", monitor.StateRunning, map[string]string{"app": "x"})
	e.put(t, "c2bbbb", "pod1", "b", monitor.StateExited, map[string]string{"app": "y"})
	e.put(t, "c3cccc", "pod2", "c", monitor.StateRunning, map[string]string{"app": "x"})
	running, exited := StateRunning, StateExited
	ids := func(f Filter) string {
		var out []string
		for _, s := range e.m.List(f) {
			out = append(out, s.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "c1aaaa,c2bbbb,c3cccc"},
		{Filter{ID: "c2"}, "c2bbbb"},
		{Filter{ID: "c"}, ""}, // ambiguous prefix
		{Filter{ID: "zz"}, ""},
		{Filter{ID: "c1aaaa", PodID: "pod2"}, ""},
		{Filter{PodID: "pod1"}, "c1aaaa,c2bbbb"},
		{Filter{State: &running}, "c1aaaa,c3cccc"},
		{Filter{State: &exited}, "c2bbbb"},
		{Filter{LabelSelector: map[string]string{"app": "x"}}, "c1aaaa,c3cccc"},
		{Filter{LabelSelector: map[string]string{"app": "x"}, PodID: "pod2"}, "c3cccc"},
		{Filter{LabelSelector: map[string]string{"nope": ""}}, ""},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("List(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
	if _, err := e.m.Get("c"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ambiguous Get: %v", err)
	}
}

func TestRecoveryRollsBackInterruptedCreate(t *testing.T) {
	e := newEnv(t)
	c := &Container{ID: "dead", PodID: "pod1", Name: "c", Phase: PhaseCreating, Rootfs: e.m.rootfsDir("dead"), Config: *cfg("c")}
	if err := e.m.store.save(c); err != nil {
		t.Fatal(err)
	}
	e.images.Lease("dead", testImage.ID)
	// And an orphan directory, as an interrupted Remove leaves it.
	os.MkdirAll(filepath.Join(e.opts.Root, "orphan", "fs", "upper"), 0o755)
	e.images.Lease("orphan", testImage.ID)
	e.m.Close()
	e.start(t)
	if len(e.m.List(Filter{})) != 0 {
		t.Fatal("interrupted create was listed")
	}
	if ents, _ := os.ReadDir(e.opts.Root); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
	if len(e.images.leases) != 0 {
		t.Fatalf("leases left: %v", e.images.leases)
	}
	// The name is free again.
	if err := e.m.names.Reserve(nameKey("pod1", "c", 0), "new"); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryKeepsExitAndName(t *testing.T) {
	e := newEnv(t)
	p := e.put(t, "eeee", "pod1", "c", monitor.StateRunning, nil)
	p.exit(3, monitor.ReasonError)
	testutil.WaitFor(t, "the exit to be recorded", 5*time.Second, func() bool { s, _ := e.m.Get("eeee"); return s.Exit != nil })
	s, err := e.m.Get("eeee")
	if err != nil || s.Status.State != StateExited || s.Status.ExitCode != 3 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := e.m.Create(context.Background(), "pod1", cfg("c")); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("name of a recovered container: %v", err)
	}
}

func TestPodHooks(t *testing.T) {
	e := newEnv(t)
	p1 := e.put(t, "p1c1", "pod1", "a", monitor.StateRunning, nil)
	p2 := e.put(t, "p1c2", "pod1", "b", monitor.StateRunning, nil)
	p3 := e.put(t, "p2c1", "pod2", "c", monitor.StateRunning, nil)
	if err := e.m.StopPodContainers(context.Background(), "pod1", 0); err != nil {
		t.Fatal(err)
	}
	if p1.Status().State != monitor.StateExited || p2.Status().State != monitor.StateExited {
		t.Fatal("pod containers not stopped")
	}
	if p3.Status().State != monitor.StateRunning {
		t.Fatal("other pod's container stopped")
	}
	if err := e.m.RemovePodContainers(context.Background(), "pod1"); err != nil {
		t.Fatal(err)
	}
	if got := len(e.m.List(Filter{})); got != 1 {
		t.Fatalf("%d containers left, want 1", got)
	}
}

func TestExecSync(t *testing.T) {
	e := newEnv(t)
	p := e.put(t, "x1", "pod1", "c", monitor.StateRunning, nil)
	ctx := context.Background()
	if _, err := e.m.ExecSync(ctx, "x1", nil, 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty cmd: %v", err)
	}
	// The record has no process spec in this test.
	if _, err := e.m.ExecSync(ctx, "x1", []string{"true"}, 0); err == nil {
		t.Fatal("exec without a process spec succeeded")
	}
	en, _ := e.m.lookup("x1")
	c := en.Load().clone()
	c.Process = &specsProcess
	en.Store(c)
	p.execOut, p.execCode = "hi", 7
	res, err := e.m.ExecSync(ctx, "x1", []string{"echo", "hi"}, 0)
	if err != nil || string(res.Stdout) != "hi" || res.ExitCode != 7 {
		t.Fatalf("%+v %v", res, err)
	}
	// The fake blocks until its context ends: only the 1 s exec timeout
	// can end it here.
	p.execBlock = true
	_, err = e.m.ExecSync(ctx, "x1", []string{"sleep", "9"}, time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	p.exit(0, monitor.ReasonCompleted)
	if _, err := e.m.ExecSync(ctx, "x1", []string{"true"}, 0); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("exec in exited container: %v", err)
	}
	testutil.WaitFor(t, "the exit to be recorded", 5*time.Second, func() bool { s, _ := e.m.Get("x1"); return s.Exit != nil })
}

// A created container of a pod that is no longer ready does not start: its
// pod is being (or was) torn down, so it would run without its namespaces.
func TestStartRefusedInPodNotReady(t *testing.T) {
	e := newEnv(t)
	e.put(t, "cccc", "notready", "c", monitor.StateCreated, nil)
	err := e.m.Start(context.Background(), "cccc")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("Start in a pod not ready: %v, want FailedPrecondition", err)
	}
}

// A directory a container planted under the pod's log directory (a
// symlink out of it) does not lead crisp to create directories elsewhere.
func TestLogDirNotLedOutBySymlink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "ctr")); err != nil {
		t.Fatal(err)
	}
	err := makeLogDir(dir, "ctr/sub/0.log")
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("created outside the log directory: %v (err %v)", ents, err)
	}
	if err := makeLogDir(dir, "real/0.log"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "real")); err != nil || !fi.IsDir() {
		t.Fatalf("log directory not made: %v", err)
	}
}
