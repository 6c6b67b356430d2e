package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
)

// gpuSpec defines vendor.example/gpu=gpu0 and gpu1: fully specified device
// nodes (no host node needed), an env var, a mount and a hook.
const gpuSpec = `cdiVersion: "0.6.0"
kind: vendor.example/gpu
containerEdits:
  env: ["GPU_VENDOR=example"]
devices:
- name: gpu0
  containerEdits:
    env: ["GPU=0"]
    deviceNodes:
    - {path: /dev/gpu0, type: c, major: 1, minor: 5, permissions: rw}
    mounts:
    - {hostPath: /tmp, containerPath: /opt/gpu0, options: [ro, bind]}
    hooks:
    - {hookName: createContainer, path: /bin/true, args: [true, gpu0]}
- name: gpu1
  containerEdits:
    env: ["GPU=1"]
    deviceNodes:
    - {path: /dev/gpu1, type: c, major: 1, minor: 7}
`

func writeSpec(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSpec() *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Env: []string{"PATH=/bin"}}, Linux: &specs.Linux{Resources: &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}}}
}

func TestInjectAppliesEveryEdit(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, "gpu.yaml", gpuSpec)
	r, err := New([]string{dir, filepath.Join(t.TempDir(), "absent")})
	if err != nil {
		t.Fatal(err)
	}
	s := newSpec()
	if err := r.Inject(s, []string{"vendor.example/gpu=gpu0"}); err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/gpu0" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 5 {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	rules := s.Linux.Resources.Devices
	if last := rules[len(rules)-1]; len(rules) != 2 || !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 5 || last.Access != "rw" {
		t.Errorf("cgroup device rules %+v (the deny-all must stay first)", rules)
	}
	for _, want := range []string{"PATH=/bin", "GPU_VENDOR=example", "GPU=0"} {
		if !slices.Contains(s.Process.Env, want) {
			t.Errorf("env %v lacks %s", s.Process.Env, want)
		}
	}
	if len(s.Mounts) != 1 || s.Mounts[0].Destination != "/opt/gpu0" || s.Mounts[0].Source != "/tmp" {
		t.Errorf("mounts %+v", s.Mounts)
	}
	if s.Hooks == nil || len(s.Hooks.CreateContainer) != 1 || s.Hooks.CreateContainer[0].Path != "/bin/true" {
		t.Errorf("hooks %+v", s.Hooks)
	}
}

func TestInjectRereadsChangedSpecs(t *testing.T) {
	dir := t.TempDir()
	r, err := New([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu0"}); err == nil {
		t.Fatal("a device no spec defines was injected")
	}
	// Written after start and used at once, as a DRA driver does.
	p := writeSpec(t, dir, "gpu.yaml", gpuSpec)
	if err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu1"}); err != nil {
		t.Fatalf("spec written after start: %v", err)
	}
	writeSpec(t, dir, "gpu.yaml", strings.Replace(gpuSpec, "name: gpu1", "name: gpu2", 1))
	if err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu2"}); err != nil {
		t.Fatalf("rewritten spec: %v", err)
	}
	if err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu1"}); err == nil {
		t.Fatal("a device removed from its spec was injected")
	}
	os.Remove(p)
	if err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu0"}); err == nil {
		t.Fatal("a device of a removed spec was injected")
	}
}

func TestInjectErrorsNameDeviceAndFile(t *testing.T) {
	dir := t.TempDir()
	good := writeSpec(t, dir, "gpu.yaml", gpuSpec)
	broken := writeSpec(t, dir, "nic.yaml", "cdiVersion: \"0.6.0\"\nkind: vendor.example/nic\ndevices: [{name: nic0, containerEdits: {env: [\n")
	missing := writeSpec(t, dir, "fpga.yaml", `cdiVersion: "0.6.0"
kind: vendor.example/fpga
devices:
- name: fpga0
  containerEdits:
    deviceNodes: [{path: /dev/crisp-test-no-such-fpga}]
`)
	r, err := New([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		devices []string
		want    []string
	}{
		"unknown name": {[]string{"vendor.example/gpu=gpu9"}, []string{`"vendor.example/gpu=gpu9"`, good, broken}},
		"unknown kind": {[]string{"other.example/tpu=0"}, []string{`"other.example/tpu=0"`, dir}},
		"broken file":  {[]string{"vendor.example/gpu=gpu0", "vendor.example/nic=nic0"}, []string{`"vendor.example/nic=nic0"`, broken}},
		"no host node": {[]string{"vendor.example/gpu=gpu0", "vendor.example/fpga=fpga0"}, []string{`"vendor.example/fpga=fpga0"`, missing, "/dev/crisp-test-no-such-fpga"}},
	} {
		err := r.Inject(newSpec(), tc.devices)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: want InvalidArgument, got %v", name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %s", name, err, w)
			}
		}
	}
	// The good spec's devices are unaffected by the broken one.
	if err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu0"}); err != nil {
		t.Errorf("device of a good spec beside a broken one: %v", err)
	}
}

func TestDisabledRefusesDevices(t *testing.T) {
	var r *Registry
	if err := r.Inject(newSpec(), nil); err != nil {
		t.Errorf("no devices: %v", err)
	}
	err := r.Inject(newSpec(), []string{"vendor.example/gpu=gpu0"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "cdi.enable") {
		t.Errorf("want FailedPrecondition naming cdi.enable, got %v", err)
	}
}

func TestRequested(t *testing.T) {
	got, err := Requested([]string{"a.example/x=1", "a.example/x=2"}, map[string]string{
		"cdi.k8s.io/z":    "a.example/x=2,b.example/y=0",
		"cdi.k8s.io/a":    "c.example/z=0",
		"other.io/device": "not-cdi",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.example/x=1", "a.example/x=2", "c.example/z=0", "b.example/y=0"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for name, tc := range map[string]struct {
		field []string
		ann   map[string]string
		want  string
	}{
		"field":      {[]string{"gpu0"}, nil, "config.CDI_devices[0]"},
		"annotation": {nil, map[string]string{"cdi.k8s.io/gpu": "a.example/x=1,,"}, `config.annotations["cdi.k8s.io/gpu"]`},
	} {
		_, err := Requested(tc.field, tc.ann)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want InvalidArgument naming %s, got %v", name, tc.want, err)
		}
	}
}

// A bind mount whose host path is gone fails the create, naming the device,
// the spec file and the path; a mount of another type is the runtime's to
// make and is not checked.
func TestInjectRefusesMissingMountSource(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(t.TempDir(), "driver-lib")
	file := writeSpec(t, dir, "lib.yaml", `cdiVersion: "0.6.0"
kind: vendor.example/lib
devices:
- name: gone
  containerEdits:
    mounts:
    - {hostPath: `+missing+`, containerPath: /opt/lib, options: [ro, rbind]}
- name: scratch
  containerEdits:
    mounts:
    - {hostPath: tmpfs, containerPath: /scratch, type: tmpfs}
`)
	r, err := New([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Inject(newSpec(), []string{"vendor.example/lib=gone"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("missing mount source: %v, want FailedPrecondition", err)
	}
	for _, want := range []string{`"vendor.example/lib=gone"`, file, missing} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if err := r.Inject(newSpec(), []string{"vendor.example/lib=scratch"}); err != nil {
		t.Errorf("tmpfs mount: %v", err)
	}
	if err := os.Mkdir(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.Inject(newSpec(), []string{"vendor.example/lib=gone"}); err != nil {
		t.Errorf("after the host path appeared: %v", err)
	}
}
