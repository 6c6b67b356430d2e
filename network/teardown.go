package network

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// Teardown detaches the pod from the pod network (CNI DEL). It is
// idempotent: a pod that was never set up, was already torn down, or whose
// network namespace is gone is success. Pass NetNS "" when the namespace no
// longer exists; a path that no longer names a live namespace is treated the
// same way.
//
// ctx is used for its values only: DEL runs under a fresh context with its
// own timeout, because the caller's context is often already cancelled
// (client went away, kubelet retrying) and giving up half-way would leak the
// pod's IP and firewall rules until the next GC.
//
// The DEL uses the configuration and arguments recorded by the ADD in the
// cache directory, so a configuration that was changed or removed since the
// pod started does not strand it. Without a cache entry (ADD never completed,
// or the cache was lost) the currently selected configuration is used.
func (m *Manager) Teardown(ctx context.Context, pod Pod) error {
	if pod.ID == "" {
		return errdefs.InvalidArgument("network teardown: pod ID is required")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeouts.NetworkTeardown)
	defer cancel()

	unlock := m.lockPod(pod.ID)
	defer unlock()

	netnsPath := usableNetNS(pod.NetNS)
	if netnsPath == "" && pod.NetNS != "" {
		klog.V(2).InfoS("Pod network namespace is gone, running CNI DEL without it", "pod", pod.ID, "netns", pod.NetNS)
	}

	atts, err := m.cni.GetCachedAttachments(pod.ID)
	if err != nil {
		klog.ErrorS(err, "Reading CNI cache, falling back to the current configuration", "pod", pod.ID)
		atts = nil
	}
	if len(atts) > 0 {
		var errs []error
		for _, att := range atts {
			if err := m.delAttachment(ctx, att, netnsPath); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("network teardown of pod %s: %w", pod.ID, joinErrs(errs))
		}
		klog.V(2).InfoS("Pod network torn down", "pod", pod.ID)
		return nil
	}

	n, err := m.current()
	if err != nil {
		// Nothing cached and no configuration to run DEL with: nothing we
		// attached can exist (ADD writes the cache when it succeeds, and a
		// failed ADD was rolled back), so there is nothing to do.
		klog.V(2).InfoS("No cached CNI attachment and no network config; nothing to tear down", "pod", pod.ID, "reason", err.Error())
		return nil
	}
	rt, err := runtimeConf(pod, netnsPath)
	if err != nil {
		// Bad port mappings cannot matter for DEL; drop them rather than
		// refusing to clean up.
		pod.PortMappings = nil
		if rt, err = runtimeConf(pod, netnsPath); err != nil {
			return err
		}
	}
	if err := m.delList(ctx, n.list, rt); err != nil {
		return fmt.Errorf("network teardown of pod %s (network %q): %w", pod.ID, n.list.Name, err)
	}
	return nil
}

// delAttachment runs DEL for one cached attachment with the configuration
// and arguments its ADD used. netnsPath overrides the cached namespace path.
func (m *Manager) delAttachment(ctx context.Context, att *libcni.NetworkAttachment, netnsPath string) error {
	list, err := m.cachedList(att)
	if err != nil {
		return err
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    att.ContainerID,
		NetNS:          netnsPath,
		IfName:         att.IfName,
		Args:           att.CniArgs,
		CapabilityArgs: att.CapabilityArgs,
	}
	// Without a namespace, some plugins cannot find what to clean up; keep
	// the cached result (DEL removes it) to finish their job, see masq.go.
	var cached types.Result
	if netnsPath == "" {
		cached, _ = m.cni.GetNetworkListCachedResult(list, rt)
	}
	if err := m.delList(ctx, list, rt); err != nil {
		return fmt.Errorf("CNI DEL of network %q: %w", att.Network, err)
	}
	if netnsPath == "" {
		cleanupIPMasq(list, att.ContainerID, cached)
	}
	return nil
}

// cachedList rebuilds the configuration list an attachment was added with.
// Lists whose plugins live in separate files (CNI 1.1 "loadOnlyInlinedPlugins:
// false" layout) are not fully recorded in the cache; for those, fall back to
// the current list of the same name.
func (m *Manager) cachedList(att *libcni.NetworkAttachment) (*libcni.NetworkConfigList, error) {
	list, err := libcni.ConfListFromBytes(att.Config)
	if err == nil && len(list.Plugins) == 0 {
		err = fmt.Errorf("cached configuration has no inline plugins")
	}
	if err == nil {
		return list, nil
	}
	if n, cerr := m.current(); cerr == nil && n.list.Name == att.Network {
		return n.list, nil
	}
	return nil, fmt.Errorf("cached configuration of network %q for %s is unusable: %w", att.Network, att.ContainerID, err)
}
