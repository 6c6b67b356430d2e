//go:build integration

package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// conditionUnreadable is the Status condition that reports records crisp
// could not read and keeps untouched.
const conditionUnreadable = "CrispHasNoUnreadableRecords"

// A pod record that cannot be read (damaged, or a newer schema after a
// rollback) must not make start-up destroy the live pod it describes: its
// namespaces stay pinned, its IP allocated, its container running, and
// Status says what was kept. Once the record is repaired, the pod is back.
func TestUnreadablePodRecordKeepsThePod(t *testing.T) {
	harness.RequireRegistry(t)
	net := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(net.ConfDir))
	pull(t, d, ctrImage)
	cfg := podConfig("quarantine")
	cfg.LogDirectory = t.TempDir()
	pod := runPod(t, d, cfg)
	ctr := runCtr(t, d, pod, cfg, ctrConfig("sleeper", "sleep 3600"))
	ips := net.AllocatedIPs()
	if len(ips) != 1 {
		t.Fatalf("allocated IPs = %v", ips)
	}
	pin := filepath.Join(d.State, "ns", pod, "net")
	if !isNSFS(pin) {
		t.Fatalf("%s is not a pinned namespace", pin)
	}
	if c := conditions(t, d)[conditionUnreadable]; c == nil || !c.Status {
		t.Errorf("condition %s before any damage = %+v, want true", conditionUnreadable, c)
	}

	rec := filepath.Join(d.Root, "pods", pod, "sandbox.json")
	good, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	// A record of a newer crisp, as after a rollback.
	newer := bytes.Replace(good, []byte(`"version":1`), []byte(`"version":99`), 1)
	if bytes.Equal(newer, good) {
		t.Fatalf("record has no version 1: %s", good)
	}
	if err := os.WriteFile(rec, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	d.Kill9AndRestart(t)

	if !isNSFS(pin) {
		t.Errorf("start-up unpinned the network namespace of the pod with an unreadable record")
	}
	if got := net.AllocatedIPs(); len(got) != 1 || got[0] != ips[0] {
		t.Errorf("start-up freed the IP of the pod with an unreadable record: %v, had %v", got, ips)
	}
	if st := ctrStatus(t, d, ctr); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container of the pod with an unreadable record is %v", st.State)
	}
	c := conditions(t, d)[conditionUnreadable]
	if c == nil || c.Status || c.Reason != "UnreadableRecords" || !strings.Contains(c.Message, rec) {
		t.Errorf("condition %s = %+v, want false naming %s", conditionUnreadable, c, rec)
	}
	if !strings.Contains(d.LogTail(400), rec) {
		t.Errorf("the log does not name the unreadable record %s", rec)
	}

	// Repaired: the pod is known again and everything goes with it.
	if err := os.WriteFile(rec, good, 0o600); err != nil {
		t.Fatal(err)
	}
	d.Kill9AndRestart(t)
	if c := conditions(t, d)[conditionUnreadable]; c == nil || !c.Status {
		t.Errorf("condition %s after the repair = %+v, want true", conditionUnreadable, c)
	}
	if st, _ := podStatus(t, d, pod); st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("repaired pod is %v", st.State)
	}
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if got := net.AllocatedIPs(); len(got) != 0 {
		t.Errorf("IPs left after removing the pod: %v", got)
	}
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left after removing the pod: %v", m)
	}
}

// fillDisk fills the filesystem of dir and returns what frees it again.
func fillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, n)
		for {
			if _, err = f.Write(buf); err != nil {
				break
			}
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	f.Close()
	freed := false
	free = func() {
		if !freed {
			freed = true
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(free)
	return free
}

// After a reboot on a full disk, start-up cannot record that a pod lost its
// namespaces. It must come up anyway, reporting the pod not ready, so that
// kubelet can remove pods and free space.
func TestStartupOnFullDiskMarksPodsNotReady(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t, harness.WithRootSize("64m"))
	pod, _ := ctrPod(t, d, "fulldisk")
	d.Kill9(t)
	// Lost namespaces, as after a reboot or someone's umount.
	pins, err := filepath.Glob(filepath.Join(d.State, "ns", pod, "*"))
	if err != nil || len(pins) == 0 {
		t.Fatalf("pins of %s: %v %v", pod, pins, err)
	}
	for _, p := range pins {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	}
	free := fillDisk(t, d.Root)
	d.StartAgain(t)
	if st, _ := podStatus(t, d, pod); st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod that lost its namespaces is %v", st.State)
	}
	free()
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left after removing the pod: %v", m)
	}
}

// wantNoSpace checks that err is ResourceExhausted naming the filesystem
// (root's mount point) and what did not fit.
func wantNoSpace(t *testing.T, what string, err error, mount string, words ...string) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("%s on a full disk: %v, want ResourceExhausted", what, err)
		return
	}
	t.Logf("%s on a full disk: %v", what, err)
	for _, w := range append(words, mount) {
		if !strings.Contains(status.Convert(err).Message(), w) {
			t.Errorf("%s on a full disk: message %q does not name %q", what, status.Convert(err).Message(), w)
		}
	}
}

// A full root: what does not fit fails with ResourceExhausted naming the
// filesystem and the object; a container started meanwhile runs; an exit
// meanwhile keeps its code; restart works on the full disk; nothing is
// corrupt once space returns.
func TestFullDisk(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t, harness.WithRootSize("64m"))
	pull(t, d, ctrImage)
	pod, podCfg := ctrPod(t, d, "fulldisk")
	running := runCtr(t, d, pod, podCfg, ctrConfig("running", "sleep 3600"))
	signal := t.TempDir()
	exiterCfg := ctrConfig("exiter", "until [ -e /signal/go ]; do sleep 0.1; done; exit 7")
	exiterCfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/signal", HostPath: signal}}
	exiter := runCtr(t, d, pod, podCfg, exiterCfg)
	created := createCtr(t, d, pod, podCfg, ctrConfig("created", "sleep 3600"))

	free := fillDisk(t, d.Root)
	_, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/pause:3.10"}})
	wantNoSpace(t, "PullImage", err, d.Root, "pause:3.10")
	_, err = d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod, Config: ctrConfig("nospace", "true"), SandboxConfig: podCfg})
	wantNoSpace(t, "CreateContainer", err, d.Root, "nospace")
	nospacePod := podConfig("nospace")
	nospacePod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	_, err = d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: nospacePod})
	wantNoSpace(t, "RunPodSandbox", err, d.Root, "nospace")

	// The process is released before its start is recorded: a failed
	// write must not fail the start of a container that then runs.
	startCtr(t, d, created)
	if err := os.WriteFile(filepath.Join(signal, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := waitExited(t, d, exiter, time.Minute); st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("exit on a full disk: code %d reason %q message %q, want 7 Error", st.ExitCode, st.Reason, st.Message)
	}

	d.Kill9AndRestart(t)
	check := func(when string) {
		t.Helper()
		for _, id := range []string{running, created} {
			if st := ctrStatus(t, d, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("%s: container %s is %v, want running", when, id, st.State)
			}
		}
		if st := ctrStatus(t, d, exiter); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
			t.Errorf("%s: exited container: %v code %d message %q, want exited 7", when, st.State, st.ExitCode, st.Message)
		}
		if c := conditions(t, d)[conditionUnreadable]; c == nil || !c.Status {
			t.Errorf("%s: condition %s = %+v", when, conditionUnreadable, c)
		}
	}
	check("restarted on the full disk")

	free()
	pull(t, d, "registry.k8s.io/pause:3.10")
	runCtr(t, d, pod, podCfg, ctrConfig("after", "sleep 3600"))
	d.Kill9AndRestart(t)
	check("restarted after space returned")
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left after removing the pod: %v", m)
	}
}

// editJSON rewrites a JSON file through a map.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(readFile(t, path)), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// removeCgroupsOf removes the (empty) cgroups whose name contains id,
// deepest first, in every hierarchy.
func removeCgroupsOf(t *testing.T, id string) {
	t.Helper()
	var dirs []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if strings.Contains(e.Name(), id) {
			filepath.WalkDir(p, func(q string, e os.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					dirs = append(dirs, q)
				}
				return nil
			})
			return filepath.SkipDir
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil {
			t.Fatalf("removing cgroup %s: %v", dirs[i], err)
		}
	}
}

// startTime is field 22 of /proc/<pid>/stat.
func startTime(t *testing.T, pid int) uint64 {
	t.Helper()
	s := readFile(t, fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A reboot, simulated: crisp, monitors, reaper and containers gone, the
// state directory (/run) wiped, and the records' processes now belonging to
// a host process with the same pid and start time, as happens after a
// reboot, but of another boot. Start-up reports the pod not ready and its
// container exited, never touches the host process, kubelet's recreation
// works and nothing stale remains.
func TestSimulatedReboot(t *testing.T) {
	harness.RequireRegistry(t)
	net := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(net.ConfDir))
	pull(t, d, ctrImage)
	cfg := podConfig("reboot")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	pod := runPod(t, d, cfg)
	ctr := runCtr(t, d, pod, cfg, ctrConfig("app", "sleep 3600"))
	_, info := podStatus(t, d, pod)
	if info.Reaper == nil {
		t.Fatal("shared-PID pod has no reaper")
	}
	reaper := info.Reaper.PID
	status := filepath.Join(d.Root, "containers", ctr, "bundle", "status.json")
	var rec struct {
		MonitorPid int `json:"monitor_pid"`
	}
	if err := json.Unmarshal([]byte(readFile(t, status)), &rec); err != nil || rec.MonitorPid <= 0 || reaper <= 0 {
		t.Fatalf("monitor %d reaper %d: %v", rec.MonitorPid, reaper, err)
	}

	// The "reboot".
	d.Kill9(t)
	for _, pid := range []int{rec.MonitorPid, reaper} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "monitor and reaper to die", time.Minute, func() bool {
		return !procAlive(rec.MonitorPid) && !procAlive(reaper)
	})
	for _, m := range harness.MountsBelow(d.State) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(d.State); err != nil {
		t.Fatal(err)
	}
	removeCgroupsOf(t, pod) // a reboot empties the cgroup hierarchies
	// A host process that has, in this boot, the pid and start time the
	// records name.
	host := exec.Command("sleep", "3600")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	hostPid, hostStart := host.Process.Pid, startTime(t, host.Process.Pid)
	editJSON(t, filepath.Join(d.Root, "pods", pod, "sandbox.json"), func(m map[string]any) {
		r := m["sandbox"].(map[string]any)["reaper"].(map[string]any)
		r["pid"], r["startTime"], r["bootID"] = hostPid, hostStart, "00000000-0000-0000-0000-000000000000"
	})
	editJSON(t, status, func(m map[string]any) {
		m["monitor_pid"], m["monitor_start_time"] = hostPid, hostStart
		m["init_pid"], m["init_start_time"] = hostPid, hostStart
		m["boot_id"] = "00000000-0000-0000-0000-000000000000"
	})

	d.StartAgain(t)
	if st, _ := podStatus(t, d, pod); st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod after the reboot is %v, want not ready", st.State)
	}
	if st := ctrStatus(t, d, ctr); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container after the reboot is %v, want exited", st.State)
	}
	// kubelet: stop and remove the dead pod, run its replacement.
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if !procAlive(hostPid) {
		t.Fatalf("crisp killed host process %d, which has the pid and start time its records name from before the reboot", hostPid)
	}
	cfg.Metadata.Attempt = 1
	pod2 := runPod(t, d, cfg)
	ctr2 := runCtr(t, d, pod2, cfg, ctrConfig("app", "sleep 3600"))
	if st := ctrStatus(t, d, ctr2); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("recreated container is %v", st.State)
	}
	if ips := net.AllocatedIPs(); len(ips) != 1 {
		t.Errorf("IPs with one pod after the reboot: %v", ips)
	}
	stopPod(t, d, pod2)
	removePod(t, d, pod2)
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if ips := net.AllocatedIPs(); len(ips) != 0 {
		t.Errorf("IPs left: %v", ips)
	}
	for _, dir := range []string{"pods", "containers"} {
		if left, _ := os.ReadDir(filepath.Join(d.Root, dir)); len(left) != 0 {
			t.Errorf("%s left under root: %v", dir, left)
		}
	}
	if !procAlive(hostPid) {
		t.Errorf("host process %d was killed", hostPid)
	}
}
