//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

var podSeq atomic.Int64

// podConfig is a pod with its own network, IPC and (per container) PID
// namespaces, as kubelet sends for an ordinary pod.
func podConfig(name string) *runtimeapi.PodSandboxConfig {
	n := podSeq.Add(1)
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: name, Namespace: "crisp-test", Uid: fmt.Sprintf("uid-%s-%d-%d", name, os.Getpid(), n),
		},
		Labels:      map[string]string{"test": name},
		Annotations: map[string]string{"crisp.test/seq": strconv.FormatInt(n, 10)},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
}

func runPod(t *testing.T, d *harness.Daemon, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.GetMetadata().GetName(), err)
	}
	// Runs before the harness stops the daemon (cleanups are LIFO), so a
	// failing test leaves no pod, reaper, pin or iptables rule behind.
	// Removing a removed pod succeeds, so tests may still remove their own.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(time.Minute))
		defer cancel()
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			t.Logf("cleanup: RemovePodSandbox %s: %v", resp.PodSandboxId, err)
		}
	})
	return resp.PodSandboxId
}

func stopPod(t *testing.T, d *harness.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.StopPodSandbox(harness.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", id, err)
	}
}

func removePod(t *testing.T, d *harness.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", id, err)
	}
}

func podStatus(t *testing.T, d *harness.Daemon, id string) (*runtimeapi.PodSandboxStatus, podInfo) {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStatus(harness.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	var info podInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info of %s: %v: %q", id, err, resp.Info["info"])
	}
	return resp.Status, info
}

// podInfo is the part of the verbose status the tests look at.
type podInfo struct {
	Namespaces map[string]string `json:"namespaces"`
	Reaper     *struct {
		PID int `json:"pid"`
	} `json:"reaper"`
	ShmPath       string   `json:"shmPath"`
	HostsPath     string   `json:"hostsPath"`
	ResolvPath    string   `json:"resolvPath"`
	HostnamePath  string   `json:"hostnamePath"`
	Cgroup        string   `json:"cgroup"`
	CgroupCreated []string `json:"cgroupCreated"`
}

// cgroupDir is a cgroup's directory: in the unified tree on cgroup v2 (the
// VM lane, hack/vm), in the controller's hierarchy on v1.
func cgroupDir(controller, cgroup string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return filepath.Join("/sys/fs/cgroup", cgroup)
	}
	return filepath.Join("/sys/fs/cgroup", controller, cgroup)
}

// isNSFS says whether path is a pinned namespace.
func isNSFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// nsenter runs a command in the namespaces given as nsenter flags.
func nsenter(t *testing.T, flags []string, cmd ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append(append(flags, "--"), cmd...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %v %v: %v: %s", flags, cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// procAlive says whether pid runs (zombies count as gone: they hold nothing
// but their PID until their parent, init after a daemon restart, reaps them).
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// isReaper says whether pid is a crisp pod-init process.
func isReaper(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "pod-init")
}

// nsPID1 reports whether pid is PID 1 of its innermost PID namespace.
func nsPID1(t *testing.T, pid int) bool {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if strings.HasPrefix(line, "NSpid:") {
			f := strings.Fields(line)
			return len(f) >= 3 && f[len(f)-1] == "1"
		}
	}
	return false
}

// podMounts lists mounts below the daemon's pod state: pins and shm, not
// the two shared mount points that hold them.
func podMounts(d *harness.Daemon) []string {
	var out []string
	for _, m := range harness.MountsBelow(d.State) {
		if m == filepath.Join(d.State, "ns") || m == filepath.Join(d.State, "pods") {
			continue
		}
		out = append(out, m)
	}
	return out
}
