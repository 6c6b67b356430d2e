package cri

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// podNamespaces is what a config without namespace options means: the CRI's
// zero value, POD, for each.
var podNamespaces = sandbox.NamespaceOptions{Network: sandbox.ModePod, PID: sandbox.ModePod, IPC: sandbox.ModePod}

func TestToSandboxConfig(t *testing.T) {
	md := &runtimeapi.PodSandboxMetadata{Name: "web", Uid: "u1", Namespace: "ns", Attempt: 2}
	wantMD := sandbox.Metadata{Name: "web", UID: "u1", Namespace: "ns", Attempt: 2}
	for _, tc := range []struct {
		name    string
		in      *runtimeapi.PodSandboxConfig
		want    sandbox.Config
		wantErr string
	}{
		{name: "nil", wantErr: "config is required"},
		{name: "no metadata", in: &runtimeapi.PodSandboxConfig{Hostname: "h"}, wantErr: "config.metadata is required"},
		{
			name: "metadata only",
			in:   &runtimeapi.PodSandboxConfig{Metadata: md},
			want: sandbox.Config{Metadata: wantMD, Namespaces: podNamespaces},
		},
		{
			name: "empty metadata is left to sandbox to refuse",
			in:   &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{}},
			want: sandbox.Config{Namespaces: podNamespaces},
		},
		{
			name: "everything",
			in: &runtimeapi.PodSandboxConfig{
				Metadata: md, Hostname: "web-0", LogDirectory: "/var/log/pods/x",
				DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"ns.svc"}, Options: []string{"ndots:5"}},
				PortMappings: []*runtimeapi.PortMapping{
					{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"},
					{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353},
					{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 9},
				},
				Labels:      map[string]string{"app": "web"},
				Annotations: map[string]string{"a": "b"},
				Linux: &runtimeapi.LinuxPodSandboxConfig{
					CgroupParent: "/kubepods/poduid",
					Sysctls:      map[string]string{"net.ipv4.ip_forward": "1"},
					SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
						Privileged: true,
						NamespaceOptions: &runtimeapi.NamespaceOption{
							Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_NODE,
						},
					},
					Overhead: &runtimeapi.LinuxContainerResources{CpuShares: 10},
					Resources: &runtimeapi.LinuxContainerResources{
						CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 30, MemorySwapLimitInBytes: 2 << 30,
						OomScoreAdj: -998, CpusetCpus: "0-1", CpusetMems: "0", Unified: map[string]string{"memory.high": "max"},
						HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}, {PageSize: "1GB", Limit: 0}},
					},
				},
			},
			want: sandbox.Config{
				Metadata: wantMD, Hostname: "web-0", LogDirectory: "/var/log/pods/x",
				DNS: &sandbox.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"ns.svc"}, Options: []string{"ndots:5"}},
				PortMappings: []sandbox.PortMapping{
					{Protocol: "tcp", ContainerPort: 80, HostPort: 8080, HostIP: "127.0.0.1"},
					{Protocol: "udp", ContainerPort: 53, HostPort: 5353},
					{Protocol: "sctp", ContainerPort: 9},
				},
				Labels:       map[string]string{"app": "web"},
				Annotations:  map[string]string{"a": "b"},
				CgroupParent: "/kubepods/poduid",
				Sysctls:      map[string]string{"net.ipv4.ip_forward": "1"},
				Namespaces:   sandbox.NamespaceOptions{Network: sandbox.ModeNode, PID: sandbox.ModeContainer, IPC: sandbox.ModeNode},
				Privileged:   true,
				Overhead:     &sandbox.Resources{CPUShares: 10},
				Resources: &sandbox.Resources{
					CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512, MemoryLimit: 1 << 30, MemorySwapLimit: 2 << 30,
					OOMScoreAdj: -998, CpusetCPUs: "0-1", CpusetMems: "0", Unified: map[string]string{"memory.high": "max"},
					HugepageLimits: map[string]uint64{"2MB": 1 << 21, "1GB": 0},
				},
			},
		},
		{
			name: "empty DNS config is kept, empty resources too",
			in: &runtimeapi.PodSandboxConfig{Metadata: md, DnsConfig: &runtimeapi.DNSConfig{},
				Linux: &runtimeapi.LinuxPodSandboxConfig{Resources: &runtimeapi.LinuxContainerResources{}}},
			want: sandbox.Config{Metadata: wantMD, Namespaces: podNamespaces, DNS: &sandbox.DNSConfig{}, Resources: &sandbox.Resources{}},
		},
		{
			name: "unknown namespace mode is left to sandbox to refuse",
			in: &runtimeapi.PodSandboxConfig{Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: 42},
			}}},
			want: sandbox.Config{Metadata: wantMD, Namespaces: sandbox.NamespaceOptions{PID: sandbox.ModePod, IPC: sandbox.ModePod}},
		},
		{
			name: "user namespace",
			in: &runtimeapi.PodSandboxConfig{Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{
					Mode: runtimeapi.NamespaceMode_POD,
					Uids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 65536, Length: 65536}},
					Gids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 131072, Length: 1000}},
				}},
			}}},
			want: sandbox.Config{Metadata: wantMD, Namespaces: sandbox.NamespaceOptions{
				Network: sandbox.ModePod, PID: sandbox.ModePod, IPC: sandbox.ModePod, User: sandbox.ModePod,
				UIDs: []sandbox.IDMap{{ContainerID: 0, HostID: 65536, Size: 65536}},
				GIDs: []sandbox.IDMap{{ContainerID: 0, HostID: 131072, Size: 1000}},
			}},
		},
		{
			name: "host user namespace without mappings",
			in: &runtimeapi.PodSandboxConfig{Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}},
			}}},
			want: sandbox.Config{Metadata: wantMD, Namespaces: sandbox.NamespaceOptions{
				Network: sandbox.ModePod, PID: sandbox.ModePod, IPC: sandbox.ModePod, User: sandbox.ModeNode,
			}},
		},
		{
			name: "unknown user namespace mode",
			in: &runtimeapi.PodSandboxConfig{Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: 9}},
			}}},
			wantErr: "userns_options.mode 9 is not a namespace mode",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toSandboxConfig(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want invalid argument %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestToSandboxResources(t *testing.T) {
	if toSandboxResources(nil) != nil {
		t.Error("no resources became some")
	}
	// A page size given twice: the later limit wins, as a map can hold one.
	got := toSandboxResources(&runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{
		{PageSize: "2MB", Limit: 1}, {PageSize: "2MB", Limit: 2},
	}})
	if !reflect.DeepEqual(got, &sandbox.Resources{HugepageLimits: map[string]uint64{"2MB": 2}}) {
		t.Errorf("got %+v", got)
	}
}

func TestIDMaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		cri  []*runtimeapi.IDMapping
		own  []sandbox.IDMap
	}{
		{name: "none"},
		{name: "one", cri: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1000, Length: 1}}, own: []sandbox.IDMap{{ContainerID: 0, HostID: 1000, Size: 1}}},
		{
			name: "order kept",
			cri:  []*runtimeapi.IDMapping{{ContainerId: 1, HostId: 2, Length: 3}, {ContainerId: 0, HostId: 9, Length: 1}},
			own:  []sandbox.IDMap{{ContainerID: 1, HostID: 2, Size: 3}, {ContainerID: 0, HostID: 9, Size: 1}},
		},
	} {
		if got := toSandboxIDMaps(tc.cri); !reflect.DeepEqual(got, tc.own) {
			t.Errorf("%s: toSandboxIDMaps = %+v, want %+v", tc.name, got, tc.own)
		}
		back := toCRIIDMaps(tc.own)
		if len(back) != len(tc.cri) {
			t.Fatalf("%s: toCRIIDMaps = %v", tc.name, back)
		}
		for i := range back {
			if !proto.Equal(back[i], tc.cri[i]) {
				t.Errorf("%s: toCRIIDMaps[%d] = %v, want %v", tc.name, i, back[i], tc.cri[i])
			}
		}
	}
}

func TestToCRIPodSandboxStatus(t *testing.T) {
	created := time.Unix(1700000000, 5)
	base := sandbox.Sandbox{
		ID: "pod1", State: sandbox.StateReady, CreatedAt: created,
		Config: sandbox.Config{
			Metadata:    sandbox.Metadata{Name: "web", UID: "u1", Namespace: "ns", Attempt: 1},
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"a": "b"},
			Namespaces:  sandbox.NamespaceOptions{Network: sandbox.ModePod, PID: sandbox.ModeContainer, IPC: sandbox.ModeNode},
		},
	}
	wantMD := &runtimeapi.PodSandboxMetadata{Name: "web", Uid: "u1", Namespace: "ns", Attempt: 1}
	opts := func() *runtimeapi.NamespaceOption {
		return &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_NODE}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*sandbox.Sandbox)
		want   func(*runtimeapi.PodSandboxStatus)
	}{
		{name: "ready without IPs", mutate: func(*sandbox.Sandbox) {}, want: func(*runtimeapi.PodSandboxStatus) {}},
		{
			name:   "not ready",
			mutate: func(sb *sandbox.Sandbox) { sb.State = sandbox.StateNotReady },
			want:   func(st *runtimeapi.PodSandboxStatus) { st.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY },
		},
		{
			name:   "creating is not ready",
			mutate: func(sb *sandbox.Sandbox) { sb.State = sandbox.StateCreating },
			want:   func(st *runtimeapi.PodSandboxStatus) { st.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY },
		},
		{
			name:   "one IP",
			mutate: func(sb *sandbox.Sandbox) { sb.Network.IPs = []string{"10.1.0.5"} },
			want:   func(st *runtimeapi.PodSandboxStatus) { st.Network.Ip = "10.1.0.5" },
		},
		{
			name:   "dual stack",
			mutate: func(sb *sandbox.Sandbox) { sb.Network.IPs = []string{"10.1.0.5", "fd00::5", "10.2.0.5"} },
			want: func(st *runtimeapi.PodSandboxStatus) {
				st.Network.Ip = "10.1.0.5"
				st.Network.AdditionalIps = []*runtimeapi.PodIP{{Ip: "fd00::5"}, {Ip: "10.2.0.5"}}
			},
		},
		{
			name: "user namespace",
			mutate: func(sb *sandbox.Sandbox) {
				sb.Config.Namespaces.User = sandbox.ModePod
				sb.Config.Namespaces.UIDs = []sandbox.IDMap{{HostID: 65536, Size: 65536}}
				sb.Config.Namespaces.GIDs = []sandbox.IDMap{{HostID: 65536, Size: 65536}}
			},
			want: func(st *runtimeapi.PodSandboxStatus) {
				m := []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}
				st.Linux.Namespaces.Options.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
			},
		},
		{
			name:   "host user namespace is not reported",
			mutate: func(sb *sandbox.Sandbox) { sb.Config.Namespaces.User = sandbox.ModeNode },
			want:   func(*runtimeapi.PodSandboxStatus) {},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := base
			tc.mutate(&sb)
			want := &runtimeapi.PodSandboxStatus{
				Id: "pod1", Metadata: wantMD, State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: created.UnixNano(),
				Network: &runtimeapi.PodSandboxNetworkStatus{}, Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"},
				Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: opts()}},
			}
			tc.want(want)
			if got := toCRIPodSandboxStatus(&sb); !proto.Equal(got, want) {
				t.Fatalf("got  %v\nwant %v", got, want)
			}
			wantList := &runtimeapi.PodSandbox{Id: "pod1", Metadata: wantMD, State: want.State, CreatedAt: created.UnixNano(), Labels: want.Labels, Annotations: want.Annotations}
			if got := toCRIPodSandbox(&sb); !proto.Equal(got, wantList) {
				t.Fatalf("list entry: got %v\nwant %v", got, wantList)
			}
		})
	}
}

func TestToSandboxFilter(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *runtimeapi.PodSandboxFilter
		want sandbox.Filter
	}{
		{name: "nil matches everything"},
		{name: "empty matches everything", in: &runtimeapi.PodSandboxFilter{}},
		{
			name: "id and labels",
			in:   &runtimeapi.PodSandboxFilter{Id: "abc", LabelSelector: map[string]string{"app": "web"}},
			want: sandbox.Filter{ID: "abc", LabelSelector: map[string]string{"app": "web"}},
		},
		{
			name: "ready",
			in:   &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}},
			want: sandbox.Filter{State: sandbox.StateReady},
		},
		{
			name: "not ready",
			in:   &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}},
			want: sandbox.Filter{State: sandbox.StateNotReady},
		},
	} {
		if got := toSandboxFilter(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
