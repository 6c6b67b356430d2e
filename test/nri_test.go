//go:build integration

package test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// envPlugin is an NRI plugin that injects an environment variable into
// every container and refuses containers named "refused".
type envPlugin struct {
	mu     sync.Mutex
	events []string
	synced chan struct{}
}

func (p *envPlugin) record(e string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
}

func (p *envPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *envPlugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	close(p.synced)
	return nil, nil
}

func (p *envPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox " + pod.GetName())
	return nil
}

func (p *envPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox " + pod.GetName())
	return nil
}

func (p *envPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox " + pod.GetName())
	return nil
}

func (p *envPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer " + c.GetName())
	if c.GetName() == "refused" {
		return nil, nil, errors.New("refused by the test plugin")
	}
	a := &api.ContainerAdjustment{}
	a.AddEnv("NRI_INJECTED", "crisp-test")
	return a, nil, nil
}

func (p *envPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer " + c.GetName())
	return nil
}

func (p *envPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer " + c.GetName())
	return nil, nil
}

func (p *envPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer " + c.GetName())
	return nil
}

// TestNRIPlugin: a plugin's adjustment reaches the container's process,
// and a plugin that refuses a container leaves nothing of it behind.
func TestNRIPlugin(t *testing.T) {
	harness.RequireRegistry(t)
	sock, nriArgs := nriFlags(t)
	d := harness.Start(t, harness.WithArgs(nriArgs...))
	pull(t, d, ctrImage)
	p := &envPlugin{synced: make(chan struct{})}
	connectPlugin(t, p, sock, "env", p.synced)

	pod, podCfg := ctrPod(t, d, "nri")
	id := runCtr(t, d, pod, podCfg, ctrConfig("env", "sleep 1000"))
	if out := string(execSync(t, d, id, 10, "env").Stdout); !strings.Contains(out, "NRI_INJECTED=crisp-test\n") {
		t.Errorf("the plugin's variable is not in the container's environment:\n%s", out)
	}

	_, info := podStatus(t, d, pod)
	ctrDirs := func() []string { e, _ := os.ReadDir(filepath.Join(d.Root, "containers")); return names(e) }
	mountsBefore, dirsBefore, cgroupsBefore := harness.MountsBelow(d.State), ctrDirs(), childCgroups(info.Cgroup)
	_, err := d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("refused", "true"), SandboxConfig: podCfg})
	if err == nil || !strings.Contains(err.Error(), "refused by the test plugin") || !strings.Contains(err.Error(), "NRI") {
		t.Fatalf("CreateContainer refused by a plugin: %v", err)
	}
	if status.Code(err) == codes.OK || status.Code(err) == codes.Internal {
		t.Errorf("code %v for a plugin's refusal", status.Code(err))
	}
	list, err := d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != id {
		t.Errorf("containers after the refusal: %v %v", list, err)
	}
	if m := harness.MountsBelow(d.State); !slices.Equal(m, mountsBefore) {
		t.Errorf("mounts changed by the refused container:\nbefore %v\nafter  %v", mountsBefore, m)
	}
	if dirs := ctrDirs(); !slices.Equal(dirs, dirsBefore) {
		t.Errorf("container directories changed: before %v, after %v", dirsBefore, dirs)
	}
	if cg := childCgroups(info.Cgroup); !slices.Equal(cg, cgroupsBefore) {
		t.Errorf("cgroups below the pod changed: before %v, after %v", cgroupsBefore, cg)
	}
	if _, err := d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("retried", "true"), SandboxConfig: podCfg}); err != nil {
		t.Errorf("create after a refusal: %v", err)
	}

	stopPod(t, d, pod)
	removePod(t, d, pod)
	want := []string{
		"RunPodSandbox nri", "CreateContainer env", "StartContainer env",
		// Plugins hear that the container they refused went away.
		"CreateContainer refused", "StopContainer refused", "RemoveContainer refused",
		"CreateContainer retried",
	}
	got := p.seen()
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("plugin events:\n got %v\nwant %v, then the pod's stop and removal", got, want)
	}
	// Containers stop in parallel; the pod's events come after theirs.
	rest := got[len(want):]
	slices.Sort(rest)
	if wantRest := []string{"RemoveContainer env", "RemoveContainer retried", "RemovePodSandbox nri", "StopContainer env", "StopContainer retried", "StopPodSandbox nri"}; !slices.Equal(rest, wantRest) {
		t.Errorf("plugin events after the pod's stop: %v, want %v", rest, wantRest)
	}
	if i, j := slices.Index(got, "StopContainer env"), slices.Index(got, "StopPodSandbox nri"); i > j {
		t.Errorf("the pod stopped before its container: %v", got)
	}
}

// nriFlags enables NRI on a private socket (returned) and plugin
// directories: the daemon flags.
func nriFlags(t *testing.T) (string, []string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "crisp-nri-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "nri.sock")
	return sock, []string{"--nri-enable", "--nri-socket-path", sock,
		"--nri-plugin-path", filepath.Join(dir, "plugins"), "--nri-plugin-config-path", filepath.Join(dir, "conf.d")}
}

// connectPlugin connects plugin p as 50-name and waits until synced (which
// p's Synchronize closes) is closed.
func connectPlugin(t *testing.T, p any, sock, name string, synced <-chan struct{}) {
	t.Helper()
	s, err := stub.New(p, stub.WithSocketPath(sock), stub.WithPluginName(name), stub.WithPluginIdx("50"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(harness.Ctx(t)); err != nil {
		t.Fatalf("connect the plugin: %v", err)
	}
	t.Cleanup(s.Stop)
	select {
	case <-synced:
	case <-time.After(testutil.Scaled(30 * time.Second)):
		t.Fatal("the plugin was not synchronized")
	}
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// childCgroups lists the cgroups below a pod's, in every hierarchy.
func childCgroups(podCgroup string) []string {
	var out []string
	for _, pattern := range []string{"/sys/fs/cgroup" + podCgroup + "/*", "/sys/fs/cgroup/*" + podCgroup + "/*"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.IsDir() {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	return out
}
