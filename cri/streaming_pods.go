package cri

import (
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
	"github.com/crisp-runtime/crisp/streaming"
)

// StreamingPods lets the streaming server find pods' network namespaces
// through the sandbox manager.
func StreamingPods(sb Sandboxes) streaming.Pods { return streamingPods{sb} }

type streamingPods struct{ sandboxes Sandboxes }

func (p streamingPods) Network(podID string) (streaming.PodNetwork, error) {
	sb, err := p.sandboxes.Get(podID)
	if err != nil {
		return streaming.PodNetwork{}, err
	}
	if sb.State != sandbox.StateReady {
		return streaming.PodNetwork{}, errdefs.FailedPrecondition("pod sandbox %s is %s, not ready", sb.ID, sb.State)
	}
	pn := streaming.PodNetwork{ID: sb.ID, IPs: sb.Network.IPs}
	if sb.Config.Namespaces.Network != sandbox.ModeNode {
		pn.NetNS = sb.Namespaces[sandbox.NSNet]
		if pn.NetNS == "" {
			// Never fall back to the host: that would forward to the
			// node's ports instead of the pod's.
			return streaming.PodNetwork{}, errdefs.FailedPrecondition("pod sandbox %s has no network namespace", sb.ID)
		}
	}
	return pn, nil
}
