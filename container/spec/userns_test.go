package spec

import (
	"fmt"
	"os"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/sandbox"
)

// usernsInput is a container of a pod with its own user namespace. The
// namespace path is this process's own, so that specconv can read its
// mappings as it reads a pod's.
func usernsInput(t *testing.T) (Input, []sandbox.IDMap) {
	in := baseInput(t)
	maps := []sandbox.IDMap{{ContainerID: 0, HostID: 65536, Size: 65536}}
	in.Pod.UserNS = fmt.Sprintf("/proc/%d/ns/user", os.Getpid())
	in.Pod.UIDMappings = ociIDMaps(maps)
	in.Pod.GIDMappings = ociIDMaps(maps)
	return in, maps
}

func TestUserNamespace(t *testing.T) {
	userns := func(mode sandbox.NamespaceMode, maps []sandbox.IDMap) *UserNamespace {
		return &UserNamespace{Mode: mode, UIDs: maps, GIDs: maps}
	}
	other := []sandbox.IDMap{{ContainerID: 0, HostID: 131072, Size: 65536}}
	for _, tc := range []struct {
		name    string
		podNS   bool
		ctr     func(maps []sandbox.IDMap) *UserNamespace
		join    bool
		wantErr string
	}{
		{name: "kubelet repeats the pod's", podNS: true, ctr: func(m []sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModePod, m)
		}, join: true},
		{name: "absent options follow the pod", podNS: true, join: true},
		{name: "pod mode without mappings", podNS: true, ctr: func([]sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModePod, nil)
		}, join: true},
		{name: "host pod, node mode", ctr: func([]sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModeNode, nil)
		}},
		{name: "host pod, absent options"},
		{name: "other mappings", podNS: true, ctr: func([]sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModePod, other)
		}, wantErr: "differ from the pod's"},
		{name: "node mode in a userns pod", podNS: true, ctr: func([]sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModeNode, nil)
		}, wantErr: "has a user namespace of its own"},
		{name: "pod mode in a host pod", ctr: func(m []sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModePod, m)
		}, wantErr: "has no user namespace"},
		{name: "node mode with mappings", ctr: func(m []sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModeNode, m)
		}, wantErr: "only valid with mode POD"},
		{name: "container mode", podNS: true, ctr: func([]sandbox.IDMap) *UserNamespace {
			return userns(sandbox.ModeContainer, nil)
		}, wantErr: "CONTAINER is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, maps := usernsInput(t)
			if !tc.podNS {
				in = baseInput(t)
			}
			if tc.ctr != nil {
				sc(&in).Namespaces.User = tc.ctr(maps)
			}
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace })
			switch {
			case tc.join && (i < 0 || s.Linux.Namespaces[i].Path != in.Pod.UserNS):
				t.Fatalf("namespaces = %+v, want the pod's user namespace joined", s.Linux.Namespaces)
			case !tc.join && i >= 0:
				t.Fatalf("namespaces = %+v, want the host's user namespace", s.Linux.Namespaces)
			}
			// runc reads the mappings from the namespace; giving them
			// as well is what runc warns about.
			if len(s.Linux.UIDMappings)+len(s.Linux.GIDMappings) > 0 {
				t.Fatalf("spec repeats the mappings: %+v %+v", s.Linux.UIDMappings, s.Linux.GIDMappings)
			}
		})
	}
}

func TestIDMappedVolume(t *testing.T) {
	in, maps := usernsInput(t)
	vol := t.TempDir()
	in.Config.Mounts = []Mount{{ContainerPath: "/data", HostPath: vol, UIDMappings: maps, GIDMappings: maps}}
	s := mustGenerateMount(t, in, "/data")
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}
	if !slices.Equal(s.UIDMappings, want) || !slices.Equal(s.GIDMappings, want) {
		t.Fatalf("mount mappings = %+v / %+v, want %+v", s.UIDMappings, s.GIDMappings, want)
	}

	// An image volume arrives mounted from idmapped layers: the overlay
	// itself cannot be idmapped, so its bind must not ask runc to.
	in.Config.Mounts = []Mount{{ContainerPath: "/img", Readonly: true, Image: &ImageSpec{Image: "busybox"}, UIDMappings: maps, GIDMappings: maps}}
	in.ImageVolumes = map[string]string{"/img": vol}
	if s := mustGenerateMount(t, in, "/img"); len(s.UIDMappings)+len(s.GIDMappings) > 0 {
		t.Fatalf("image volume bind has mappings: %+v", s)
	}

	for name, tc := range map[string]struct {
		mutate func(*Input)
		want   string
	}{
		"uids only": {func(in *Input) { in.Config.Mounts[0].GIDMappings = nil }, "given together"},
		"host pod":  {func(in *Input) { in.Pod.UserNS = "" }, "pods with a user namespace"},
		"empty range": {func(in *Input) {
			in.Config.Mounts[0].UIDMappings = []sandbox.IDMap{{HostID: 65536}}
		}, "length 0"},
	} {
		t.Run(name, func(t *testing.T) {
			in, maps := usernsInput(t)
			in.Config.Mounts = []Mount{{ContainerPath: "/data", HostPath: vol, UIDMappings: maps, GIDMappings: maps}}
			tc.mutate(&in)
			_, _, err := Generate(in)
			wantErr(t, err, tc.want, errInvalid)
		})
	}
}

func mustGenerateMount(t *testing.T, in Input, dst string) specs.Mount {
	t.Helper()
	s, _ := mustGenerate(t, in)
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m
		}
	}
	t.Fatalf("no mount at %s in %+v", dst, s.Mounts)
	return specs.Mount{}
}
