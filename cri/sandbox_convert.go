package cri

import (
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

var namespaceModes = map[runtimeapi.NamespaceMode]sandbox.NamespaceMode{
	runtimeapi.NamespaceMode_POD:       sandbox.ModePod,
	runtimeapi.NamespaceMode_CONTAINER: sandbox.ModeContainer,
	runtimeapi.NamespaceMode_NODE:      sandbox.ModeNode,
	runtimeapi.NamespaceMode_TARGET:    sandbox.ModeTarget,
}

var criNamespaceModes = map[sandbox.NamespaceMode]runtimeapi.NamespaceMode{
	sandbox.ModePod:       runtimeapi.NamespaceMode_POD,
	sandbox.ModeContainer: runtimeapi.NamespaceMode_CONTAINER,
	sandbox.ModeNode:      runtimeapi.NamespaceMode_NODE,
	sandbox.ModeTarget:    runtimeapi.NamespaceMode_TARGET,
}

// toSandboxConfig checks what only the CRI shape can tell (absent messages)
// and leaves the rest of the validation to package sandbox.
func toSandboxConfig(c *runtimeapi.PodSandboxConfig) (sandbox.Config, error) {
	if c == nil {
		return sandbox.Config{}, errdefs.InvalidArgument("config is required")
	}
	md := c.GetMetadata()
	if md == nil {
		return sandbox.Config{}, errdefs.InvalidArgument("config.metadata is required")
	}
	lx := c.GetLinux()
	sc := lx.GetSecurityContext()
	nso := sc.GetNamespaceOptions()
	out := sandbox.Config{
		Metadata: sandbox.Metadata{
			Name: md.GetName(), UID: md.GetUid(), Namespace: md.GetNamespace(), Attempt: md.GetAttempt(),
		},
		Hostname:     c.GetHostname(),
		LogDirectory: c.GetLogDirectory(),
		Labels:       c.GetLabels(),
		Annotations:  c.GetAnnotations(),
		CgroupParent: lx.GetCgroupParent(),
		Sysctls:      lx.GetSysctls(),
		Namespaces: sandbox.NamespaceOptions{
			Network: namespaceModes[nso.GetNetwork()],
			PID:     namespaceModes[nso.GetPid()],
			IPC:     namespaceModes[nso.GetIpc()],
		},
		Privileged: sc.GetPrivileged(),
		Overhead:   toSandboxResources(lx.GetOverhead()),
		Resources:  toSandboxResources(lx.GetResources()),
	}
	if u := nso.GetUsernsOptions(); u != nil {
		mode, ok := namespaceModes[u.GetMode()]
		if !ok {
			return sandbox.Config{}, errdefs.InvalidArgument("namespace_options.userns_options.mode %d is not a namespace mode", u.GetMode())
		}
		out.Namespaces.User = mode
		out.Namespaces.UIDs = toSandboxIDMaps(u.GetUids())
		out.Namespaces.GIDs = toSandboxIDMaps(u.GetGids())
	}
	if d := c.GetDnsConfig(); d != nil {
		out.DNS = &sandbox.DNSConfig{Servers: d.GetServers(), Searches: d.GetSearches(), Options: d.GetOptions()}
	}
	for _, pm := range c.GetPortMappings() {
		out.PortMappings = append(out.PortMappings, sandbox.PortMapping{
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			ContainerPort: pm.GetContainerPort(),
			HostPort:      pm.GetHostPort(),
			HostIP:        pm.GetHostIp(),
		})
	}
	return out, nil
}

func toSandboxIDMaps(maps []*runtimeapi.IDMapping) []sandbox.IDMap {
	var out []sandbox.IDMap
	for _, m := range maps {
		out = append(out, sandbox.IDMap{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

func toCRIIDMaps(maps []sandbox.IDMap) []*runtimeapi.IDMapping {
	var out []*runtimeapi.IDMapping
	for _, m := range maps {
		out = append(out, &runtimeapi.IDMapping{ContainerId: m.ContainerID, HostId: m.HostID, Length: m.Size})
	}
	return out
}

func toSandboxResources(r *runtimeapi.LinuxContainerResources) *sandbox.Resources {
	if r == nil {
		return nil
	}
	out := &sandbox.Resources{
		CPUPeriod:       r.GetCpuPeriod(),
		CPUQuota:        r.GetCpuQuota(),
		CPUShares:       r.GetCpuShares(),
		MemoryLimit:     r.GetMemoryLimitInBytes(),
		MemorySwapLimit: r.GetMemorySwapLimitInBytes(),
		OOMScoreAdj:     r.GetOomScoreAdj(),
		CpusetCPUs:      r.GetCpusetCpus(),
		CpusetMems:      r.GetCpusetMems(),
		Unified:         r.GetUnified(),
	}
	for _, h := range r.GetHugepageLimits() {
		if out.HugepageLimits == nil {
			out.HugepageLimits = map[string]uint64{}
		}
		out.HugepageLimits[h.GetPageSize()] = h.GetLimit()
	}
	return out
}

func toCRIState(s sandbox.State) runtimeapi.PodSandboxState {
	if s == sandbox.StateReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func toCRIMetadata(m sandbox.Metadata) *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: m.Name, Uid: m.UID, Namespace: m.Namespace, Attempt: m.Attempt}
}

func toCRIPodSandbox(sb *sandbox.Sandbox) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:          sb.ID,
		Metadata:    toCRIMetadata(sb.Config.Metadata),
		State:       toCRIState(sb.State),
		CreatedAt:   sb.CreatedAt.UnixNano(),
		Labels:      sb.Config.Labels,
		Annotations: sb.Config.Annotations,
	}
}

func toCRIPodSandboxStatus(sb *sandbox.Sandbox) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:          sb.ID,
		Metadata:    toCRIMetadata(sb.Config.Metadata),
		State:       toCRIState(sb.State),
		CreatedAt:   sb.CreatedAt.UnixNano(),
		Network:     &runtimeapi.PodSandboxNetworkStatus{},
		Labels:      sb.Config.Labels,
		Annotations: sb.Config.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: criNamespaceModes[sb.Config.Namespaces.Network],
			Pid:     criNamespaceModes[sb.Config.Namespaces.PID],
			Ipc:     criNamespaceModes[sb.Config.Namespaces.IPC],
		}}},
	}
	if ns := sb.Config.Namespaces; ns.UsernsPod() {
		st.Linux.Namespaces.Options.UsernsOptions = &runtimeapi.UserNamespace{
			Mode: runtimeapi.NamespaceMode_POD, Uids: toCRIIDMaps(ns.UIDs), Gids: toCRIIDMaps(ns.GIDs),
		}
	}
	if ips := sb.Network.IPs; len(ips) > 0 {
		st.Network.Ip = ips[0]
		for _, ip := range ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}

func toSandboxFilter(f *runtimeapi.PodSandboxFilter) sandbox.Filter {
	out := sandbox.Filter{ID: f.GetId(), LabelSelector: f.GetLabelSelector()}
	if s := f.GetState(); s != nil {
		out.State = sandbox.StateNotReady
		if s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			out.State = sandbox.StateReady
		}
	}
	return out
}
