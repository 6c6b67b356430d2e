//go:build integration

package test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

const shmAnnotation = "io.kubernetes.cri-o.ShmSize"

// shmPod is a host-network pod with its own IPC namespace, so its own
// /dev/shm, annotated with size ("" for none).
func shmPod(t *testing.T, d *harness.Daemon, name, size string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := podConfig(name)
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	if size != "" {
		cfg.Annotations[shmAnnotation] = size
	}
	return runPod(t, d, cfg), cfg
}

// dfShm is the size and use of the container's /dev/shm in KiB, from df.
func dfShm(t *testing.T, d *harness.Daemon, id string) (size, used int64) {
	t.Helper()
	out := execSync(t, d, id, 30, "df", "-k", "/dev/shm")
	lines := strings.Split(strings.TrimSpace(string(out.Stdout)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if out.ExitCode != 0 || len(f) < 3 {
		t.Fatalf("df /dev/shm: exit %d %q %q", out.ExitCode, out.Stdout, out.Stderr)
	}
	size, _ = strconv.ParseInt(f[1], 10, 64)
	used, _ = strconv.ParseInt(f[2], 10, 64)
	return size, used
}

// memStat is one field of a cgroup's memory.stat.
func memStat(t *testing.T, cgroup, field string) int64 {
	t.Helper()
	for _, line := range strings.Split(readFile(t, filepath.Join(cgroupDir("memory", cgroup), "memory.stat")), "\n") {
		if v, ok := strings.CutPrefix(line, field+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in memory.stat of %s", field, cgroup)
	return 0
}

// TestShmSize: /dev/shm is 64 MiB by default and what the pod's
// io.kubernetes.cri-o.ShmSize annotation says otherwise; a writer fills
// 1 GiB of a 2Gi one, and the pages are charged to the writer's memory
// cgroup (the container's, inside the pod's), not to nobody.
func TestShmSize(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)

	plain, plainCfg := shmPod(t, d, "shm-default", "")
	id := runCtr(t, d, plain, plainCfg, ctrConfig("idle", "sleep 3600"))
	if size, _ := dfShm(t, d, id); size != 64<<10 {
		t.Errorf("default /dev/shm is %d KiB, want 65536", size)
	}

	pod, podCfg := shmPod(t, d, "shm-2gi", "2Gi")
	_, info := podStatus(t, d, pod)
	id = runCtr(t, d, pod, podCfg, ctrConfig("writer", "sleep 3600"))
	out := execSync(t, d, id, 300, "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=1024")
	if out.ExitCode != 0 {
		t.Fatalf("dd 1 GiB into /dev/shm: exit %d: %s", out.ExitCode, out.Stderr)
	}
	size, used := dfShm(t, d, id)
	t.Logf("inside the container: /dev/shm size %d KiB, used %d KiB after dd; dd said %q", size, used, strings.TrimSpace(string(out.Stderr)))
	if size != 2<<20 || used < 1<<20 {
		t.Errorf("/dev/shm %d KiB with %d KiB used, want 2097152 with at least 1048576", size, used)
	}
	ctrCg := info.Cgroup + "/" + id
	shmem := memStat(t, ctrCg, "shmem")
	t.Logf("container memory cgroup: shmem %d MiB", shmem>>20)
	if shmem < 1<<30 {
		t.Errorf("the container's memory cgroup is charged %d bytes of shmem, want at least 1 GiB", shmem)
	}
	removePod(t, d, pod)
	if _, err := os.Stat(info.ShmPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shm mount %s left after RemovePodSandbox: %v", info.ShmPath, err)
	}
}

// TestShmCannotEscapeMemoryLimit: a container limited to 64 MiB that
// writes 512 MiB into a 1Gi /dev/shm is OOM-killed: tmpfs pages count
// against its memory cgroup like any other memory.
func TestShmCannotEscapeMemoryLimit(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	pod, podCfg := shmPod(t, d, "shm-oom", "1Gi")
	cfg := ctrConfig("hog", "exec dd if=/dev/zero of=/dev/shm/fill bs=1M count=512")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}
	id := runCtr(t, d, pod, podCfg, cfg)
	st := waitExited(t, d, id, 2*time.Minute)
	t.Logf("writer of 512 MiB into /dev/shm with a 64 MiB limit: exit %d reason %q", st.ExitCode, st.Reason)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("exit %d reason %q message %q, want OOMKilled", st.ExitCode, st.Reason, st.Message)
	}
}

// TestShmBadAnnotation: a bad quantity is InvalidArgument naming the
// annotation, and no pod, mount or directory is left.
func TestShmBadAnnotation(t *testing.T) {
	d := harness.Start(t)
	for _, v := range []string{"64m", "lots", "-1Gi"} {
		cfg := podConfig("shm-bad")
		cfg.Annotations[shmAnnotation] = v
		_, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), shmAnnotation) {
			t.Errorf("%q: %v, want InvalidArgument naming %s", v, err, shmAnnotation)
		}
	}
	resp, err := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Errorf("pods after refused runs: %v, %v", resp.GetItems(), err)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.State, "pods")); len(ents) != 0 {
		t.Errorf("shm directories left: %v", ents)
	}
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}
