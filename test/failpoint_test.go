//go:build integration

package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// The fault-injection matrix: for each failpoint (internal/failpoint), crisp
// built with them is started with one armed, the RPC that reaches it is sent,
// crisp dies there with SIGKILL, and a clean crisp is started on the same
// root. Then the CRI must answer consistently (an object is listed exactly
// when its status is found, and a listed one is whole), kubelet's way of
// carrying on must succeed, and removing everything must leave no mount, pin,
// veth, IP, cgroup, process, layer or file behind.

var (
	fpBuildOnce sync.Once
	fpBin       string
	fpBuildErr  error
)

// failpointBinary is crisp built with the tag "failpoint" (its monitor
// next to it): $CRISP_FAILPOINT_BINARY (make build-failpoint), or built once
// per test process.
func failpointBinary(t *testing.T) string {
	t.Helper()
	fpBuildOnce.Do(func() {
		if p := os.Getenv("CRISP_FAILPOINT_BINARY"); p != "" {
			fpBin = p
			return
		}
		dir, err := os.MkdirTemp("", "crisp-fp-bin-")
		if err != nil {
			fpBuildErr = err
			return
		}
		for _, c := range []string{"crisp", "crisp-monitor"} {
			cmd := exec.Command("go", "build", "-tags", "seccomp failpoint", "-o", filepath.Join(dir, c), "github.com/crisp-runtime/crisp/cmd/"+c)
			if out, err := cmd.CombinedOutput(); err != nil {
				fpBuildErr = fmt.Errorf("go build %s with failpoints: %v\n%s", c, err, out)
				return
			}
		}
		fpBin = filepath.Join(dir, "crisp")
	})
	if fpBuildErr != nil {
		t.Fatal(fpBuildErr)
	}
	return fpBin
}

// fpEnv is one case's world: its daemon, network and objects.
type fpEnv struct {
	t      *testing.T
	d      *harness.Daemon
	pn     *harness.PodNet
	podCfg *runtimeapi.PodSandboxConfig
	ctrCfg *runtimeapi.ContainerConfig
	pod    string // id, once known
	ctr    string
	image  string // id, once pulled
}

func (f *fpEnv) ctx() context.Context { return harness.Ctx(f.t) }

func (f *fpEnv) pull() {
	f.image = pull(f.t, f.d, ctrImage)
}

func (f *fpEnv) runPod() {
	resp, err := f.d.Runtime.RunPodSandbox(f.ctx(), &runtimeapi.RunPodSandboxRequest{Config: f.podCfg})
	if err != nil {
		f.t.Fatalf("RunPodSandbox: %v", err)
	}
	f.pod = resp.PodSandboxId
}

func (f *fpEnv) createCtr() {
	resp, err := f.d.Runtime.CreateContainer(f.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: f.pod, Config: f.ctrCfg, SandboxConfig: f.podCfg})
	if err != nil {
		f.t.Fatalf("CreateContainer: %v", err)
	}
	f.ctr = resp.ContainerId
}

func (f *fpEnv) startCtr() { startCtr(f.t, f.d, f.ctr) }

// The RPCs a failpoint interrupts; their answers are not looked at (the
// daemon dies before it can give one).
func (f *fpEnv) rpcRunPod() error {
	_, err := f.d.Runtime.RunPodSandbox(f.ctx(), &runtimeapi.RunPodSandboxRequest{Config: f.podCfg})
	return err
}
func (f *fpEnv) rpcStopPod() error {
	_, err := f.d.Runtime.StopPodSandbox(f.ctx(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: f.pod})
	return err
}
func (f *fpEnv) rpcRemovePod() error {
	_, err := f.d.Runtime.RemovePodSandbox(f.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: f.pod})
	return err
}
func (f *fpEnv) rpcCreateCtr() error {
	_, err := f.d.Runtime.CreateContainer(f.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: f.pod, Config: f.ctrCfg, SandboxConfig: f.podCfg})
	return err
}
func (f *fpEnv) rpcStartCtr() error {
	_, err := f.d.Runtime.StartContainer(f.ctx(), &runtimeapi.StartContainerRequest{ContainerId: f.ctr})
	return err
}
func (f *fpEnv) rpcStopCtr() error {
	_, err := f.d.Runtime.StopContainer(f.ctx(), &runtimeapi.StopContainerRequest{ContainerId: f.ctr, Timeout: 2})
	return err
}
func (f *fpEnv) rpcRemoveCtr() error {
	_, err := f.d.Runtime.RemoveContainer(f.ctx(), &runtimeapi.RemoveContainerRequest{ContainerId: f.ctr})
	return err
}
func (f *fpEnv) rpcPull() error {
	_, err := f.d.Images.PullImage(f.ctx(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ctrImage}})
	return err
}
func (f *fpEnv) rpcRemoveImage() error {
	_, err := f.d.Images.RemoveImage(f.ctx(), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ctrImage}})
	return err
}

// podOf finds the case's pod as kubelet does, by its metadata.
func (f *fpEnv) podOf() *runtimeapi.PodSandbox {
	resp, err := f.d.Runtime.ListPodSandbox(f.ctx(), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		f.t.Fatal(err)
	}
	return only(f.t, resp.Items, func(p *runtimeapi.PodSandbox) bool { return p.Metadata.GetUid() == f.podCfg.Metadata.Uid })
}

// ctrOf finds the case's container by its metadata name.
func (f *fpEnv) ctrOf() *runtimeapi.Container {
	resp, err := f.d.Runtime.ListContainers(f.ctx(), &runtimeapi.ListContainersRequest{})
	if err != nil {
		f.t.Fatal(err)
	}
	return only(f.t, resp.Containers, func(c *runtimeapi.Container) bool { return c.Metadata.GetName() == f.ctrCfg.Metadata.Name })
}

// only returns the one item that matches, nil for none; two are a twin
// that kubelet's retry must never get.
func only[T any](t *testing.T, items []*T, match func(*T) bool) *T {
	t.Helper()
	var found []*T
	for _, it := range items {
		if match(it) {
			found = append(found, it)
		}
	}
	if len(found) > 1 {
		t.Fatalf("%d objects for one object's metadata: %v", len(found), found)
	}
	if len(found) == 0 {
		return nil
	}
	return found[0]
}

// checkConsistent: every object is listed exactly when its status is found,
// in the same state, and a listed one is whole.
func (f *fpEnv) checkConsistent() {
	t := f.t
	pods, err := f.d.Runtime.ListPodSandbox(f.ctx(), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]runtimeapi.PodSandboxState{}
	for _, p := range pods.Items {
		listed[p.Id] = p.State
	}
	ids := []string{f.pod}
	for id := range listed {
		if id != f.pod {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		resp, err := f.d.Runtime.PodSandboxStatus(f.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
		state, ok := listed[id]
		switch {
		case status.Code(err) == codes.NotFound:
			if ok {
				t.Errorf("pod %s is listed but its status is NotFound", id)
			}
			continue
		case err != nil:
			t.Errorf("PodSandboxStatus %s: %v", id, err)
			continue
		case !ok:
			t.Errorf("pod %s has a status but is not listed", id)
			continue
		case resp.Status.State != state:
			t.Errorf("pod %s is listed %v, its status says %v", id, state, resp.Status.State)
		}
		if resp.Status.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			_, info := podStatus(t, f.d, id)
			for k, pin := range info.Namespaces {
				if !isNSFS(pin) {
					t.Errorf("ready pod %s lost its %s namespace pin %s", id, k, pin)
				}
			}
			if ip := resp.Status.GetNetwork().GetIp(); ip == "" || !slices.Contains(f.pn.AllocatedIPs(), ip) {
				t.Errorf("ready pod %s has IP %q, host-local holds %v", id, ip, f.pn.AllocatedIPs())
			}
			if f.podCfg.Linux.SecurityContext.NamespaceOptions.Pid == runtimeapi.NamespaceMode_POD && (info.Reaper == nil || !procAlive(info.Reaper.PID)) {
				t.Errorf("ready pod %s with a shared PID namespace has no live reaper: %+v", id, info.Reaper)
			}
		}
	}

	ctrs, err := f.d.Runtime.ListContainers(f.ctx(), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	clisted := map[string]runtimeapi.ContainerState{}
	for _, c := range ctrs.Containers {
		clisted[c.Id] = c.State
		if _, ok := listed[c.PodSandboxId]; !ok {
			t.Errorf("container %s is listed, its pod %s is not", c.Id, c.PodSandboxId)
		}
	}
	cids := []string{f.ctr}
	for id := range clisted {
		if id != f.ctr {
			cids = append(cids, id)
		}
	}
	for _, id := range cids {
		if id == "" {
			continue
		}
		resp, err := f.d.Runtime.ContainerStatus(f.ctx(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		state, ok := clisted[id]
		switch {
		case status.Code(err) == codes.NotFound:
			if ok {
				t.Errorf("container %s is listed but its status is NotFound", id)
			}
		case err != nil:
			t.Errorf("ContainerStatus %s: %v", id, err)
		case !ok:
			t.Errorf("container %s has a status but is not listed", id)
		case resp.Status.State != state:
			t.Errorf("container %s is listed %v, its status says %v", id, state, resp.Status.State)
		case state == runtimeapi.ContainerState_CONTAINER_UNKNOWN:
			t.Errorf("container %s is in state unknown after the restart: %+v", id, resp.Status)
		case state == runtimeapi.ContainerState_CONTAINER_RUNNING:
			if out := execSync(t, f.d, id, 10, "echo", "alive"); string(out.Stdout) != "alive\n" {
				t.Errorf("exec in running container %s: %q %q", id, out.Stdout, out.Stderr)
			}
		}
	}

	imgs, err := f.d.Images.ListImages(f.ctx(), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := imageStatus(t, f.d, ctrImage)
	inList := false
	for _, img := range imgs.Images {
		inList = inList || slices.Contains(img.RepoTags, ctrImage)
	}
	if inList != (st != nil) {
		t.Errorf("image %s listed %v, status found %v", ctrImage, inList, st != nil)
	}
}

// retryPod is kubelet's next sync for a pod whose RunPodSandbox failed: a
// ready sandbox of the pod is adopted, otherwise the same RunPodSandbox is
// sent again.
func (f *fpEnv) retryPod() {
	if p := f.podOf(); p != nil && p.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		f.pod = p.Id
		return
	} else if p != nil {
		f.t.Fatalf("an interrupted RunPodSandbox left pod %s in state %v", p.Id, p.State)
	}
	f.runPod()
	if p := f.podOf(); p == nil || p.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		f.t.Fatalf("retried RunPodSandbox: pod %+v", p)
	}
}

// retryCreate is kubelet's next sync for a container whose CreateContainer
// failed: a leftover created container is removed (kubelet never starts a
// container it got no id for) and the container created and started again.
func (f *fpEnv) retryCreate() {
	if c := f.ctrOf(); c != nil {
		if c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			f.t.Fatalf("an interrupted CreateContainer left container %s in state %v", c.Id, c.State)
		}
		f.ctr = c.Id
		if err := f.rpcRemoveCtr(); err != nil {
			f.t.Fatalf("RemoveContainer of the leftover: %v", err)
		}
	}
	f.createCtr()
	f.startCtr()
	f.checkRunning()
}

func (f *fpEnv) checkRunning() {
	f.t.Helper()
	if st := ctrStatus(f.t, f.d, f.ctr); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		f.t.Fatalf("container %s is %v, want running", f.ctr, st.State)
	}
	if out := execSync(f.t, f.d, f.ctr, 10, "echo", "retried"); string(out.Stdout) != "retried\n" {
		f.t.Fatalf("exec: %q %q", out.Stdout, out.Stderr)
	}
}

func (f *fpEnv) wantPodState(want runtimeapi.PodSandboxState) {
	f.t.Helper()
	if p := f.podOf(); p == nil || p.State != want {
		f.t.Fatalf("pod: %+v, want state %v", p, want)
	}
}

// removeAll is what kubelet does when the pods go away and the image is
// garbage: it must succeed and leave nothing.
func (f *fpEnv) removeAll() {
	t := f.t
	resp, err := f.d.Runtime.ListPodSandbox(f.ctx(), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Items {
		if _, err := f.d.Runtime.StopPodSandbox(f.ctx(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("StopPodSandbox %s: %v", p.Id, err)
		}
		if _, err := f.d.Runtime.RemovePodSandbox(f.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("RemovePodSandbox %s: %v", p.Id, err)
		}
	}
	imgs, err := f.d.Images.ListImages(f.ctx(), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs.Images {
		if _, err := f.d.Images.RemoveImage(f.ctx(), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: img.Id}}); err != nil {
			t.Errorf("RemoveImage %s: %v", img.Id, err)
		}
	}
}

// footprint is what a daemon owns outside its own process: the baseline of
// a fresh daemon must be what is left after everything was removed.
type footprint struct {
	mounts  []string // below the daemon's directory
	files   []string // below root and state
	ips     []string // host-local's allocations
	veths   []string // on the test bridge
	procs   []string // processes of the daemon's build or naming its directory, but the daemon
	cgroups []string // directories named for a pod or container id
}

func takeFootprint(d *harness.Daemon, pn *harness.PodNet, bin string, ids []string) footprint {
	var fp footprint
	fp.mounts = harness.MountsBelow(d.Dir)
	sort := func(s []string) []string { slices.Sort(s); return s }
	for _, dir := range []string{d.Root, d.State} {
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err != nil || p == dir {
				return nil
			}
			// Directories are made when first needed and kept empty; a
			// leaked one is named for its object's id.
			if !e.IsDir() || isObjectID(e.Name()) {
				fp.files = append(fp.files, strings.TrimPrefix(p, d.Dir))
			}
			return nil
		})
	}
	fp.ips = pn.AllocatedIPs()
	fp.veths = pn.Veths()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid := p.Name()
		if pid == fmt.Sprint(d.PID()) || pid == fmt.Sprint(os.Getpid()) {
			continue
		}
		exe, _ := os.Readlink("/proc/" + pid + "/exe")
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if strings.HasPrefix(exe, filepath.Dir(bin)+"/") || bytes.Contains(cmd, []byte(d.Dir)) {
			fp.procs = append(fp.procs, fmt.Sprintf("%s %s %q", pid, exe, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	for _, id := range ids {
		if id != "" {
			fp.cgroups = append(fp.cgroups, cgroupDirs(id)...)
			fp.cgroups = append(fp.cgroups, cgroupDirs("crisp-monitor-"+id)...)
			fp.cgroups = append(fp.cgroups, cgroupDirs("crisp-reaper-"+id)...)
		}
	}
	fp.mounts, fp.files = sort(fp.mounts), sort(fp.files)
	return fp
}

func isObjectID(s string) bool {
	if len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

func (a footprint) diff(b footprint) []string {
	var out []string
	cmp := func(what string, x, y []string) {
		for _, s := range y {
			if !slices.Contains(x, s) {
				out = append(out, what+" left: "+s)
			}
		}
	}
	cmp("mount", a.mounts, b.mounts)
	cmp("file", a.files, b.files)
	cmp("IP", a.ips, b.ips)
	cmp("veth", a.veths, b.veths)
	cmp("process", a.procs, b.procs)
	cmp("cgroup", a.cgroups, b.cgroups)
	return out
}

type fpCase struct {
	point  string
	action string // "kill" unless set
	// noError: the point is past where the RPC can fail (the object is
	// committed), so it has no "error" variant.
	noError bool
	// ownPID: the pod's containers get PID namespaces of their own, so it
	// has no reaper (whose death alone would make a pod not ready).
	ownPID bool
	setup  func(*fpEnv)
	rpc    func(*fpEnv) error
	// after checks what the restarted daemon reports and does kubelet's
	// retry; it runs after checkConsistent.
	after func(*fpEnv)
}

func failpointCases() []fpCase {
	podReady := func(f *fpEnv) { f.pull(); f.runPod() }
	ctrCreated := func(f *fpEnv) { podReady(f); f.createCtr() }
	ctrRunning := func(f *fpEnv) { ctrCreated(f); f.startCtr() }
	retryPod := func(f *fpEnv) {
		f.retryPod()
		f.createCtr()
		f.startCtr()
		f.checkRunning()
	}
	stopAgain := func(f *fpEnv) {
		if err := f.rpcStopPod(); err != nil {
			f.t.Fatalf("StopPodSandbox again: %v", err)
		}
		f.wantPodState(runtimeapi.PodSandboxState_SANDBOX_NOTREADY)
		if ips := f.pn.AllocatedIPs(); len(ips) != 0 {
			f.t.Errorf("stopped pod still holds IPs %v", ips)
		}
		if v := f.pn.Veths(); len(v) != 0 {
			f.t.Errorf("stopped pod still has veths %v", v)
		}
		if c := f.ctrOf(); c == nil || c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			f.t.Errorf("container of the stopped pod: %+v, want exited", c)
		}
	}
	removePodAgain := func(f *fpEnv) {
		if err := f.rpcRemovePod(); err != nil {
			f.t.Fatalf("RemovePodSandbox again: %v", err)
		}
		if p := f.podOf(); p != nil {
			f.t.Fatalf("pod still listed after RemovePodSandbox: %+v", p)
		}
		if c := f.ctrOf(); c != nil {
			f.t.Fatalf("container still listed after RemovePodSandbox: %+v", c)
		}
	}
	return []fpCase{
		{point: "pod-run/after-pins", setup: func(f *fpEnv) { f.pull() }, rpc: (*fpEnv).rpcRunPod, after: retryPod},
		{point: "pod-run/after-cni-add", setup: func(f *fpEnv) { f.pull() }, rpc: (*fpEnv).rpcRunPod, after: retryPod},
		{point: "pod-run/after-record", noError: true, setup: func(f *fpEnv) { f.pull() }, rpc: (*fpEnv).rpcRunPod, after: retryPod},
		{point: "pod-stop/after-cni-del", ownPID: true, setup: ctrRunning, rpc: (*fpEnv).rpcStopPod, after: stopAgain},
		{point: "pod-stop/after-unpin", ownPID: true, setup: ctrRunning, rpc: (*fpEnv).rpcStopPod, after: stopAgain},
		{point: "pod-remove/after-containers", setup: ctrRunning, rpc: (*fpEnv).rpcRemovePod, after: removePodAgain},
		{point: "pod-remove/after-unpin", setup: ctrRunning, rpc: (*fpEnv).rpcRemovePod, after: removePodAgain},
		{point: "ctr-create/after-rootfs-mount", setup: podReady, rpc: (*fpEnv).rpcCreateCtr, after: (*fpEnv).retryCreate},
		{point: "ctr-create/after-monitor-spawn", setup: podReady, rpc: (*fpEnv).rpcCreateCtr, after: (*fpEnv).retryCreate},
		// The monitor kills the daemon that waits for its report, before it
		// writes status.json, and goes on a few seconds later: the restarted
		// daemon meets a create in progress. No "error" variant: every
		// monitor is a new process armed anew, so every retry would fail.
		{point: "monitor/before-status", action: "kill-parent", noError: true, setup: podReady, rpc: (*fpEnv).rpcCreateCtr, after: (*fpEnv).retryCreate},
		{point: "ctr-start/after-start", setup: ctrCreated, rpc: (*fpEnv).rpcStartCtr, after: func(f *fpEnv) {
			if st := ctrStatus(f.t, f.d, f.ctr); st.State == runtimeapi.ContainerState_CONTAINER_CREATED {
				f.startCtr()
			}
			f.checkRunning()
		}},
		{point: "ctr-stop/after-stop", setup: ctrRunning, rpc: (*fpEnv).rpcStopCtr, after: func(f *fpEnv) {
			if err := f.rpcStopCtr(); err != nil {
				f.t.Fatalf("StopContainer again: %v", err)
			}
			if st := ctrStatus(f.t, f.d, f.ctr); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode == 0 {
				f.t.Fatalf("stopped container: %v exit %d, want exited by its signal", st.State, st.ExitCode)
			}
		}},
		{point: "ctr-remove/after-destroy", setup: ctrRunning, rpc: (*fpEnv).rpcRemoveCtr, after: removeCtrAgain},
		{point: "ctr-remove/after-record-delete", noError: true, setup: ctrRunning, rpc: (*fpEnv).rpcRemoveCtr, after: removeCtrAgain},
		{point: "image-pull/mid-layer", rpc: (*fpEnv).rpcPull, after: pullAgain},
		{point: "image-pull/after-unpack", rpc: (*fpEnv).rpcPull, after: pullAgain},
		{point: "image-remove/after-record-delete", noError: true, setup: func(f *fpEnv) { f.pull() }, rpc: (*fpEnv).rpcRemoveImage, after: func(f *fpEnv) {
			if err := f.rpcRemoveImage(); err != nil {
				f.t.Fatalf("RemoveImage again: %v", err)
			}
			if img := imageStatus(f.t, f.d, ctrImage); img != nil {
				f.t.Fatalf("image still there after RemoveImage: %+v", img)
			}
		}},
	}
}

func removeCtrAgain(f *fpEnv) {
	if err := f.rpcRemoveCtr(); err != nil {
		f.t.Fatalf("RemoveContainer again: %v", err)
	}
	if c := f.ctrOf(); c != nil {
		f.t.Fatalf("container still listed after RemoveContainer: %+v", c)
	}
	// The pod goes on: a new container runs in it.
	f.ctrCfg.Metadata.Attempt++
	f.createCtr()
	f.startCtr()
	f.checkRunning()
}

func pullAgain(f *fpEnv) {
	if img := imageStatus(f.t, f.d, ctrImage); img != nil {
		f.t.Errorf("an interrupted pull left image %s recorded", img.Id)
	}
	f.pull()
	// The layers are whole: a container runs from them.
	f.runPod()
	f.createCtr()
	f.startCtr()
	f.checkRunning()
}

// TestFailpointMatrix runs every failpoint twice: "kill" (crisp dies there
// and a clean crisp takes over) and "error" (the step fails and the RPC's
// own rollback runs, crisp stays up).
func TestFailpointMatrix(t *testing.T) {
	harness.RequireRegistry(t)
	bin := failpointBinary(t)
	start := time.Now()
	var cases []fpCase
	for _, tc := range failpointCases() {
		if tc.action == "" {
			tc.action = "kill"
		}
		cases = append(cases, tc)
		if !tc.noError {
			tc.action = "error"
			cases = append(cases, tc)
		}
	}
	for _, tc := range cases {
		action := tc.action
		t.Run(strings.ReplaceAll(tc.point, "/", ":")+"="+action, func(t *testing.T) {
			pn := harness.PodNetwork(t)
			arm := "CRISP_FAILPOINTS=" + tc.point + "=" + action
			d := harness.Start(t, harness.WithCNI(pn.ConfDir), harness.WithBinary(bin), harness.WithEnv(arm))
			cfg := podConfig("fp")
			cfg.LogDirectory = t.TempDir()
			if !tc.ownPID {
				cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
			}
			f := &fpEnv{t: t, d: d, pn: pn, podCfg: cfg, ctrCfg: ctrConfig("fp", "echo started; exec sleep 3600")}
			t.Cleanup(func() {
				// A failed case must not leave pods running; the daemon
				// may be dead then, so errors are only logged.
				if d.PID() == 0 || !t.Failed() {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				resp, _ := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
				for _, p := range resp.GetItems() {
					if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
						t.Logf("cleanup: RemovePodSandbox %s: %v", p.Id, err)
					}
				}
			})
			base := takeFootprint(d, pn, bin, nil)
			if tc.setup != nil {
				tc.setup(f)
			}
			var ids []string
			collect := func() {
				ids = append(ids, f.pod, f.ctr)
				if p := f.podOf(); p != nil {
					ids = append(ids, p.Id)
				}
				if c := f.ctrOf(); c != nil {
					ids = append(ids, c.Id)
				}
			}
			collect()

			err := tc.rpc(f)
			if err == nil {
				t.Fatalf("the RPC that reaches %s succeeded", tc.point)
			}
			if action == "error" {
				if !strings.Contains(err.Error(), "failpoint "+tc.point) {
					t.Fatalf("the RPC failed, but not at %s: %v", tc.point, err)
				}
			} else {
				crashed(t, d, tc)
				d.StartAgain(t)
			}
			f.checkConsistent()
			collect()
			if tc.after != nil {
				tc.after(f)
			}
			collect()
			f.checkConsistent()
			f.removeAll()
			// RemoveImage leaves the deletion of the layers' trees to the
			// background, so what is left is looked at until it settles.
			var left []string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				left = base.diff(takeFootprint(d, pn, bin, ids))
				if len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if len(left) != 0 {
				t.Errorf("after removing everything:\n%s", strings.Join(left, "\n"))
			}
			checkNoZombies(t, d)
		})
	}
	t.Logf("failpoint matrix: %d cases in %v", len(cases), time.Since(start).Round(time.Second))
}

// crashed checks that the daemon died by SIGKILL at the armed point.
func crashed(t *testing.T, d *harness.Daemon, tc fpCase) {
	t.Helper()
	state, ok := d.WaitExit(time.Minute)
	if !ok {
		t.Fatalf("crisp did not die at %s\n%s", tc.point, d.LogTail(20))
	}
	if ws, _ := state.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("crisp exited with %v, want killed by SIGKILL at %s\n%s", state, tc.point, d.LogTail(20))
	}
	// The monitor's "fired" line is in its own log, in the bundle.
	if log, _ := os.ReadFile(d.LogPath); tc.action == "kill" && !bytes.Contains(log, []byte("failpoint "+tc.point+" fired")) {
		t.Fatalf("crisp died, but not at %s\n%s", tc.point, d.LogTail(20))
	}
}
