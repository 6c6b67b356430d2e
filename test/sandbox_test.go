//go:build integration

package test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

func TestSandboxLifecycle(t *testing.T) {
	net := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(net.ConfDir))
	cfg := podConfig("lifecycle")
	cfg.Hostname = "life-host"
	id := runPod(t, d, cfg)

	st, info := podStatus(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.CreatedAt <= 0 {
		t.Fatalf("status = %v", st)
	}
	if st.GetNetwork().GetIp() == "" {
		t.Fatal("no pod IP in status")
	}
	if got := st.GetLinux().GetNamespaces().GetOptions().GetPid(); got != runtimeapi.NamespaceMode_CONTAINER {
		t.Errorf("status pid mode = %v", got)
	}
	if st.Labels["test"] != "lifecycle" || st.Annotations["crisp.test/seq"] == "" {
		t.Errorf("labels/annotations not kept: %v %v", st.Labels, st.Annotations)
	}
	for _, k := range []string{"net", "ipc", "uts"} {
		if !isNSFS(info.Namespaces[k]) {
			t.Errorf("%s namespace not pinned at %q", k, info.Namespaces[k])
		}
	}
	if _, ok := info.Namespaces["pid"]; ok || info.Reaper != nil {
		t.Error("a pod with per-container PID namespaces got a pod PID namespace")
	}
	if got := nsenter(t, []string{"--uts=" + info.Namespaces["uts"]}, "hostname"); got != "life-host" {
		t.Errorf("hostname in the pod's UTS namespace = %q", got)
	}
	if got := readFile(t, info.HostnamePath); got != "life-host\n" {
		t.Errorf("hostname file = %q", got)
	}
	if h := readFile(t, info.HostsPath); !strings.Contains(h, "127.0.0.1\tlocalhost") || !strings.Contains(h, st.Network.Ip+"\tlife-host") {
		t.Errorf("hosts file:\n%s", h)
	}
	if !strings.Contains(string(mustMountinfo(t)), info.ShmPath+" ") {
		t.Errorf("pod shm %s not mounted", info.ShmPath)
	}
	if _, err := os.Stat(cgroupDir("memory", info.Cgroup)); err != nil {
		t.Errorf("pod cgroup: %v", err)
	}

	stopPod(t, d, id)
	stopPod(t, d, id) // kubelet stops again before removing
	st, _ = podStatus(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("state after stop = %v", st.State)
	}
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left after stop: %v", m)
	}
	if ips := net.AllocatedIPs(); len(ips) != 0 {
		t.Errorf("IPs still allocated after stop: %v", ips)
	}
	removePod(t, d, id)
	removePod(t, d, id)
	_, err := d.Runtime.PodSandboxStatus(harness.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("status of a removed pod: %v, want NotFound", err)
	}
	if _, err := os.Stat(cgroupDir("memory", info.Cgroup)); !os.IsNotExist(err) {
		t.Errorf("pod cgroup left: %v", err)
	}
	if _, err := d.Runtime.StopPodSandbox(harness.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: "0123unknown"}); err != nil {
		t.Errorf("stop of an unknown pod: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "0123unknown"}); err != nil {
		t.Errorf("remove of an unknown pod: %v", err)
	}
}

func mustMountinfo(t *testing.T) []byte {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSandboxInvalidRequests(t *testing.T) {
	d := harness.Start(t)
	ctx := harness.Ctx(t)
	run := func(cfg *runtimeapi.PodSandboxConfig, handler string) error {
		_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
		return err
	}
	cfg := func(mut func(*runtimeapi.PodSandboxConfig)) *runtimeapi.PodSandboxConfig {
		c := podConfig("invalid")
		mut(c)
		return c
	}
	for _, tc := range []struct {
		name, field string
		err         error
	}{
		{"no config", "config", run(nil, "")},
		{"no metadata", "config.metadata", run(cfg(func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil }), "")},
		{"no name", "config.metadata.name", run(cfg(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" }), "")},
		{"no uid", "config.metadata.uid", run(cfg(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" }), "")},
		{"no namespace", "config.metadata.namespace", run(cfg(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "" }), "")},
		{"runtime handler", "runtime handler \"kata\"", run(podConfig("invalid"), "kata")},
		{"node sysctl", "vm.swappiness", run(cfg(func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"vm.swappiness": "1"} }), "")},
	} {
		if status.Code(tc.err) != codes.InvalidArgument || !strings.Contains(status.Convert(tc.err).Message(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, tc.err, tc.field)
		}
	}
	_, err := d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("status of unknown pod: %v", err)
	}
	if resp, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(resp.Items) != 0 {
		t.Errorf("failed Runs left pods: %v, %v", resp, err)
	}
}

func hostNSConfig(name string) *runtimeapi.PodSandboxConfig {
	c := podConfig(name)
	c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE,
	}
	return c
}

func TestSandboxHostNamespaces(t *testing.T) {
	// No CNI configuration at all: host network pods must not need one.
	d := harness.Start(t)
	id := runPod(t, d, hostNSConfig("hostns"))
	st, info := podStatus(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("state %v", st.State)
	}
	if len(info.Namespaces) != 0 || info.Reaper != nil {
		t.Errorf("host namespace pod pinned %v / reaper %v", info.Namespaces, info.Reaper)
	}
	if info.ShmPath != "/dev/shm" {
		t.Errorf("host IPC pod shm = %q", info.ShmPath)
	}
	host, _ := os.Hostname()
	if got := readFile(t, info.HostnamePath); got != host+"\n" {
		t.Errorf("hostname file %q, want the node's %q", got, host)
	}
	if got, want := readFile(t, info.HostsPath), readFile(t, "/etc/hosts"); got != want {
		t.Errorf("hosts file is not the host's:\n%s", got)
	}
	if got, want := readFile(t, info.ResolvPath), readFile(t, "/etc/resolv.conf"); got != want {
		t.Errorf("resolv.conf is not the host's:\n%s", got)
	}
	if got := st.GetLinux().GetNamespaces().GetOptions(); got.Network != runtimeapi.NamespaceMode_NODE || got.Ipc != runtimeapi.NamespaceMode_NODE || got.Pid != runtimeapi.NamespaceMode_NODE {
		t.Errorf("namespace options in status: %v", got)
	}
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("host namespace pod has mounts: %v", m)
	}
	stopPod(t, d, id)
	removePod(t, d, id)
}

func TestSandboxSharedPIDReaper(t *testing.T) {
	net := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(net.ConfDir))
	cfg := podConfig("sharedpid")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	id := runPod(t, d, cfg)
	st, info := podStatus(t, d, id)
	if st.GetLinux().GetNamespaces().GetOptions().GetPid() != runtimeapi.NamespaceMode_POD {
		t.Errorf("status pid mode %v", st.GetLinux().GetNamespaces().GetOptions().GetPid())
	}
	if info.Reaper == nil || !isNSFS(info.Namespaces["pid"]) {
		t.Fatalf("no reaper (%v) or pid pin (%q)", info.Reaper, info.Namespaces["pid"])
	}
	reaper := info.Reaper.PID
	if !isReaper(reaper) || !nsPID1(t, reaper) {
		t.Fatalf("process %d is not crisp's pod-init as PID 1 of the pod", reaper)
	}
	// It must survive a daemon's process group being killed.
	if sid, _ := readSID(reaper); sid != reaper {
		t.Errorf("reaper is not a session leader (sid %d)", sid)
	}

	// Orphan a process inside: the shell exits at once and leaves a
	// background sleep to the namespace's init, which must reap it.
	out := nsenter(t, []string{"--pid=" + info.Namespaces["pid"]}, "/bin/sh", "-c", "echo $$; sleep 1 >/dev/null 2>&1 & exit 0")
	if out == "1" || out == "" {
		t.Fatalf("shell in the pod's PID namespace had pid %q", out)
	}
	testutil.WaitFor(t, "the orphan to be adopted", 2*time.Second, func() bool { return len(testutil.Children(reaper)) > 0 })
	testutil.WaitFor(t, "the orphan to be reaped", 5*time.Second, func() bool { return len(testutil.Children(reaper)) == 0 })

	// A process of the pod outlives nothing: stopping the pod kills the
	// namespace's init and with it everything in the namespace.
	sleeper := exec.Command("nsenter", "--pid="+info.Namespaces["pid"], "--", "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	stopPod(t, d, id)
	if procAlive(reaper) && isReaper(reaper) {
		t.Error("reaper alive after stop")
	}
	select {
	case <-exited:
	case <-time.After(testutil.Scaled(5 * time.Second)):
		_ = sleeper.Process.Kill()
		t.Error("a process of the pod's PID namespace survived the pod's stop")
	}
	removePod(t, d, id)
}

func readSID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var sid int
	_, err = fmt.Sscan(f[3], &sid)
	return sid, err
}

func TestSandboxDuplicateAndAttempts(t *testing.T) {
	d := harness.Start(t)
	ctx := harness.Ctx(t)
	cfg := hostNSConfig("dup")
	first := runPod(t, d, cfg)
	_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), first) {
		t.Fatalf("duplicate Run: %v, want AlreadyExists naming %s", err, first)
	}
	stopPod(t, d, first)
	if _, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate of a stopped pod: %v", err)
	}
	next := proto.Clone(cfg).(*runtimeapi.PodSandboxConfig)
	next.Metadata.Attempt = 1
	second := runPod(t, d, next)
	removePod(t, d, first)
	third := runPod(t, d, cfg)
	if third == first || second == first {
		t.Fatal("ids reused")
	}

	// Concurrent Runs of one pod: one sandbox, the other requests fail.
	race := hostNSConfig("race")
	var wg sync.WaitGroup
	ids := make([]string, 5)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: race}); err == nil {
				ids[i] = resp.PodSandboxId
			}
		}()
	}
	wg.Wait()
	won := 0
	for _, id := range ids {
		if id != "" {
			won++
			removePod(t, d, id)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 5 concurrent Runs of one pod succeeded: %v", won, ids)
	}
}

func TestSandboxListFiltersAndStream(t *testing.T) {
	d := harness.Start(t)
	ctx := harness.Ctx(t)
	a := runPod(t, d, hostNSConfig("list-a"))
	b := runPod(t, d, hostNSConfig("list-b"))
	stopPod(t, d, b)
	list := func(f *runtimeapi.PodSandboxFilter) []string {
		resp, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range resp.Items {
			ids = append(ids, p.Id)
		}
		return ids
	}
	ready := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	for name, tc := range map[string]struct {
		f    *runtimeapi.PodSandboxFilter
		want []string
	}{
		"all":        {nil, []string{a, b}},
		"id":         {&runtimeapi.PodSandboxFilter{Id: b}, []string{b}},
		"id prefix":  {&runtimeapi.PodSandboxFilter{Id: a[:12]}, []string{a}},
		"ready":      {&runtimeapi.PodSandboxFilter{State: ready}, []string{a}},
		"label":      {&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"test": "list-b"}}, []string{b}},
		"no match":   {&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"test": "other"}}, nil},
		"id + state": {&runtimeapi.PodSandboxFilter{Id: b, State: ready}, nil},
	} {
		if got := list(tc.f); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
	stream, err := d.Runtime.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []string
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				t.Skip("client/server without StreamPodSandboxes")
			}
			t.Fatal(err)
		}
		for _, p := range msg.PodSandboxes {
			streamed = append(streamed, p.Id)
		}
	}
	if strings.Join(streamed, ",") != a+","+b {
		t.Errorf("streamed %v", streamed)
	}
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: a, Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
	}); err != nil {
		t.Errorf("UpdatePodSandboxResources: %v", err)
	}
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: a, Resources: &runtimeapi.LinuxContainerResources{OomScoreAdj: 5000},
	}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid UpdatePodSandboxResources: %v", err)
	}
}

func TestSandboxInterruptedRunIsRolledBackAtStart(t *testing.T) {
	d := harness.Start(t)
	d.Stop(t)
	// What a crash right after the first record write leaves: a "creating"
	// record and part of what it planned.
	id := strings.Repeat("ab", 32)
	cg := "/crisp/pod-" + id
	created := []string{cgroupDir("pids", cg)}
	if err := os.MkdirAll(created[0], 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(created[0]) })
	rec := map[string]any{"version": 1, "sandbox": map[string]any{
		"id": id, "state": "creating", "cgroup": cg, "cgroupCreated": created,
		"config": map[string]any{"metadata": map[string]any{"name": "crashed", "uid": "u", "namespace": "n"},
			"namespaces": map[string]any{"network": "node", "ipc": "node", "pid": "node"}},
		"network": map[string]any{"attached": false},
	}}
	dir := filepath.Join(d.Root, "pods", id)
	os.MkdirAll(dir, 0o700)
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(dir, "sandbox.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	d.Restart(t)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("record of the interrupted pod left: %v", err)
	}
	if _, err := os.Stat(created[0]); !os.IsNotExist(err) {
		t.Errorf("cgroup of the interrupted pod left: %v", err)
	}
	// Its name is free again.
	cfg := hostNSConfig("crashed")
	cfg.Metadata.Uid, cfg.Metadata.Namespace = "u", "n"
	removePod(t, d, runPod(t, d, cfg))
}
