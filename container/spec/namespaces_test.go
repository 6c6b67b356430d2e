package spec

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNamespaces(t *testing.T) {
	const (
		podNet = "/run/crisp/ns/pod1/net"
		podPID = "/run/crisp/ns/pod1/pid"
	)
	type ns = specs.LinuxNamespace
	common := []ns{{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: podNet},
		{Type: specs.IPCNamespace, Path: "/run/crisp/ns/pod1/ipc"}, {Type: specs.UTSNamespace, Path: "/run/crisp/ns/pod1/uts"}}
	for _, tc := range []struct {
		name     string
		ctr, pod runtimeapi.NamespaceMode
		podPIDNS string
		target   string
		hostNet  bool
		v2, priv bool
		want     []ns
		wantErr  string
	}{
		{name: "container pid", ctr: runtimeapi.NamespaceMode_CONTAINER, pod: runtimeapi.NamespaceMode_CONTAINER,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace})},
		{name: "pod pid", ctr: runtimeapi.NamespaceMode_POD, pod: runtimeapi.NamespaceMode_POD, podPIDNS: podPID,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace, Path: podPID})},
		{name: "pod pid missing", ctr: runtimeapi.NamespaceMode_POD, pod: runtimeapi.NamespaceMode_POD, wantErr: "no shared PID namespace"},
		{name: "zero-value pid in a container-mode pod", ctr: runtimeapi.NamespaceMode_POD, pod: runtimeapi.NamespaceMode_CONTAINER,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace})},
		{name: "node pid", ctr: runtimeapi.NamespaceMode_NODE, pod: runtimeapi.NamespaceMode_NODE, want: common},
		{name: "node pid without hostPID pod", ctr: runtimeapi.NamespaceMode_NODE, pod: runtimeapi.NamespaceMode_CONTAINER, wantErr: "does not use the host PID namespace"},
		{name: "target pid", ctr: runtimeapi.NamespaceMode_TARGET, pod: runtimeapi.NamespaceMode_CONTAINER, target: "/proc/42/ns/pid",
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"})},
		{name: "target unknown", ctr: runtimeapi.NamespaceMode_TARGET, pod: runtimeapi.NamespaceMode_CONTAINER, wantErr: "is unknown"},
		{name: "host network", ctr: runtimeapi.NamespaceMode_CONTAINER, pod: runtimeapi.NamespaceMode_CONTAINER, hostNet: true,
			want: []ns{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}},
		{name: "cgroup ns on v2", ctr: runtimeapi.NamespaceMode_CONTAINER, pod: runtimeapi.NamespaceMode_CONTAINER, v2: true,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace}, ns{Type: specs.CgroupNamespace})},
		{name: "no cgroup ns for privileged on v2", ctr: runtimeapi.NamespaceMode_CONTAINER, pod: runtimeapi.NamespaceMode_CONTAINER, v2: true, priv: true,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Options.CgroupV2 = tc.v2
			sc(&in).NamespaceOptions = &runtimeapi.NamespaceOption{Pid: tc.ctr, TargetId: "other"}
			sc(&in).Privileged = tc.priv
			in.Pod.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: tc.priv, NamespaceOptions: &runtimeapi.NamespaceOption{Pid: tc.pod}}
			in.Pod.PIDNS = tc.podPIDNS
			in.TargetPIDNS = tc.target
			if tc.hostNet {
				in.Pod.NetNS, in.Pod.IPCNS, in.Pod.UTSNS = "", "", ""
			}
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			if !slices.Equal(s.Linux.Namespaces, tc.want) {
				t.Fatalf("namespaces = %+v\nwant %+v", s.Linux.Namespaces, tc.want)
			}
			if s.Hostname != "" {
				t.Fatalf("hostname = %q, want empty (the pod's UTS namespace keeps its own)", s.Hostname)
			}
		})
	}
}
