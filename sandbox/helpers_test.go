package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/internal/registrar"
	"github.com/crisp-runtime/crisp/network"
)

// fakeNetwork records calls and fails Teardown while failDel > 0.
type fakeNetwork struct {
	mu        sync.Mutex
	setups    []string
	teardowns []string
	gcKeep    []string
	failDel   int
}

func (f *fakeNetwork) Setup(_ context.Context, p network.Pod) (*network.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setups = append(f.setups, p.ID)
	return &network.Result{IPs: []string{"10.0.0.2"}, Interfaces: []string{"eth0"}, Network: "fake"}, nil
}

func (f *fakeNetwork) Teardown(_ context.Context, p network.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.teardowns = append(f.teardowns, p.ID)
	if f.failDel > 0 {
		f.failDel--
		return errors.New("plugin exploded")
	}
	return nil
}

func (f *fakeNetwork) GC(_ context.Context, keep []network.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range keep {
		f.gcKeep = append(f.gcKeep, p.ID)
	}
	return nil
}

// testManager is a Manager over temporary directories with no real
// hierarchies or namespaces, for the logic that needs neither.
func testManager(t *testing.T, net Network) *Manager {
	t.Helper()
	dir := t.TempDir()
	st := &store{root: filepath.Join(dir, "pods")}
	return &Manager{
		store:   st,
		pins:    &pinner{dir: filepath.Join(dir, "ns"), exe: "/nonexistent"},
		cgroups: &cgroups{roots: []string{filepath.Join(dir, "cg")}},
		shmDir:  filepath.Join(dir, "shm"),
		net:     net,
		names:   registrar.New("pod"),
		pods:    newIndex(st),
	}
}

// addPod puts a record straight into m's index and store.
func addPod(t *testing.T, m *Manager, sb *Sandbox) {
	t.Helper()
	if sb.CreatedAt.IsZero() {
		sb.CreatedAt = time.Now()
	}
	if err := m.store.save(sb); err != nil {
		t.Fatal(err)
	}
	if err := m.names.Reserve(nameKey(sb.Config.Metadata), sb.ID); err != nil {
		t.Fatal(err)
	}
	e := &entry{}
	e.Store(sb)
	m.pods.Add(sb.ID, e)
}

func pod(id, name string, state State, labels map[string]string) *Sandbox {
	return &Sandbox{
		ID:     id,
		State:  state,
		Config: Config{Metadata: Metadata{Name: name, UID: "uid-" + name, Namespace: "ns"}, Labels: labels},
		Cgroup: "/crisp/pod-" + id,
	}
}

func (m *Manager) podDirExists(id string) bool {
	_, err := os.Stat(m.store.dir(id))
	return err == nil
}
