package spec

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/sandbox"
)

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Input)
		wantErr string
		invalid bool
	}{
		{name: "nil config", mutate: func(in *Input) { in.Config = nil }, wantErr: "config is required", invalid: true},
		{name: "no name", mutate: func(in *Input) { in.Config.Name = "" }, wantErr: "config.metadata.name is required", invalid: true},
		{name: "huge annotations", mutate: func(in *Input) {
			in.Config.Annotations = map[string]string{"a": strings.Repeat("x", maxAnnotationBytes)}
		}, wantErr: "config.annotations", invalid: true},
		{name: "too many args", mutate: func(in *Input) { in.Config.Args = make([]string, maxArgs+1) }, wantErr: "config.command/args", invalid: true},
		{name: "relative rootfs", mutate: func(in *Input) { in.RootfsPath = "rootfs" }, wantErr: "not absolute"},
		{name: "no id", mutate: func(in *Input) { in.ID = "" }, wantErr: "container id is empty"},
		{name: "bad driver", mutate: func(in *Input) { in.Options.CgroupDriver = "lxc" }, wantErr: "unknown cgroup driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			tc.mutate(&in)
			_, _, err := Generate(in)
			var kind error
			if tc.invalid {
				kind = errInvalid
			}
			wantErr(t, err, tc.wantErr, kind)
		})
	}
}

func TestAnnotations(t *testing.T) {
	in := baseInput(t)
	in.Config.Annotations = map[string]string{"org.systemd.property.DeviceAllow": "'/dev/sda rwm'", "a": "b"}
	s, _ := mustGenerate(t, in)
	want := map[string]string{
		AnnotationContainerType: "container", AnnotationContainerName: "app", AnnotationSandboxID: "pod1",
		AnnotationSandboxName: "web", AnnotationSandboxNamespace: "default", AnnotationSandboxUID: "uid-1",
		AnnotationImageName: "registry.local/app:1",
	}
	if !maps.Equal(s.Annotations, want) {
		t.Fatalf("annotations = %v", s.Annotations)
	}
}

// A container with everything set, on each cgroup flavour, must be
// accepted by libcontainer.
func TestKitchenSink(t *testing.T) {
	for _, o := range []Options{
		{CgroupDriver: "cgroupfs", SwapController: true, HugetlbController: true},
		{CgroupDriver: "systemd", SwapController: true},
		{CgroupDriver: "cgroupfs", CgroupV2: true, SwapController: true, HugetlbController: true, RestrictOOMScoreAdj: true},
		{CgroupDriver: "systemd", CgroupV2: true},
	} {
		in := baseInput(t)
		in.Options = o
		in.Options.RecursiveReadOnlyMounts = true
		if o.CgroupDriver == "systemd" {
			in.Pod.CgroupParent = "kubepods-besteffort-poduid_1.slice"
		}
		in.Pod.PIDNS = "/run/crisp/ns/pod1/pid"
		in.Pod.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1"}
		in.Image.Env = []string{"PATH=/bin", "LANG=C"}
		in.Image.User = "app"
		in.Config.Tty = true
		in.Config.Envs = []KeyValue{{Key: "X", Value: "1"}}
		in.Config.Mounts = []Mount{{ContainerPath: "/data", HostPath: t.TempDir(), Readonly: true, RecursiveReadOnly: true}}
		in.Config.Devices = []Device{{HostPath: "/dev/null", ContainerPath: "/dev/extra-null", Permissions: "rw"}}
		c := sc(&in)
		c.Namespaces.PID = sandbox.ModePod
		c.NoNewPrivs, c.ReadonlyRootfs = true, true
		c.SupplementalGroups = []int64{5000}
		c.AddCapabilities, c.DropCapabilities = []string{"NET_ADMIN"}, []string{"MKNOD"}
		c.Seccomp = &SecurityProfile{Type: ProfileRuntimeDefault}
		in.Config.Resources = &Resources{
			CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 256, MemoryLimit: 64 << 20, OOMScoreAdj: 1000,
			HugepageLimits: []HugepageLimit{{PageSize: "2MB", Limit: 0}},
		}
		if o.CgroupV2 {
			in.Config.Resources.Unified = map[string]string{"memory.high": "50000000"}
		}
		s, _ := mustGenerate(t, in)
		if _, err := json.Marshal(s); err != nil {
			t.Fatal(err)
		}
	}
}
