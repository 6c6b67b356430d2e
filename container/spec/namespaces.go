package spec

import (
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// namespaces lists the container's namespaces. Network, IPC and UTS are the
// pod's: the sandbox's pins are authoritative, whatever mode the container
// config repeats, so a container cannot pick the host's on its own. A
// namespace left out of the list is the host's.
func namespaces(in *Input) ([]specs.LinuxNamespace, error) {
	sc := &in.Config.Security
	opts := &sc.Namespaces
	// The mount namespace is always the container's own.
	out := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, j := range []struct {
		typ  specs.LinuxNamespaceType
		path string
	}{
		{specs.NetworkNamespace, in.Pod.NetNS},
		{specs.IPCNamespace, in.Pod.IPCNS},
		{specs.UTSNamespace, in.Pod.UTSNS},
	} {
		if j.path == "" {
			continue
		}
		if !filepath.IsAbs(j.path) {
			return nil, fmt.Errorf("pod %s namespace path %q is not absolute", j.typ, j.path)
		}
		out = append(out, specs.LinuxNamespace{Type: j.typ, Path: j.path})
	}

	switch mode := opts.PID; mode {
	case sandbox.ModePod, "":
		// POD is also the CRI's zero value, which a config without
		// namespace options carries: it then means "as the pod does".
		switch {
		case in.Pod.PIDNS != "":
			out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.Pod.PIDNS})
		case in.Pod.PIDMode == sandbox.ModeContainer:
			out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace})
		case in.Pod.PIDMode == sandbox.ModeNode:
			// The pod is hostPID: the host's namespace.
		default:
			return nil, errdefs.InvalidArgument("linux.security_context.namespace_options.pid is POD but the pod has no shared PID namespace")
		}
	case sandbox.ModeContainer:
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case sandbox.ModeNode:
		// The host PID namespace is a pod-level privilege (hostPID);
		// a container of an ordinary pod must not take it.
		if in.Pod.PIDMode != sandbox.ModeNode {
			return nil, errdefs.InvalidArgument("linux.security_context.namespace_options.pid is NODE but the pod does not use the host PID namespace")
		}
	case sandbox.ModeTarget:
		if opts.TargetID == "" {
			return nil, errdefs.InvalidArgument("linux.security_context.namespace_options.target_id is required when pid is TARGET")
		}
		if in.TargetPIDNS == "" {
			return nil, errdefs.InvalidArgument("linux.security_context.namespace_options: PID namespace of target container %q is unknown", opts.TargetID)
		}
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.TargetPIDNS})
	default:
		return nil, errdefs.InvalidArgument("linux.security_context.namespace_options.pid %s is not supported", mode)
	}

	userns, err := userNamespace(in)
	if err != nil {
		return nil, err
	}
	if userns != "" {
		// runc reads the mappings from the namespace it joins.
		out = append(out, specs.LinuxNamespace{Type: specs.UserNamespace, Path: userns})
	}

	// A cgroup namespace hides the host's cgroup tree; containerd uses one
	// on cgroup v2 only (v1 tools expect the host layout) and not for
	// privileged containers (which may manage cgroups).
	if in.Options.CgroupV2 && !sc.Privileged {
		out = append(out, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return out, nil
}
