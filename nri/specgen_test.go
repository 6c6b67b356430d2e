package nri

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/cdi"
)

func TestAdjustEditsTheSpec(t *testing.T) {
	s := &specs.Spec{
		Process:     &specs.Process{Args: []string{"sh"}, Env: []string{"PATH=/bin", "DROP=1", "KEEP=1"}},
		Annotations: map[string]string{"old": "x"},
		Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/data", Type: "bind", Source: "/a"}},
		Linux:       &specs.Linux{},
	}
	a := &api.ContainerAdjustment{}
	a.AddEnv("NEW", "2")
	a.RemoveEnv("DROP")
	a.AddAnnotation("new", "y")
	a.RemoveAnnotation("old")
	a.AddMount(&api.Mount{Destination: "/data", Type: "bind", Source: "/b", Options: []string{"rbind", "ro"}})
	a.AddRlimit("RLIMIT_NOFILE", 1024, 512)
	a.SetLinuxMemoryLimit(1 << 30)
	a.SetLinuxCPUShares(256)
	a.AddDevice(&api.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229})
	a.AddHooks(&api.Hooks{Prestart: []*api.Hook{{Path: "/bin/true"}}})
	if err := adjust(s, a, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/bin", "KEEP=1", "NEW=2"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %v, want %v", s.Process.Env, want)
	}
	if _, ok := s.Annotations["old"]; ok || s.Annotations["new"] != "y" {
		t.Errorf("annotations %v", s.Annotations)
	}
	var data []specs.Mount
	for _, m := range s.Mounts {
		if m.Destination == "/data" {
			data = append(data, m)
		}
	}
	if len(data) != 1 || data[0].Source != "/b" {
		t.Errorf("mounts %+v", s.Mounts)
	}
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Hard != 1024 {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	r := s.Linux.Resources
	if r == nil || *r.Memory.Limit != 1<<30 || *r.CPU.Shares != 256 {
		t.Errorf("resources %+v", r)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/fuse" {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	if s.Hooks == nil || len(s.Hooks.Prestart) != 1 { //nolint:staticcheck // what plugins ask for
		t.Errorf("hooks %+v", s.Hooks)
	}
}

func TestAdjustRefusesWhatCrispCannotResolve(t *testing.T) {
	for name, a := range map[string]func(*api.ContainerAdjustment){
		"cdi":     func(a *api.ContainerAdjustment) { a.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/gpu=0"}) },
		"blockio": func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("slow") },
		"rdt":     func(a *api.ContainerAdjustment) { a.SetLinuxRDTClass("gold") },
		"ns":      func(a *api.ContainerAdjustment) { a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "bogus"}) },
		"rootprop": func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/x", Source: "/nonexistent-crisp-test", Options: []string{"rshared"}})
		},
	} {
		adj := &api.ContainerAdjustment{}
		a(adj)
		s := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
		if err := adjust(s, adj, nil); err == nil {
			t.Errorf("%s: adjustment applied", name)
		}
	}
}

func TestAdjustInjectsCDIDevices(t *testing.T) {
	dir := t.TempDir()
	spec := "cdiVersion: \"0.6.0\"\nkind: vendor.example/gpu\ndevices:\n- name: gpu0\n  containerEdits:\n    env: [GPU=0]\n    deviceNodes: [{path: /dev/gpu0, type: c, major: 1, minor: 5}]\n"
	if err := os.WriteFile(filepath.Join(dir, "gpu.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := cdi.New([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	a := &api.ContainerAdjustment{}
	a.AddCDIDevice(&api.CDIDevice{Name: "vendor.example/gpu=gpu0"})
	s := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Resources: &specs.LinuxResources{}}}
	if err := adjust(s, a, reg); err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/gpu0" || !slices.Contains(s.Process.Env, "GPU=0") {
		t.Errorf("devices %+v env %v", s.Linux.Devices, s.Process.Env)
	}
	if r := s.Linux.Resources.Devices; len(r) != 1 || !r[0].Allow || *r[0].Major != 1 || *r[0].Minor != 5 {
		t.Errorf("cgroup device rules %+v", r)
	}

	a = &api.ContainerAdjustment{}
	a.AddCDIDevice(&api.CDIDevice{Name: "vendor.example/gpu=gpu7"})
	if err := adjust(s, a, reg); err == nil || !strings.Contains(err.Error(), "vendor.example/gpu=gpu7") {
		t.Errorf("unknown device: %v", err)
	}
}
