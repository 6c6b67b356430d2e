package network

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/klog/v2"
)

// GC releases the network resources of pods that no longer exist; call it at
// start-up with every sandbox crisp still knows about in keep.
//
// It works in two steps:
//
//  1. Every attachment recorded in the cache directory whose pod is not in
//     keep gets a DEL with the configuration and arguments its ADD used (and
//     its recorded namespace if that still exists). This works with any CNI
//     version, which matters because Debian 12's plugins (1.1.1) only speak
//     CNI 1.0.0 and know nothing of GC.
//  2. If the current configuration list is CNI 1.1.0 or later, the GC verb
//     with cni.dev/valid-attachments lets the plugins release what they hold
//     for anything else (e.g. an IP allocated by an ADD that crashed before
//     the cache was written).
//
// GC holds off Setup and Teardown while it runs: a pod half-way through ADD
// is in nobody's keep list yet. Errors from individual attachments are
// collected; the rest are still processed.
func (m *Manager) GC(ctx context.Context, keep []Pod) error {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()

	valid := make([]types.GCAttachment, 0, len(keep))
	validSet := make(map[types.GCAttachment]bool, len(keep))
	for _, p := range keep {
		a := types.GCAttachment{ContainerID: p.ID, IfName: DefaultIfName}
		valid = append(valid, a)
		validSet[a] = true
	}

	var errs []error
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		errs = append(errs, fmt.Errorf("list cached CNI attachments: %w", err))
	}
	for _, att := range atts {
		if validSet[types.GCAttachment{ContainerID: att.ContainerID, IfName: att.IfName}] {
			continue
		}
		klog.InfoS("Releasing network of stale pod", "pod", att.ContainerID, "network", att.Network, "ifname", att.IfName)
		if err := m.delAttachment(ctx, att, usableNetNS(att.NetNS)); err != nil {
			errs = append(errs, fmt.Errorf("stale pod %s: %w", att.ContainerID, err))
		}
	}

	if n, err := m.current(); err == nil && !n.list.DisableGC {
		if ok, _ := version.GreaterThanOrEqualTo(n.list.CNIVersion, "1.1.0"); ok {
			// libcni repeats step 1 for this network (finding nothing left
			// unless a DEL above failed) and then sends GC to each plugin.
			if err := m.cni.GCNetworkList(ctx, n.list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
				errs = append(errs, fmt.Errorf("CNI GC of network %q: %w", n.list.Name, err))
			}
		} else {
			klog.V(2).InfoS("CNI network predates the GC verb; released cached attachments only", "network", n.list.Name, "cniVersion", n.list.CNIVersion)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network GC: %w", joinErrs(errs))
	}
	return nil
}
