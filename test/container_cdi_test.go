//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// cdiNode is a test device: a node made with mknod in a temp dir, named by
// a CDI spec under another path in the container.
type cdiNode struct {
	name         string // CDI device name, e.g. gpu0
	major, minor uint32
}

// The devices: gpu0 is a copy of /dev/fuse (10:229), which no container may
// open unless its cgroup allows it (libcontainer's default rules do not),
// so opening it proves the CDI cgroup rule; gpu1 is a copy of /dev/zero
// (1:5), which gives data to read.
var cdiNodes = []cdiNode{{"gpu0", 10, 229}, {"gpu1", 1, 5}}

// cdiFixture is a spec directory (given to crisp) and what its spec points
// at on the host.
type cdiFixture struct {
	specDir, devDir, libDir, hookOut string
}

func newCDIFixture(t *testing.T) *cdiFixture {
	t.Helper()
	base := t.TempDir()
	f := &cdiFixture{
		specDir: filepath.Join(base, "cdi"), devDir: filepath.Join(base, "dev"),
		libDir: filepath.Join(base, "lib"), hookOut: filepath.Join(base, "hooks"),
	}
	for _, d := range []string{f.specDir, f.devDir, f.libDir, f.hookOut} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range cdiNodes {
		if err := unix.Mknod(filepath.Join(f.devDir, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			t.Fatalf("mknod: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.libDir, "libvendor.txt"), []byte("vendor-lib-1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// gpuSpec is vendor.example/gpu: device nodes without type or numbers (crisp
// takes them from the host node), a spec-wide env var, mount and
// createRuntime hook (which writes the container state it is given to
// hookOut), and per-device env vars.
func (f *cdiFixture) gpuSpec() string {
	var b strings.Builder
	fmt.Fprintf(&b, `cdiVersion: "0.6.0"
kind: vendor.example/gpu
containerEdits:
  env: [VENDOR_EXAMPLE_DRIVER=1.0]
  mounts:
  - {hostPath: %q, containerPath: /usr/local/vendor, options: [ro, nosuid, nodev, bind]}
  hooks:
  - {hookName: createRuntime, path: /bin/sh, args: [sh, -c, 'cat > %s/$$.json']}
devices:
`, f.libDir, f.hookOut)
	for _, n := range cdiNodes {
		fmt.Fprintf(&b, "- name: %s\n  containerEdits:\n    env: [VENDOR_EXAMPLE_%s=present]\n    deviceNodes: [{path: /dev/vendor/%s, hostPath: %q}]\n",
			n.name, strings.ToUpper(n.name), n.name, filepath.Join(f.devDir, n.name))
	}
	// gpu0 again, read-only: its cgroup rule allows r, not w.
	fmt.Fprintf(&b, "- name: gpu0ro\n  containerEdits:\n    deviceNodes: [{path: /dev/vendor/gpu0ro, hostPath: %q, permissions: r}]\n", filepath.Join(f.devDir, "gpu0"))
	return b.String()
}

// write puts a spec file in place atomically, as the vendors' tools do.
func (f *cdiFixture) write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(f.specDir, name)
	if err := os.WriteFile(p+".tmp", []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return p
}

// hookRuns are the container ids the spec's createRuntime hook saw.
func (f *cdiFixture) hookRuns(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(f.hookOut, "*.json"))
	var ids []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range strings.Split(string(b), `"id":"`)[1:] {
			ids = append(ids, id[:strings.IndexByte(id, '"')])
		}
	}
	return ids
}

// checkGPU0 checks from inside the container what gpu0 brought: the node
// with its numbers, the cgroup rule that lets the container open it, the
// env vars, the mount. It returns what it saw, for the test's log.
func checkGPU0(t *testing.T, d *harness.Daemon, id string) string {
	t.Helper()
	script := `set -e
stat -c 'node %n %F %t:%T' /dev/vendor/gpu0
exec 3<>/dev/vendor/gpu0 && echo "open rw ok"
echo "env VENDOR_EXAMPLE_DRIVER=$VENDOR_EXAMPLE_DRIVER VENDOR_EXAMPLE_GPU0=$VENDOR_EXAMPLE_GPU0"
echo "mount $(cat /usr/local/vendor/libvendor.txt) $(grep ' /usr/local/vendor ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
`
	r := execSync(t, d, id, 20, "sh", "-c", script)
	out := string(r.Stdout)
	if r.ExitCode != 0 {
		t.Fatalf("in the container: exit %d\n%s%s", r.ExitCode, out, r.Stderr)
	}
	for _, want := range []string{
		"node /dev/vendor/gpu0 character special file a:e5", // 10:229 in hex
		"open rw ok",
		"env VENDOR_EXAMPLE_DRIVER=1.0 VENDOR_EXAMPLE_GPU0=present",
		"mount vendor-lib-1.0 ro",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("in the container, want %q in:\n%s", want, out)
		}
	}
	return out
}

// TestCDIDevices: a CDI spec written after crisp started brings device
// nodes (with their cgroup rules), env vars, a mount and a hook into
// containers that ask for them by the CRI field or by annotation; a
// container without them cannot open the same device.
func TestCDIDevices(t *testing.T) {
	f := newCDIFixture(t)
	d, pod, podCfg := busyboxPodWith(t, "cdi", harness.WithTOML(fmt.Sprintf("[cdi]\nspec_dirs = [%q]\n", f.specDir)))
	f.write(t, "vendor-gpu.yaml", f.gpuSpec())

	byField := ctrConfig("by-field", "sleep 3600")
	byField.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0"}}
	fieldID := runCtr(t, d, pod, podCfg, byField)
	t.Logf("CRI field, inside the container:\n%s", checkGPU0(t, d, fieldID))

	byAnn := ctrConfig("by-annotation", "sleep 3600")
	byAnn.Annotations = map[string]string{"cdi.k8s.io/test": "vendor.example/gpu=gpu0,vendor.example/gpu=gpu1"}
	annID := runCtr(t, d, pod, podCfg, byAnn)
	out := checkGPU0(t, d, annID)
	// gpu1 is /dev/zero's numbers: 16 bytes read through the node.
	r := execSync(t, d, annID, 20, "sh", "-c", `echo "gpu1 $(stat -c '%t:%T' /dev/vendor/gpu1) env=$VENDOR_EXAMPLE_GPU1 read=$(head -c 16 /dev/vendor/gpu1 | od -An -tx1 | tr -d ' \n')"`)
	out += string(r.Stdout)
	if want := "gpu1 1:5 env=present read=" + strings.Repeat("00", 16); !strings.Contains(string(r.Stdout), want) {
		t.Errorf("gpu1: exit %d %q %q, want %q", r.ExitCode, r.Stdout, r.Stderr, want)
	}
	t.Logf("annotation, inside the container:\n%s", out)

	// The hook ran once per container, with its id (not once per device:
	// spec-wide edits apply once).
	if runs := f.hookRuns(t); len(runs) != 2 || !slices.Contains(runs, fieldID) || !slices.Contains(runs, annID) {
		t.Errorf("createRuntime hook runs: %v, want one each for %s and %s", runs, fieldID, annID)
	}

	// The same node with the spec's permissions "r": the container's device
	// cgroup lets it read, not write, so the rules above came from the spec
	// (libcontainer's defaults allow neither for 10:229).
	ro := ctrConfig("read-only", "sleep 3600")
	ro.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0ro"}}
	roID := runCtr(t, d, pod, podCfg, ro)
	r = execSync(t, d, roID, 20, "sh", "-c", `stat -c '%t:%T' /dev/vendor/gpu0ro; exec 3</dev/vendor/gpu0ro && echo "open r ok"; exec 4<>/dev/vendor/gpu0ro && echo "open rw ok"`)
	if out := string(r.Stdout) + string(r.Stderr); r.ExitCode == 0 || !strings.Contains(out, "a:e5\nopen r ok\n") ||
		strings.Contains(out, "open rw ok") || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("permissions r: exit %d %q %q, want the open for reading to succeed and for writing to fail with EPERM", r.ExitCode, r.Stdout, r.Stderr)
	}
	t.Logf("permissions r, inside the container: exit %d: %s%s", r.ExitCode, r.Stdout, r.Stderr)
	if runs := f.hookRuns(t); len(runs) != 3 {
		t.Errorf("createRuntime hook runs: %v, want 3", runs)
	}
}

// TestCDIErrors: an unknown device or one whose spec file is broken fails
// CreateContainer with InvalidArgument naming the device and the file, and
// leaves nothing behind; other containers and devices are unaffected and
// the log names the broken file.
func TestCDIErrors(t *testing.T) {
	f := newCDIFixture(t)
	gpuFile := f.write(t, "vendor-gpu.yaml", f.gpuSpec())
	d, pod, podCfg := busyboxPodWith(t, "cdi-errors", harness.WithTOML(fmt.Sprintf("[cdi]\nspec_dirs = [%q]\n", f.specDir)))
	running := ctrConfig("running", "sleep 3600")
	running.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0"}}
	runningID := runCtr(t, d, pod, podCfg, running)

	_, info := podStatus(t, d, pod)
	ctrDirs := func() []string { e, _ := os.ReadDir(filepath.Join(d.Root, "containers")); return names(e) }
	monitors := func() []string { e, _ := os.ReadDir(filepath.Join(d.State, "mon")); return names(e) }
	mountsBefore, dirsBefore, monsBefore, cgroupsBefore := harness.MountsBelow(d.State), ctrDirs(), monitors(), childCgroups(info.Cgroup)
	hooksBefore := len(f.hookRuns(t))
	nothingLeft := func(what string) {
		t.Helper()
		if m := harness.MountsBelow(d.State); !slices.Equal(m, mountsBefore) {
			t.Errorf("%s: mounts changed:\nbefore %v\nafter  %v", what, mountsBefore, m)
		}
		if dirs := ctrDirs(); !slices.Equal(dirs, dirsBefore) {
			t.Errorf("%s: container records changed: before %v, after %v", what, dirsBefore, dirs)
		}
		if mons := monitors(); !slices.Equal(mons, monsBefore) {
			t.Errorf("%s: monitor directories changed: before %v, after %v", what, monsBefore, mons)
		}
		if cg := childCgroups(info.Cgroup); !slices.Equal(cg, cgroupsBefore) {
			t.Errorf("%s: cgroups below the pod changed: before %v, after %v", what, cgroupsBefore, cg)
		}
		list, err := d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{})
		if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != runningID {
			t.Errorf("%s: containers: %v %v", what, list, err)
		}
		if n := len(f.hookRuns(t)); n != hooksBefore {
			t.Errorf("%s: the spec's hook ran for a container that was refused (%d runs, %d before)", what, n, hooksBefore)
		}
	}

	unknown := ctrConfig("unknown", "true")
	unknown.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0"}, {Name: "vendor.example/gpu=gpu9"}}
	err := wantCreateErr(t, d, pod, podCfg, unknown, codes.InvalidArgument, `"vendor.example/gpu=gpu9"`, gpuFile)
	t.Logf("unknown device: %v", err)
	nothingLeft("unknown device")

	brokenFile := f.write(t, "vendor-nic.yaml", "cdiVersion: \"0.6.0\"\nkind: vendor.example/nic\ndevices:\n- name: nic0\n  containerEdits: {env: [NIC=0]\n")
	broken := ctrConfig("broken", "true")
	broken.Annotations = map[string]string{"cdi.k8s.io/nic": "vendor.example/nic=nic0"}
	err = wantCreateErr(t, d, pod, podCfg, broken, codes.InvalidArgument, `"vendor.example/nic=nic0"`, brokenFile)
	t.Logf("broken spec file: %v", err)
	nothingLeft("broken spec file")
	// Logged before CreateContainer answered.
	if !slices.ContainsFunc(strings.Split(d.LogTail(1000), "\n"), func(l string) bool {
		return strings.Contains(l, "CDI spec file failed to load") && strings.Contains(l, brokenFile)
	}) {
		t.Errorf("the daemon log does not name the broken spec file %s", brokenFile)
	}

	badName := ctrConfig("bad-name", "true")
	badName.Annotations = map[string]string{"cdi.k8s.io/x": "gpu0"}
	err = wantCreateErr(t, d, pod, podCfg, badName, codes.InvalidArgument, `config.annotations["cdi.k8s.io/x"]`, `"gpu0"`)
	t.Logf("bad device name: %v", err)
	nothingLeft("bad device name")

	// A driver library directory the spec bind-mounts is missing: refused at
	// create, naming the spec file and the path, not at start by runc.
	missing := filepath.Join(t.TempDir(), "vendor-lib-2.0")
	libFile := f.write(t, "vendor-lib.yaml", fmt.Sprintf("cdiVersion: \"0.6.0\"\nkind: vendor.example/lib\ndevices:\n- name: lib0\n  containerEdits:\n    mounts:\n    - {hostPath: %s, containerPath: /opt/vendor, options: [ro, rbind]}\n", missing))
	noSource := ctrConfig("no-source", "true")
	noSource.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/lib=lib0"}}
	err = wantCreateErr(t, d, pod, podCfg, noSource, codes.FailedPrecondition, `"vendor.example/lib=lib0"`, libFile, missing)
	t.Logf("missing mount source: %v", err)
	nothingLeft("missing mount source")

	// Beside the broken file, the good spec's devices still work, and the
	// running container never noticed.
	again := ctrConfig("again", "sleep 3600")
	again.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu1"}}
	againID := runCtr(t, d, pod, podCfg, again)
	if r := execSync(t, d, againID, 20, "stat", "-c", "%t:%T", "/dev/vendor/gpu1"); strings.TrimSpace(string(r.Stdout)) != "1:5" {
		t.Errorf("gpu1 beside a broken spec: %q %q", r.Stdout, r.Stderr)
	}
	checkGPU0(t, d, runningID)
	// Fixed, the broken file's device is there for the next container.
	f.write(t, "vendor-nic.yaml", "cdiVersion: \"0.6.0\"\nkind: vendor.example/nic\ndevices:\n- name: nic0\n  containerEdits: {env: [NIC=0]}\n")
	broken.Metadata.Name = "fixed"
	broken.Command = []string{"sleep", "3600"}
	fixedID := runCtr(t, d, pod, podCfg, broken)
	if r := execSync(t, d, fixedID, 20, "sh", "-c", "echo $NIC"); strings.TrimSpace(string(r.Stdout)) != "0" {
		t.Errorf("device of the repaired spec: %q", r.Stdout)
	}
}

// TestCDIDisabled: with cdi.enable = false a container that asks for a CDI
// device is refused rather than started without it.
func TestCDIDisabled(t *testing.T) {
	f := newCDIFixture(t)
	f.write(t, "vendor-gpu.yaml", f.gpuSpec())
	d, pod, podCfg := busyboxPodWith(t, "cdi-off", harness.WithArgs("--cdi-enable=false", "--cdi-spec-dirs", f.specDir))
	cfg := ctrConfig("gpu", "true")
	cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0"}}
	wantCreateErr(t, d, pod, podCfg, cfg, codes.FailedPrecondition, "cdi.enable = false")
	runCtr(t, d, pod, podCfg, ctrConfig("no-devices", "true"))
}

// cdiPlugin is an NRI plugin that gives containers named "nri-gpu" the CDI
// device gpu1.
type cdiPlugin struct{ synced chan struct{} }

func (p *cdiPlugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	close(p.synced)
	return nil, nil
}

func (p *cdiPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	a := &api.ContainerAdjustment{}
	if c.GetName() == "nri-gpu" {
		a.AddCDIDevice(&api.CDIDevice{Name: "vendor.example/gpu=gpu1"})
	}
	// What the plugin was shown: the devices the request injected.
	if slices.ContainsFunc(c.GetLinux().GetDevices(), func(d *api.LinuxDevice) bool { return d.Path == "/dev/vendor/gpu0" }) &&
		slices.ContainsFunc(c.GetCDIDevices(), func(d *api.CDIDevice) bool { return d.Name == "vendor.example/gpu=gpu0" }) {
		a.AddEnv("NRI_SAW_GPU0", "yes")
	}
	return a, nil, nil
}

// TestCDIDevicesFromNRI: an NRI plugin adds a CDI device, and sees the
// devices the request injected.
func TestCDIDevicesFromNRI(t *testing.T) {
	f := newCDIFixture(t)
	f.write(t, "vendor-gpu.yaml", f.gpuSpec())
	sock, nriArgs := nriFlags(t)
	d, pod, podCfg := busyboxPodWith(t, "cdi-nri", harness.WithArgs(append(nriArgs, "--cdi-spec-dirs", f.specDir)...))
	p := &cdiPlugin{synced: make(chan struct{})}
	connectPlugin(t, p, sock, "cdi", p.synced)
	cfg := ctrConfig("nri-gpu", "sleep 3600")
	cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0"}}
	id := runCtr(t, d, pod, podCfg, cfg)
	r := execSync(t, d, id, 20, "sh", "-c", `echo "gpu0 $(stat -c %t:%T /dev/vendor/gpu0) gpu1 $(stat -c %t:%T /dev/vendor/gpu1) read=$(head -c 4 /dev/vendor/gpu1 | od -An -tx1 | tr -d ' \n') env=$VENDOR_EXAMPLE_GPU1 saw=$NRI_SAW_GPU0"`)
	if want := "gpu0 a:e5 gpu1 1:5 read=00000000 env=present saw=yes"; strings.TrimSpace(string(r.Stdout)) != want {
		t.Errorf("in the container: %q %q, want %q", r.Stdout, r.Stderr, want)
	}
	t.Logf("NRI-added device, inside the container: %s", strings.TrimSpace(string(r.Stdout)))
}

// busyboxPodWith is busyboxPod with daemon options.
func busyboxPodWith(t *testing.T, name string, opts ...harness.Option) (*harness.Daemon, string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	harness.RequireRegistry(t)
	d := harness.Start(t, opts...)
	pull(t, d, ctrImage)
	pod, podCfg := ctrPod(t, d, name)
	return d, pod, podCfg
}

// wantCreateErr checks that CreateContainer fails with code and a message
// containing every one of msgs, and returns the error.
func wantCreateErr(t *testing.T, d *harness.Daemon, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig, code codes.Code, msgs ...string) error {
	t.Helper()
	resp, err := d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err == nil {
		t.Fatalf("%s: created %s, want %v", cfg.Metadata.Name, resp.ContainerId, code)
	}
	if c := status.Code(err); c != code {
		t.Fatalf("%s: %v, want code %v", cfg.Metadata.Name, err, code)
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("%s: %v, want it to name %q", cfg.Metadata.Name, err, m)
		}
	}
	return err
}
