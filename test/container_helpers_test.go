//go:build integration

package test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

const ctrImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// ctrPod runs a host-network pod (no CNI needed) with a log directory and
// returns its id and config.
func ctrPod(t *testing.T, d *harness.Daemon, name string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := podConfig(name)
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	return runPod(t, d, cfg), cfg
}

// busyboxPod is the start of most container tests: a daemon with the
// busybox image pulled and a host-network pod ready for containers.
func busyboxPod(t *testing.T, name string) (*harness.Daemon, string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	pod, podCfg := ctrPod(t, d, name)
	return d, pod, podCfg
}

// ctrConfig is a busybox container running sh -c script, logging to
// <name>/0.log in the pod's log directory.
func ctrConfig(name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: ctrImage, UserSpecifiedImage: ctrImage},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + "/0.log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
}

func createCtr(t *testing.T, d *harness.Daemon, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	resp, err := d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId
}

func startCtr(t *testing.T, d *harness.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.StartContainer(harness.Ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", id, err)
	}
}

func runCtr(t *testing.T, d *harness.Daemon, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	id := createCtr(t, d, pod, podCfg, cfg)
	startCtr(t, d, id)
	return id
}

func ctrStatus(t *testing.T, d *harness.Daemon, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := d.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

func waitExited(t *testing.T, d *harness.Daemon, id string, timeout time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	var st *runtimeapi.ContainerStatus
	testutil.WaitFor(t, "container "+id+" to exit", timeout, func() bool {
		st = ctrStatus(t, d, id)
		return st.State == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	return st
}

func execSync(t *testing.T, d *harness.Daemon, id string, timeout int64, cmd ...string) *runtimeapi.ExecSyncResponse {
	t.Helper()
	// The command's own deadline is a wait, scaled like the others.
	timeout = int64(testutil.Scaled(time.Duration(timeout)))
	resp, err := d.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	return resp
}

type logLine struct{ stream, tag, text string }

// readCRILog parses a CRI log file: "<RFC3339Nano> <stream> <P|F> <text>".
func readCRILog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) < 3 {
			t.Fatalf("malformed log line %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("log line %q: timestamp: %v", sc.Text(), err)
		}
		l := logLine{stream: parts[1], tag: parts[2]}
		if len(parts) == 4 {
			l.text = parts[3]
		}
		out = append(out, l)
	}
	return out
}

func logPathOf(podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	return filepath.Join(podCfg.LogDirectory, cfg.LogPath)
}

// checkNoZombies fails the test when zombies of the daemon or its monitors
// outlive a few seconds: reaping is asynchronous, a leak is forever.
func checkNoZombies(t *testing.T, d *harness.Daemon) {
	t.Helper()
	var z []string
	for deadline := time.Now().Add(testutil.Scaled(5 * time.Second)); ; time.Sleep(100 * time.Millisecond) {
		if z = zombies(d); len(z) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Errorf("zombies: %v", z)
}

// zombies lists zombie processes whose parent is the daemon or one of its
// container monitors (their command lines name the daemon's directory):
// other zombies on the node are not crisp's.
func zombies(d *harness.Daemon) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) || s[i+2] != 'Z' {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
		if ppid == d.PID() || strings.Contains(string(cmd), d.Dir) {
			out = append(out, fmt.Sprintf("%s %s (parent %d %q)", e.Name(), s[:i+1], ppid, strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	return out
}
