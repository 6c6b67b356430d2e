package cri

import (
	"errors"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

func int64p(v int64) *int64 { return &v }

// fullContainerConfig sets every field crisp reads, and some it drops.
func fullContainerConfig() (*runtimeapi.ContainerConfig, *container.Config) {
	maps := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 65536, Length: 65536}}
	ownMaps := []sandbox.IDMap{{ContainerID: 0, HostID: 65536, Size: 65536}}
	cri := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 3},
		Image: &runtimeapi.ImageSpec{Image: "sha256:abc", Annotations: map[string]string{"i": "j"},
			UserSpecifiedImage: "busybox:1", RuntimeHandler: "rh"},
		Command:    []string{"/bin/sh"},
		Args:       []string{"-c", "sleep 1"},
		WorkingDir: "/w",
		Envs:       []*runtimeapi.KeyValue{{Key: "A", Value: []byte("b=c")}, {Key: "E", Value: nil}, {Key: "BIN", Value: []byte{0xff, 0xfe}}},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: "/srv", Readonly: true, RecursiveReadOnly: true, SelinuxRelabel: true,
				Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, UidMappings: maps, GidMappings: maps,
				MountOptions: []string{"noatime"}},
			{ContainerPath: "/img", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "data:1"}, ImageSubPath: "sub"},
		},
		Devices:     []*runtimeapi.Device{{ContainerPath: "/dev/x", HostPath: "/dev/null", Permissions: "rw"}},
		CDIDevices:  []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=gpu0"}},
		Labels:      map[string]string{"l": "1"},
		Annotations: map[string]string{"a": "2"},
		LogPath:     "app/3.log",
		Stdin:       true, StdinOnce: true, Tty: true,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 28, MemorySwapLimitInBytes: 1 << 29,
				OomScoreAdj: 100, CpusetCpus: "0-1", CpusetMems: "0", Unified: map[string]string{"memory.high": "max"},
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}, {PageSize: "1GB"}},
			},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"},
					AddAmbientCapabilities: []string{"CHOWN"}},
				Privileged: true,
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE,
					Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "other",
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: maps, Gids: maps},
				},
				SelinuxOptions:           &runtimeapi.SELinuxOption{Type: "container_t"},
				RunAsUser:                &runtimeapi.Int64Value{Value: 1000},
				RunAsGroup:               &runtimeapi.Int64Value{Value: 0},
				RunAsUsername:            "app",
				ReadonlyRootfs:           true,
				SupplementalGroups:       []int64{5, 6},
				SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict,
				NoNewPrivs:               true,
				MaskedPaths:              []string{"/proc/kcore"},
				ReadonlyPaths:            []string{},
				Seccomp:                  &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/p.json"},
				Apparmor:                 &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
				ApparmorProfile:          "unconfined",
				SeccompProfilePath:       "runtime/default",
			},
		},
		StopSignal: runtimeapi.Signal_SIGNAL_SIGQUIT,
	}
	own := &container.Config{
		Name: "app", Attempt: 3,
		Image:   spec.ImageSpec{Image: "sha256:abc", Annotations: map[string]string{"i": "j"}, UserSpecifiedImage: "busybox:1", RuntimeHandler: "rh"},
		Command: []string{"/bin/sh"}, Args: []string{"-c", "sleep 1"}, WorkingDir: "/w",
		Envs: []spec.KeyValue{{Key: "A", Value: "b=c"}, {Key: "E", Value: ""}, {Key: "BIN", Value: "\xff\xfe"}},
		Mounts: []spec.Mount{
			{ContainerPath: "/data", HostPath: "/srv", Readonly: true, RecursiveReadOnly: true, SELinuxRelabel: true,
				Propagation: spec.PropagationBidirectional, UIDMappings: ownMaps, GIDMappings: ownMaps, Options: []string{"noatime"}},
			{ContainerPath: "/img", Readonly: true, Image: &spec.ImageSpec{Image: "data:1"}, ImageSubPath: "sub", Propagation: spec.PropagationPrivate},
		},
		Devices:     []spec.Device{{ContainerPath: "/dev/x", HostPath: "/dev/null", Permissions: "rw"}},
		CDIDevices:  []string{"vendor.example/gpu=gpu0"},
		Labels:      map[string]string{"l": "1"},
		Annotations: map[string]string{"a": "2"},
		LogPath:     "app/3.log",
		Stdin:       true, StdinOnce: true, Tty: true,
		Resources: &container.Resources{
			CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512, MemoryLimit: 1 << 28, MemorySwapLimit: 1 << 29,
			OOMScoreAdj: 100, CpusetCPUs: "0-1", CpusetMems: "0", Unified: map[string]string{"memory.high": "max"},
			HugepageLimits: []spec.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}, {PageSize: "1GB"}},
		},
		Security: spec.SecurityContext{
			Privileged:      true,
			AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"},
			Namespaces: spec.NamespaceOptions{PID: sandbox.ModeTarget, TargetID: "other",
				User: &spec.UserNamespace{Mode: sandbox.ModePod, UIDs: ownMaps, GIDs: ownMaps}},
			RunAsUser: int64p(1000), RunAsGroup: int64p(0), RunAsUsername: "app",
			ReadonlyRootfs:     true,
			SupplementalGroups: []int64{5, 6}, SupplementalGroupsPolicy: spec.GroupsStrict,
			NoNewPrivs:         true,
			MaskedPaths:        []string{"/proc/kcore"},
			ReadonlyPaths:      []string{},
			Seccomp:            &spec.SecurityProfile{Type: spec.ProfileLocalhost, LocalhostRef: "/p.json"},
			AppArmor:           &spec.SecurityProfile{Type: spec.ProfileUnconfined},
			AppArmorProfile:    "unconfined",
			SeccompProfilePath: "runtime/default",
		},
	}
	return cri, own
}

// minimalOwn is what a config with only metadata and image becomes: every
// enum at the CRI's zero value, spelled out.
func minimalOwn() *container.Config {
	return &container.Config{
		Name:  "app",
		Image: spec.ImageSpec{Image: "busybox"},
		Security: spec.SecurityContext{
			Namespaces:               spec.NamespaceOptions{PID: sandbox.ModePod},
			SupplementalGroupsPolicy: spec.GroupsMerge,
		},
	}
}

func TestToContainerConfig(t *testing.T) {
	minimal := func() *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}}
	}
	withSC := func(sc *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.ContainerConfig {
		c := minimal()
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: sc}
		return c
	}
	for _, tc := range []struct {
		name    string
		in      *runtimeapi.ContainerConfig
		want    func(*container.Config) // applied to minimalOwn
		full    bool
		wantNil bool
		wantErr bool
	}{
		{name: "nil is the manager's to refuse", wantNil: true},
		{name: "no metadata", in: &runtimeapi.ContainerConfig{Image: &runtimeapi.ImageSpec{Image: "busybox"}}, wantErr: true},
		{name: "metadata and image only", in: minimal(), want: func(*container.Config) {}},
		{
			name: "no image message",
			in:   &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}},
			want: func(c *container.Config) { c.Image = spec.ImageSpec{} },
		},
		{name: "everything", full: true},
		{
			name: "empty linux messages",
			in:   func() *runtimeapi.ContainerConfig { c := withSC(&runtimeapi.LinuxContainerSecurityContext{}); return c }(),
			want: func(*container.Config) {},
		},
		{
			name: "empty resources are requested resources",
			in: func() *runtimeapi.ContainerConfig {
				c := minimal()
				c.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{}}
				return c
			}(),
			want: func(c *container.Config) { c.Resources = &container.Resources{} },
		},
		{
			name: "run as root is set, not absent",
			in:   withSC(&runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{}}),
			want: func(c *container.Config) { c.Security.RunAsUser = int64p(0) },
		},
		{
			name: "unknown enums keep their number",
			in: withSC(&runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions:         &runtimeapi.NamespaceOption{Pid: 7, UsernsOptions: &runtimeapi.UserNamespace{Mode: 8}},
				SupplementalGroupsPolicy: 9,
				Seccomp:                  &runtimeapi.SecurityProfile{ProfileType: 10},
				Apparmor:                 &runtimeapi.SecurityProfile{ProfileType: 11},
			}),
			want: func(c *container.Config) {
				c.Security.Namespaces = spec.NamespaceOptions{PID: "7", User: &spec.UserNamespace{Mode: "8"}}
				c.Security.SupplementalGroupsPolicy = "9"
				c.Security.Seccomp = &spec.SecurityProfile{Type: "10"}
				c.Security.AppArmor = &spec.SecurityProfile{Type: "11"}
			},
		},
		{
			name: "empty profiles are RuntimeDefault",
			in:   withSC(&runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{}, Apparmor: &runtimeapi.SecurityProfile{}}),
			want: func(c *container.Config) {
				c.Security.Seccomp = &spec.SecurityProfile{Type: spec.ProfileRuntimeDefault}
				c.Security.AppArmor = &spec.SecurityProfile{Type: spec.ProfileRuntimeDefault}
			},
		},
		{
			name: "user namespace options without mappings",
			in: withSC(&runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE},
			}}),
			want: func(c *container.Config) { c.Security.Namespaces.User = &spec.UserNamespace{Mode: sandbox.ModeNode} },
		},
		{
			name: "mounts: empty image spec stays, unknown propagation kept",
			in: func() *runtimeapi.ContainerConfig {
				c := minimal()
				c.Mounts = []*runtimeapi.Mount{
					{ContainerPath: "/a", Image: &runtimeapi.ImageSpec{}},
					{ContainerPath: "/b", HostPath: "/b", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
					{ContainerPath: "/c", HostPath: "/c", Propagation: 5},
				}
				return c
			}(),
			want: func(c *container.Config) {
				c.Mounts = []spec.Mount{
					{ContainerPath: "/a", Image: &spec.ImageSpec{}, Propagation: spec.PropagationPrivate},
					{ContainerPath: "/b", HostPath: "/b", Propagation: spec.PropagationHostToContainer},
					{ContainerPath: "/c", HostPath: "/c", Propagation: "5"},
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, want := tc.in, (*container.Config)(nil)
			switch {
			case tc.full:
				in, want = fullContainerConfig()
			case tc.want != nil:
				want = minimalOwn()
				tc.want(want)
			}
			got, err := toContainerConfig(in)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNil {
				if got != nil {
					t.Fatalf("got %+v, want nil", got)
				}
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// Records of schema version 1 hold the CRI message as protojson; decoding
// them gives what CreateContainer's conversion gives.
func TestDecodeContainerConfig(t *testing.T) {
	cri, want := fullContainerConfig()
	b, err := protojson.Marshal(cri)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeContainerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	// JSON, like the wire, cannot tell an empty list from none.
	want.Security.ReadonlyPaths = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Fields a later CRI adds do not stop an older record from loading,
	// nor does a missing metadata message.
	got, err = DecodeContainerConfig([]byte(`{"image":{"image":"busybox"},"someNewField":1}`))
	if err != nil || got.Image.Image != "busybox" || got.Name != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := DecodeContainerConfig([]byte(`{"metadata":`)); err == nil {
		t.Fatal("truncated record decoded")
	}
}

func TestToContainerResources(t *testing.T) {
	if toContainerResources(nil) != nil {
		t.Fatal("no resources became some")
	}
	cri, own := fullContainerConfig()
	if got := toContainerResources(cri.Linux.Resources); !reflect.DeepEqual(got, own.Resources) {
		t.Fatalf("got %+v\nwant %+v", got, own.Resources)
	}
}

// Status reports the mounts as they were requested, each image volume with
// the id of the image mounted.
func TestStatusMounts(t *testing.T) {
	cri, own := fullContainerConfig()
	for _, tc := range []struct {
		name string
		snap *container.Snapshot
		want []*runtimeapi.Mount
	}{
		{name: "none", snap: &container.Snapshot{Container: &container.Container{}}},
		{name: "as requested", snap: &container.Snapshot{Container: &container.Container{Config: *own}}, want: cri.Mounts},
		{
			name: "image volume",
			snap: &container.Snapshot{Container: &container.Container{Config: *own,
				ImageVolumes: []container.ImageVolume{{ContainerPath: "/img", ImageID: "sha256:d1"}}}},
			want: func() []*runtimeapi.Mount {
				ms := []*runtimeapi.Mount{proto.Clone(cri.Mounts[0]).(*runtimeapi.Mount), proto.Clone(cri.Mounts[1]).(*runtimeapi.Mount)}
				ms[1].Image.ImageRef = "sha256:d1"
				return ms
			}(),
		},
		{
			name: "unknown propagation goes back as its number",
			snap: &container.Snapshot{Container: &container.Container{Config: container.Config{Mounts: []spec.Mount{{ContainerPath: "/c", Propagation: "5"}, {ContainerPath: "/d"}}}}},
			want: []*runtimeapi.Mount{{ContainerPath: "/c", Propagation: 5}, {ContainerPath: "/d"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := statusMounts(tc.snap)
			if len(got) != len(tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tc.want[i]) {
					t.Errorf("mount %d:\n got %v\nwant %v", i, got[i], tc.want[i])
				}
			}
		})
	}
	if own.Mounts[1].Image.ImageRef != "" {
		t.Error("status changed the record")
	}
}

func TestToCRIContainerStatus(t *testing.T) {
	_, own := fullContainerConfig()
	created, started := time.Unix(1700000000, 1), time.Unix(1700000001, 2)
	snap := &container.Snapshot{
		Container: &container.Container{
			ID: "c1", PodID: "pod1", Name: "app", Attempt: 3, LogPath: "/var/log/pods/x/app/3.log", CreatedAt: created,
			Image:   container.ImageInfo{Name: "busybox:1", ID: "sha256:abc", Ref: "busybox@sha256:def"},
			Config:  *own,
			Process: &specs.Process{User: specs.User{UID: 1000, GID: 0, AdditionalGids: []uint32{0, 5, 6}}},
		},
		Status: container.Status{State: container.StateRunning, CreatedAt: created, StartedAt: started, Pid: 42},
	}
	md := &runtimeapi.ContainerMetadata{Name: "app", Attempt: 3}
	img := &runtimeapi.ImageSpec{Image: "busybox:1", Annotations: map[string]string{"i": "j"}, UserSpecifiedImage: "busybox:1", RuntimeHandler: "rh"}
	st := toCRIContainerStatus(snap)
	want := &runtimeapi.ContainerStatus{
		Id: "c1", Metadata: md, State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: created.UnixNano(), StartedAt: started.UnixNano(), FinishedAt: 0,
		Image: img, ImageRef: "busybox@sha256:def", ImageId: "sha256:abc",
		Labels: own.Labels, Annotations: own.Annotations, Mounts: st.Mounts, LogPath: "/var/log/pods/x/app/3.log",
		Resources: &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{}},
		User:      &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 1000, Gid: 0, SupplementalGroups: []int64{0, 5, 6}}},
	}
	if !proto.Equal(st, want) {
		t.Errorf("status:\n got %v\nwant %v", st, want)
	}
	wantList := &runtimeapi.Container{
		Id: "c1", PodSandboxId: "pod1", Metadata: md, Image: img, ImageRef: "sha256:abc", ImageId: "sha256:abc",
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: created.UnixNano(), Labels: own.Labels, Annotations: own.Annotations,
	}
	if got := toCRIContainer(snap); !proto.Equal(got, wantList) {
		t.Errorf("list entry:\n got %v\nwant %v", got, wantList)
	}
	// A record without a process (an exited container from before) has no user.
	snap.Process, snap.Status = nil, container.Status{State: container.StateExited, ExitCode: 137, Reason: "OOMKilled"}
	if st := toCRIContainerStatus(snap); st.User != nil || st.ExitCode != 137 || st.Reason != "OOMKilled" || st.CreatedAt != 0 ||
		st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("exited: %v", st)
	}
}

func TestToCRIResources(t *testing.T) {
	adj := -500
	for _, tc := range []struct {
		name string
		r    *specs.LinuxResources
		p    *specs.Process
		want *runtimeapi.LinuxContainerResources
	}{
		{name: "nothing", want: &runtimeapi.LinuxContainerResources{}},
		{name: "empty", r: &specs.LinuxResources{}, p: &specs.Process{}, want: &runtimeapi.LinuxContainerResources{}},
		{
			name: "everything",
			r: &specs.LinuxResources{
				CPU:            &specs.LinuxCPU{Shares: uint64p(2), Quota: int64p(-1), Period: uint64p(100000), Cpus: "1", Mems: "0"},
				Memory:         &specs.LinuxMemory{Limit: int64p(1 << 20), Swap: int64p(1 << 21)},
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
				Unified:        map[string]string{"memory.high": "1"},
			},
			p: &specs.Process{OOMScoreAdj: &adj},
			want: &runtimeapi.LinuxContainerResources{
				CpuShares: 2, CpuQuota: -1, CpuPeriod: 100000, CpusetCpus: "1", CpusetMems: "0",
				MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: 1 << 21, OomScoreAdj: -500,
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
				Unified:        map[string]string{"memory.high": "1"},
			},
		},
	} {
		if got := toCRIResources(tc.r, tc.p); !proto.Equal(got, &runtimeapi.ContainerResources{Linux: tc.want}) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func uint64p(v uint64) *uint64 { return &v }

func TestToContainerFilter(t *testing.T) {
	running := container.StateRunning
	for _, tc := range []struct {
		name string
		in   *runtimeapi.ContainerFilter
		want container.Filter
	}{
		{name: "nil matches everything"},
		{name: "empty matches everything", in: &runtimeapi.ContainerFilter{}},
		{
			name: "everything",
			in: &runtimeapi.ContainerFilter{Id: "c", PodSandboxId: "p", LabelSelector: map[string]string{"a": "b"},
				State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
			want: container.Filter{ID: "c", PodID: "p", LabelSelector: map[string]string{"a": "b"}, State: &running},
		},
	} {
		if got := toContainerFilter(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	for cri, own := range containerStates {
		st := &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: cri}}
		if got := toContainerFilter(st); got.State == nil || *got.State != own || criContainerStates[own] != cri {
			t.Errorf("state %v: filter %v, back %v", cri, got.State, criContainerStates[own])
		}
	}
}
