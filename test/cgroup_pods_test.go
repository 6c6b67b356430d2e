//go:build integration

package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// TestPodsAfterLimitedContainer: pods keep starting after a container with
// limits started, and each container gets its own. On cgroup v2 (the VM
// lane, hack/vm) the first start enables cpuset in the subtree_control of
// the root and of crisp's /crisp; a pod cgroup made after that once failed
// RunPodSandbox ("open /sys/fs/cgroup/cpuset.cpus: no such file or
// directory") because crisp filled it the v1 way, from a root that has no
// such file on v2. On v2 the pod's cpuset must stay empty (inherited), not
// a copy that would pin it.
func TestPodsAfterLimitedContainer(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	_, v2err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	v2 := v2err == nil
	// Inside the container its own cgroup is at /sys/fs/cgroup (v2, cgroup
	// namespace) or /sys/fs/cgroup/<controller> (v1).
	const show = `cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpuset.cpus 2>/dev/null ||
		cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpuset/cpuset.cpus`
	for _, name := range []string{"limits-a", "limits-b", "limits-c"} {
		pod, podCfg := ctrPod(t, d, name)
		cfg := ctrConfig("c", "sleep 1000")
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
			CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
			MemoryLimitInBytes: 64 << 20, CpusetCpus: "0",
		}
		id := runCtr(t, d, pod, podCfg, cfg)
		r := execSync(t, d, id, 60, "sh", "-c", show)
		if got := strings.Fields(string(r.Stdout)); r.ExitCode != 0 || len(got) != 2 || got[0] != "67108864" || got[1] != "0" {
			t.Errorf("%s: memory limit and cpuset seen in the container: %q (exit %d, stderr %q), want 67108864 and 0",
				name, r.Stdout, r.ExitCode, r.Stderr)
		}
		if !v2 {
			continue
		}
		_, info := podStatus(t, d, pod)
		cpus, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", info.Cgroup, "cpuset.cpus"))
		if err == nil && strings.TrimSpace(string(cpus)) != "" {
			t.Errorf("%s: pod cgroup %s has cpuset.cpus %q: pinned, want empty (inherit the parent's)", name, info.Cgroup, cpus)
		}
	}
}
