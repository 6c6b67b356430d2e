package spec

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/sandbox"
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
		ctr, pod sandbox.NamespaceMode
		podPIDNS string
		target   string
		hostNet  bool
		v2, priv bool
		want     []ns
		wantErr  string
	}{
		{name: "container pid", ctr: sandbox.ModeContainer, pod: sandbox.ModeContainer,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace})},
		{name: "pod pid", ctr: sandbox.ModePod, pod: sandbox.ModePod, podPIDNS: podPID,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace, Path: podPID})},
		{name: "pod pid missing", ctr: sandbox.ModePod, pod: sandbox.ModePod, wantErr: "no shared PID namespace"},
		{name: "zero-value pid in a container-mode pod", ctr: sandbox.ModePod, pod: sandbox.ModeContainer,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace})},
		{name: "node pid", ctr: sandbox.ModeNode, pod: sandbox.ModeNode, want: common},
		{name: "node pid without hostPID pod", ctr: sandbox.ModeNode, pod: sandbox.ModeContainer, wantErr: "does not use the host PID namespace"},
		{name: "target pid", ctr: sandbox.ModeTarget, pod: sandbox.ModeContainer, target: "/proc/42/ns/pid",
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"})},
		{name: "target unknown", ctr: sandbox.ModeTarget, pod: sandbox.ModeContainer, wantErr: "is unknown"},
		{name: "host network", ctr: sandbox.ModeContainer, pod: sandbox.ModeContainer, hostNet: true,
			want: []ns{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}},
		{name: "cgroup ns on v2", ctr: sandbox.ModeContainer, pod: sandbox.ModeContainer, v2: true,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace}, ns{Type: specs.CgroupNamespace})},
		{name: "no cgroup ns for privileged on v2", ctr: sandbox.ModeContainer, pod: sandbox.ModeContainer, v2: true, priv: true,
			want: append(slices.Clone(common), ns{Type: specs.PIDNamespace})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Options.CgroupV2 = tc.v2
			sc(&in).Namespaces = NamespaceOptions{PID: tc.ctr, TargetID: "other"}
			sc(&in).Privileged = tc.priv
			in.Pod.Privileged, in.Pod.PIDMode = tc.priv, tc.pod
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
