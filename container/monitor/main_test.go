package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// Test environment, set up by TestMain.
var (
	monitorBin string // crisp-monitor built for the tests
	rootfs     string // minimal rootfs with /bin/app
	testRun    string // short volatile dir for state dirs (sockets)
)

// cgroupParent is per test process: two runs of this package at once (two
// checkouts, or -count with -p) must not remove each other's parent.
var cgroupParent = fmt.Sprintf("crisp-test-%d", os.Getpid())

func TestMain(m *testing.M) {
	// Exec re-executes this test binary as libcontainer's init.
	InitIfRequested()
	if cfg := os.Getenv(daemonEnv); cfg != "" {
		os.Exit(fakeDaemon(cfg))
	}
	if os.Geteuid() != 0 {
		fmt.Println("monitor tests need root; skipping")
		os.Exit(0)
	}
	// Monitors orphaned by a killed fake daemon are re-parented to us, so
	// that the test can check they get reaped (PID 1 here does not reap).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "crisp-monitor-test")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	testRun, err = os.MkdirTemp("/run", "cm")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(testRun)

	monitorBin = filepath.Join(tmp, "crisp-monitor")
	rootfs = filepath.Join(tmp, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			panic(err)
		}
	}
	builds := []struct {
		env  []string
		args []string
	}{
		{nil, []string{"build", "-tags", "seccomp", "-o", monitorBin, "github.com/crisp-runtime/crisp/cmd/crisp-monitor"}},
		{[]string{"CGO_ENABLED=0"}, []string{"build", "-o", filepath.Join(rootfs, "bin", "app"), "./testdata/app"}},
	}
	for _, b := range builds {
		cmd := exec.Command("go", b.args...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n%s", b.args, err, out)
			return 1
		}
	}
	code := m.Run()
	// Containers remove their own cgroups; the shared parent stays behind
	// (as with pod cgroups) and is removed here.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			fmt.Fprintf(os.Stderr, "leftover cgroup: %v\n", err)
			code = 1
		}
	}
	return code
}

type testOpts struct {
	args      []string
	stdin     bool
	stdinOnce bool
	tty       bool
	noLog     bool
	memLimit  int64
	// runtimeDefault: moby's default seccomp profile instead of the
	// one-rule filter.
	runtimeDefault bool
}

type testContainer struct {
	*Container
	cfg Config
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func testConfig(t testing.TB, o testOpts) Config {
	id := newID()
	dir := t.TempDir()
	cfg := Config{
		ID:            id,
		Bundle:        filepath.Join(dir, "bundle"),
		StateDir:      filepath.Join(testRun, id[:12]),
		Spec:          testSpec(id, o),
		Stdin:         o.stdin,
		StdinOnce:     o.stdinOnce,
		Tty:           o.tty,
		MonitorBinary: monitorBin,
	}
	if !o.noLog {
		cfg.LogPath = filepath.Join(dir, "container.log")
	}
	return cfg
}

func testSpec(id string, o testOpts) *specs.Spec {
	caps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Args:     append([]string{"/bin/app"}, o.args...),
			Env:      []string{"PATH=/bin"},
			Cwd:      "/",
			Terminal: o.tty,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Hostname: "test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/" + cgroupParent + "/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			// Exercise the seccomp build: deny one harmless syscall.
			Seccomp: &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"kexec_load"}, Action: specs.ActErrno}},
			},
		},
	}
	if o.runtimeDefault {
		p, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			panic(err)
		}
		s.Linux.Seccomp = p
	}
	if o.memLimit > 0 {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &o.memLimit, Swap: &o.memLimit}
	}
	return s
}

// create creates a container and registers its destruction.
func create(t testing.TB, o testOpts) *testContainer {
	t.Helper()
	cfg := testConfig(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Create(ctx, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	tc := &testContainer{Container: c, cfg: cfg}
	t.Cleanup(func() { tc.destroy(t) })
	return tc
}

func run(t testing.TB, o testOpts) *testContainer {
	t.Helper()
	c := create(t, o)
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

// destroy destroys the container (as the daemon would on RemoveContainer),
// through a freshly loaded handle if the original was dropped, and checks
// that nothing is left.
func (c *testContainer) destroy(t testing.TB) {
	t.Helper()
	if err := c.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	if err := c.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	assertNoCgroup(t, c.cfg.ID)
	for _, p := range []string{c.cfg.StateDir, c.cfg.Bundle} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

func assertNoCgroup(t testing.TB, id string) {
	t.Helper()
	left, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent + "/" + id)
	if len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
}

func waitExit(t testing.TB, c *Container, d time.Duration) Status {
	t.Helper()
	select {
	case <-c.Wait():
	case <-time.After(d):
		t.Fatalf("container did not exit within %v (status %+v)", d, c.Status())
	}
	st := c.Status()
	if st.State != StateExited {
		t.Fatalf("Wait closed but state is %v", st.State)
	}
	return st
}

func readLog(t testing.TB, path string) []crilog.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es, err := crilog.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse log: %v\n%s", err, b)
	}
	return es
}

// waitLog polls the CRI log until cond holds for its stdout lines.
func waitLog(t testing.TB, path string, d time.Duration, cond func(lines []string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var lines []string
		if b, err := os.ReadFile(path); err == nil {
			if es, err := crilog.Parse(bytes.NewReader(b)); err == nil {
				lines = crilog.Lines(es, crilog.Stdout)
			}
		}
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("log condition not met within %v; stdout lines: %q", d, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupProcs lists the pids in the container's cgroup (pids controller).
func cgroupProcs(t testing.TB, id string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", cgroupParent, id, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	return pids
}

// zombiesOf returns zombie processes (pid and name) whose parent is one of
// parents.
func zombiesOf(parents map[int]bool) []string {
	var zs []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := proto.ReadProcStat(pid)
		if err == nil && st.State == 'Z' && parents[st.PPid] {
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			zs = append(zs, e.Name()+"("+strings.TrimSpace(string(comm))+")")
		}
	}
	return zs
}

// ticks checks that lines are "tick 0", "tick 1", ... without gaps and
// returns how many there are.
func ticks(t testing.TB, lines []string) int {
	t.Helper()
	for i, l := range lines {
		if l != fmt.Sprintf("tick %d", i) {
			t.Fatalf("line %d is %q: log lost or reordered lines", i, l)
		}
	}
	return len(lines)
}

func itoa(i int) string { return strconv.Itoa(i) }

func atoi(s string) int {
	i, _ := strconv.Atoi(s)
	return i
}
