package nri

import (
	"context"
	"fmt"
	"maps"

	"github.com/containerd/nri/pkg/api"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/internal/tracing"
	"github.com/crisp-runtime/crisp/sandbox"
)

// RunPod implements sandbox.Hooks. When a plugin fails it, the others are
// told that the pod stopped and went away, as containerd does.
func (n *NRI) RunPod(ctx context.Context, sb *sandbox.Sandbox) (err error) {
	ctx, span := tracing.Start(ctx, "nri.RunPod")
	defer func() { tracing.End(span, err) }()
	pod := podToNRI(sb)
	n.mu.Lock()
	defer n.mu.Unlock()
	err = n.nri.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: pod})
	n.setState(sb.ID, running)
	if err == nil {
		return nil
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeouts.NRIUndo)
	defer cancel()
	n.stopPodLocked(uctx, pod)
	n.removePodLocked(uctx, pod)
	return fmt.Errorf("NRI plugin failed RunPodSandbox of pod %s (%s/%s): %w", sb.ID, sb.Config.Metadata.Namespace, sb.Config.Metadata.Name, err)
}

// StopPod implements sandbox.Hooks.
func (n *NRI) StopPod(ctx context.Context, sb *sandbox.Sandbox) {
	ctx, span := tracing.Start(ctx, "nri.StopPod")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopPodLocked(ctx, podToNRI(sb))
}

// RemovePod implements sandbox.Hooks.
func (n *NRI) RemovePod(ctx context.Context, sb *sandbox.Sandbox) {
	ctx, span := tracing.Start(ctx, "nri.RemovePod")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	pod := podToNRI(sb)
	n.stopPodLocked(ctx, pod)
	n.removePodLocked(ctx, pod)
}

// UpdatePod implements sandbox.Hooks: plugins see the pod's new overhead
// and resources (kubelet's in-place pod resize) and may refuse them.
func (n *NRI) UpdatePod(ctx context.Context, sb *sandbox.Sandbox, overhead, resources *sandbox.Resources) (err error) {
	ctx, span := tracing.Start(ctx, "nri.UpdatePod")
	defer func() { tracing.End(span, err) }()
	n.mu.Lock()
	defer n.mu.Unlock()
	req := &api.UpdatePodSandboxRequest{Pod: podToNRI(sb)}
	req.OverheadLinuxResources = req.Pod.Linux.PodOverhead
	if overhead != nil {
		req.OverheadLinuxResources = podResources(overhead)
	}
	req.LinuxResources = req.Pod.Linux.PodResources
	if resources != nil {
		req.LinuxResources = podResources(resources)
	}
	if _, err = n.nri.UpdatePodSandbox(ctx, req); err != nil {
		return fmt.Errorf("NRI plugin refused the resource update of pod %s: %w", sb.ID, err)
	}
	return nil
}

// PostUpdatePod implements sandbox.Hooks.
func (n *NRI) PostUpdatePod(ctx context.Context, sb *sandbox.Sandbox) {
	ctx, span := tracing.Start(ctx, "nri.PostUpdatePod")
	defer span.End()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.nri.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: podToNRI(sb)}); err != nil {
		klog.FromContext(ctx).Info("NRI PostUpdatePodSandbox failed", "pod", sb.ID, "err", err)
		tracing.Fail(ctx, err)
	}
}

func (n *NRI) stopPodLocked(ctx context.Context, pod *api.PodSandbox) {
	if !n.needsStop(pod.Id) {
		return
	}
	n.setState(pod.Id, stopped)
	if err := n.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod}); err != nil {
		klog.FromContext(ctx).Info("NRI StopPodSandbox failed", "pod", pod.Id, "err", err)
		tracing.Fail(ctx, err)
	}
}

func (n *NRI) removePodLocked(ctx context.Context, pod *api.PodSandbox) {
	if !n.needsRemove(pod.Id) {
		return
	}
	n.setState(pod.Id, gone)
	if err := n.nri.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: pod}); err != nil {
		klog.FromContext(ctx).Info("NRI RemovePodSandbox failed", "pod", pod.Id, "err", err)
		tracing.Fail(ctx, err)
	}
}

// nsTypes maps crisp's pin names to the OCI namespace types plugins know.
var nsTypes = map[string]string{
	sandbox.NSNet:  "network",
	sandbox.NSIPC:  "ipc",
	sandbox.NSUTS:  "uts",
	sandbox.NSPID:  "pid",
	sandbox.NSUser: "user",
}

// podToNRI describes a pod to plugins. Without an infra process, the pid
// is the reaper's (0 for pods without one) and the namespaces are the pins.
func podToNRI(sb *sandbox.Sandbox) *api.PodSandbox {
	md := sb.Config.Metadata
	pod := &api.PodSandbox{
		Id:          sb.ID,
		Name:        md.Name,
		Uid:         md.UID,
		Namespace:   md.Namespace,
		Labels:      maps.Clone(sb.Config.Labels),
		Annotations: maps.Clone(sb.Config.Annotations),
		Ips:         append([]string(nil), sb.Network.IPs...),
		Linux: &api.LinuxPodSandbox{
			PodOverhead:  podResources(sb.Config.Overhead),
			PodResources: podResources(sb.Config.Resources),
			CgroupParent: sb.Config.CgroupParent,
			CgroupsPath:  sb.Cgroup,
		},
	}
	if sb.Reaper != nil {
		pod.Pid = uint32(sb.Reaper.PID)
	}
	for kind, path := range sb.Namespaces {
		if t, ok := nsTypes[kind]; ok {
			pod.Linux.Namespaces = append(pod.Linux.Namespaces, &api.LinuxNamespace{Type: t, Path: path})
		}
	}
	return pod
}

// podStub stands for a pod that is gone when one of its containers is
// still being talked about.
func podStub(id string) *api.PodSandbox { return &api.PodSandbox{Id: id} }
