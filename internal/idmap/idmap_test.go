package idmap

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const hostID = 65536 * 9

// userns starts a process in a new user namespace mapping 0 to hostID and
// returns that namespace.
func userns(t *testing.T) *os.File {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("idmapped mounts need root")
	}
	cmd := exec.Command("sleep", "60")
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	if err := cmd.Start(); err != nil {
		t.Skipf("no user namespaces: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func owner(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}

func TestBindLayers(t *testing.T) {
	ns := userns(t)
	dir := t.TempDir()
	var layers []string
	for _, name := range []string{"top", "bottom"} {
		l := filepath.Join(dir, name)
		if err := os.MkdirAll(l, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	scratch := filepath.Join(dir, "l")
	paths, release, err := BindLayers(layers, scratch, ns)
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("the test directory's filesystem has no idmapped mounts: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"top", "bottom"} {
		if got := owner(t, filepath.Join(paths[i], name)); got != hostID {
			t.Errorf("%s through the idmapped bind is owned by %d, want %d", name, got, hostID)
		}
		if got := owner(t, filepath.Join(layers[i], name)); got != 0 {
			t.Errorf("%s on disk is owned by %d, want 0", name, got)
		}
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(scratch); !os.IsNotExist(err) {
		t.Fatalf("scratch left after release: %v", err)
	}
	// The layers themselves are untouched.
	for _, l := range layers {
		if _, err := os.Stat(filepath.Join(l, filepath.Base(l))); err != nil {
			t.Fatal(err)
		}
	}
	if err := release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

func TestBindMissingSource(t *testing.T) {
	ns := userns(t)
	dir := t.TempDir()
	_, release, err := BindLayers([]string{filepath.Join(dir, "missing")}, filepath.Join(dir, "l"), ns)
	if err == nil {
		t.Fatal("bound a missing layer")
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "l")); !os.IsNotExist(err) {
		t.Fatalf("scratch left after a failed bind: %v", err)
	}
}

func TestProbeOverlay(t *testing.T) {
	ns := userns(t)
	dir := filepath.Join(t.TempDir(), "probe")
	if err := ProbeOverlay(dir, ns, hostID); err != nil {
		t.Fatalf("probe with the namespace's mapping: %v", err)
	}
	// The wrong expectation is noticed: the probe really looks at the owner.
	if err := ProbeOverlay(dir, ns, hostID+1); err == nil || !strings.Contains(err.Error(), "shows uid") {
		t.Fatalf("probe expecting another uid: want a uid mismatch, got %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("probe left %s: %v", dir, err)
	}
}
