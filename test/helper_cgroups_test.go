//go:build integration

package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// TestHelpersOutsideDaemonCgroup: a container's monitor and a shared-PID
// pod's reaper live in leaf cgroups of their own under the pod, in every
// hierarchy, never in the daemon's cgroup (which a systemd unit restart
// kills); they outlive a kill -9 of the daemon and their cgroups go with
// the container and the pod.
func TestHelpersOutsideDaemonCgroup(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	podCfg := podConfig("helpers")
	podCfg.LogDirectory = t.TempDir()
	podCfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	podCfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	pod := runPod(t, d, podCfg)
	_, info := podStatus(t, d, pod)
	if info.Reaper == nil {
		t.Fatal("shared-PID pod without a reaper")
	}
	ctrCfg := ctrConfig("sleeper", "echo up; sleep 600")
	ctr := runCtr(t, d, pod, podCfg, ctrCfg)
	mon := monitorPID(t, d, ctr)

	daemonCg := procCgroups(t, d.PID())
	// Scopes with the systemd driver (the VM lane's CRISP_CGROUP_DRIVER).
	unit := ""
	if os.Getenv("CRISP_CGROUP_DRIVER") == "systemd" {
		unit = ".scope"
	}
	reaperLeaf := info.Cgroup + "/crisp-reaper-" + pod + unit
	monitorLeaf := info.Cgroup + "/crisp-monitor-" + ctr + unit
	assertInLeaf := func(what string, pid int, leaf string) {
		t.Helper()
		cgs := procCgroups(t, pid)
		if len(cgs) == 0 {
			t.Fatalf("%s %d: no cgroups", what, pid)
		}
		for h, p := range cgs {
			if p != leaf {
				t.Errorf("%s %d in %q of hierarchy %q, want its leaf %q (daemon: %q)", what, pid, p, h, leaf, daemonCg[h])
			}
		}
	}
	assertInLeaf("reaper", info.Reaper.PID, reaperLeaf)
	assertInLeaf("monitor", mon, monitorLeaf)

	d.Kill9AndRestart(t)
	if st := ctrStatus(t, d, ctr); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after kill -9 of the daemon: %v %s", st.State, st.Message)
	}
	if !procAlive(mon) || !procAlive(info.Reaper.PID) {
		t.Fatalf("monitor (%v) or reaper (%v) gone after kill -9 of the daemon", procAlive(mon), procAlive(info.Reaper.PID))
	}
	assertInLeaf("monitor", mon, monitorLeaf)

	if _, err := d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemoveContainer(harness.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	if left := cgroupDirs(filepath.Base(monitorLeaf)); len(left) != 0 {
		t.Errorf("monitor cgroups left after RemoveContainer: %v", left)
	}
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if left := cgroupDirs(filepath.Base(reaperLeaf)); len(left) != 0 {
		t.Errorf("reaper cgroups left after RemovePodSandbox: %v", left)
	}
	if left := cgroupDirs(filepath.Base(info.Cgroup)); len(left) != 0 {
		t.Errorf("pod cgroups left after RemovePodSandbox: %v", left)
	}
}

// monitorPID reads the container's monitor from the status file it keeps.
func monitorPID(t *testing.T, d *harness.Daemon, ctr string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Root, "containers", ctr, "bundle", "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		MonitorPid int `json:"monitor_pid"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.MonitorPid == 0 {
		t.Fatalf("status.json %s: %v", b, err)
	}
	return st.MonitorPid
}

// procCgroups maps each hierarchy of /proc/<pid>/cgroup ("memory",
// "name=systemd", "" for v2) to the process's cgroup in it. Hierarchies
// without a controller in this kernel's v1 list (e.g. rdma unmounted) show
// up too but are equal for every process, so they are dropped.
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || !isMountedHierarchy(f[1]) {
			continue
		}
		out[f[1]] = f[2]
	}
	return out
}

// isMountedHierarchy: a v1 controller list (or name=…, or "" for the v2
// tree) that has a mount under /sys/fs/cgroup.
func isMountedHierarchy(h string) bool {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return h == ""
	}
	switch h {
	case "":
		_, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs")
		return err == nil
	case "name=systemd":
		_, err := os.Stat("/sys/fs/cgroup/systemd/cgroup.procs")
		return err == nil
	}
	for _, c := range strings.Split(h, ",") {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "cgroup.procs")); err == nil {
			return true
		}
	}
	return false
}

// cgroupDirs finds directories named name anywhere below /sys/fs/cgroup.
func cgroupDirs(name string) []string {
	var found []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() && e.Name() == name {
			found = append(found, p)
			return filepath.SkipDir
		}
		return nil
	})
	return found
}
