package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/utils"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// Result is what Setup reports about a pod's attachment.
type Result struct {
	IPs        []string        `json:"ips"`        // first is the primary pod IP (IPv4 first when dual-stack)
	Interfaces []string        `json:"interfaces"` // interface names inside the pod
	Raw        json.RawMessage `json:"raw"`        // the CNI result, to persist with the pod
	Network    string          `json:"network"`    // configuration list name used
}

// portMapEntry is the wire format of the portMappings capability.
type portMapEntry struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Setup attaches the pod's network namespace to the pod network (CNI ADD of
// the selected configuration list). Before that it brings up "lo" in the
// namespace itself, since most third-party configuration lists do not
// include the loopback plugin. If ADD fails part-way, Setup runs DEL to
// release what the earlier plugins allocated, then returns the ADD error.
func (m *Manager) Setup(ctx context.Context, pod Pod) (*Result, error) {
	if pod.ID == "" {
		return nil, errdefs.InvalidArgument("network setup: pod ID is required")
	}
	if e := utils.ValidateContainerID(pod.ID); e != nil {
		return nil, errdefs.InvalidArgument("network setup: invalid pod ID %q: %s", pod.ID, e.Msg)
	}
	if pod.NetNS == "" {
		return nil, errdefs.InvalidArgument("network setup of pod %s: network namespace path is required", pod.ID)
	}
	n, err := m.current()
	if err != nil {
		return nil, fmt.Errorf("network setup of pod %s: CNI network not ready: %w", pod.ID, err)
	}
	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeouts.NetworkSetup)
		defer cancel()
	}

	unlock := m.lockPod(pod.ID)
	defer unlock()

	if err := setLoopbackUp(pod.NetNS); err != nil {
		return nil, fmt.Errorf("network setup of pod %s: %w", pod.ID, err)
	}

	rt, err := runtimeConf(pod, pod.NetNS)
	if err != nil {
		return nil, err
	}
	res, err := m.addList(ctx, n.list, rt)
	if err == nil {
		var out *Result
		if out, err = toResult(n.list.Name, res); err == nil {
			klog.V(2).InfoS("Pod network set up", "pod", pod.ID, "network", n.list.Name, "ips", out.IPs)
			return out, nil
		}
	}

	// Roll back: plugins that succeeded (IPAM, bridge, portmap rules) may
	// hold resources; DEL is idempotent for the ones that did nothing.
	// The caller's ctx may be the reason ADD failed, hence a fresh one.
	delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeouts.NetworkTeardown)
	defer cancel()
	if derr := m.delList(delCtx, n.list, rt); derr != nil {
		klog.ErrorS(derr, "Rolling back failed pod network setup", "pod", pod.ID, "network", n.list.Name)
		err = fmt.Errorf("%w (rollback DEL also failed: %v)", err, derr)
	}
	return nil, fmt.Errorf("network setup of pod %s (network %q from %s): %w", pod.ID, n.list.Name, n.file, err)
}

// runtimeConf builds the per-invocation arguments. libcni passes each
// capability argument only to plugins that declare the capability.
func runtimeConf(pod Pod, netnsPath string) (*libcni.RuntimeConf, error) {
	caps := map[string]interface{}{}

	var pm []portMapEntry
	for _, p := range pod.PortMappings {
		// A mapping without a host port only documents the container port;
		// portmap must not see it (containerd skips them too).
		if p.HostPort <= 0 {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp", "sctp":
		default:
			return nil, errdefs.InvalidArgument("pod %s: unsupported port mapping protocol %q", pod.ID, p.Protocol)
		}
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort > 65535 {
			return nil, errdefs.InvalidArgument("pod %s: invalid port mapping %d->%d", pod.ID, p.HostPort, p.ContainerPort)
		}
		pm = append(pm, portMapEntry{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
	}
	if len(pm) > 0 {
		caps["portMappings"] = pm
	}
	if pod.CgroupParent != "" {
		caps["cgroupPath"] = pod.CgroupParent
	}
	if pod.DNS != nil {
		caps["dns"] = pod.DNS
	}
	if pod.Bandwidth != nil {
		caps["bandwidth"] = pod.Bandwidth
	}

	return &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       netnsPath,
		IfName:      DefaultIfName,
		// IgnoreUnknown first: plugins that do not know the K8S_* keys
		// would otherwise reject the whole CNI_ARGS.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", pod.UID},
		},
		CapabilityArgs: caps,
	}, nil
}

// toResult converts whatever version the plugins answered in to the 1.0.0
// model to pick out pod IPs and interfaces, and keeps the original as Raw.
func toResult(network string, res types.Result) (*Result, error) {
	if res == nil {
		return nil, errors.New("CNI ADD returned no result")
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode CNI result: %w", err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	out := &Result{Raw: raw, Network: network, IPs: []string{}, Interfaces: []string{}}
	for _, iface := range r.Interfaces {
		if iface.Sandbox != "" {
			out.Interfaces = append(out.Interfaces, iface.Name)
		}
	}
	var v4, v6 []string
	for _, ipc := range r.IPs {
		// Skip addresses a plugin reports on host-side interfaces.
		if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(r.Interfaces) &&
			r.Interfaces[*ipc.Interface].Sandbox == "" {
			continue
		}
		if ipc.Address.IP.To4() != nil {
			v4 = append(v4, ipc.Address.IP.String())
		} else if ipc.Address.IP != nil {
			v6 = append(v6, ipc.Address.IP.String())
		}
	}
	// Kubernetes treats the first IP as the pod IP; like containerd, prefer
	// IPv4 so dual-stack pods keep a stable primary family.
	out.IPs = append(append(out.IPs, v4...), v6...)
	if len(out.IPs) == 0 {
		return nil, fmt.Errorf("CNI network %q returned no pod IP", network)
	}
	return out, nil
}
