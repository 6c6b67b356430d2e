package nri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/sandbox"
)

// synchronize gives a connecting plugin its first view of the node: every
// pod, and every container that has not exited. Pods and containers being
// created hold BlockSync, so each is either in this view or announced to
// the plugin afterwards. Events wait meanwhile, so the plugin's first
// event comes after its view.
func (n *NRI) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	n.mu.Lock()
	// The library bounds Synchronize by the per-event request timeout and
	// drops a plugin that answers later; the plugin believes it joined, so
	// containers created meanwhile (they wait for the sync) would be lost to
	// it. A first view is part of joining: it gets the registration's bound.
	// The timeout is process-wide, but no other request is in flight: every
	// event waits for n.mu, and plugins join one at a time.
	if n.syncTimeout > n.requestTimeout {
		adaptation.SetPluginRequestTimeout(n.syncTimeout)
	}
	var pods []*api.PodSandbox
	for _, sb := range n.pods.List(sandbox.Filter{}) {
		pods = append(pods, podToNRI(sb))
		if _, known := n.state[sb.ID]; !known {
			// Pods of a previous run: plugins hear of their stop and removal.
			s := stopped
			if sb.State == sandbox.StateReady {
				s = running
			}
			n.setState(sb.ID, s)
		}
	}
	var ctrs []*api.Container
	for _, c := range n.containers.List(container.Filter{}) {
		s := created
		switch c.Status.State {
		case container.StateCreated:
		case container.StateRunning:
			s = running
		default:
			continue
		}
		ctrs = append(ctrs, containerToNRI(c, nil))
		if _, known := n.state[c.ID]; !known {
			n.setState(c.ID, s)
		}
	}
	updates, err := cb(ctx, pods, ctrs)
	adaptation.SetPluginRequestTimeout(n.requestTimeout)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := n.applyUpdates(ctx, updates); err != nil {
		klog.FromContext(ctx).Info("NRI: applying the updates a plugin asked for when it connected failed", "err", err)
	}
	return nil
}

// updateFromPlugin applies the updates a plugin asks for on its own and
// returns those that failed. Failures are not an error of the request: an
// error would lose the list of what failed on its way to the plugin.
func (n *NRI) updateFromPlugin(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	failed, err := n.applyUpdates(ctx, updates)
	if err != nil {
		klog.FromContext(ctx).Info("NRI: applying the updates a plugin asked for failed", "err", err)
	}
	return failed, nil
}

// applyUpdates applies resource updates: what a plugin sets, over the
// container's currently requested resources. Updates marked IgnoreFailure do not
// count as failed.
func (n *NRI) applyUpdates(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	var failed []*api.ContainerUpdate
	var errs []error
	for _, u := range updates {
		r := u.GetLinux().GetResources()
		if r == nil {
			continue
		}
		c, err := n.containers.Get(u.GetContainerId())
		if err == nil {
			err = n.containers.ApplyResources(ctx, c.ID, mergeResources(c.Config.Resources, r))
		}
		if err == nil {
			continue
		}
		if u.GetIgnoreFailure() {
			klog.FromContext(ctx).V(2).Info("NRI: ignored a failed container update", "container", u.GetContainerId(), "err", err)
			continue
		}
		failed = append(failed, u)
		errs = append(errs, fmt.Errorf("update container %s: %w", u.GetContainerId(), err))
	}
	return failed, errors.Join(errs...)
}

// evict stops the containers plugins want gone; kubelet sees them exit
// and applies the pod's restart policy.
func (n *NRI) evict(ctx context.Context, evictions []*api.ContainerEviction) error {
	var errs []error
	for _, e := range evictions {
		klog.FromContext(ctx).Info("NRI: evicting container", "container", e.GetContainerId(), "reason", e.GetReason())
		if err := n.containers.Stop(ctx, e.GetContainerId(), 0); err != nil {
			errs = append(errs, fmt.Errorf("evict container %s: %w", e.GetContainerId(), err))
		}
	}
	return errors.Join(errs...)
}

// sideEffects applies, in the background, what plugins asked for besides
// answering an event. The event's caller may hold a container's lock, and
// the updated or evicted containers' locks may be held by callers waiting
// for n.mu: doing it inline could deadlock.
func (n *NRI) sideEffects(updates []*api.ContainerUpdate, evictions []*api.ContainerEviction) {
	if len(updates) == 0 && len(evictions) == 0 {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeouts.NRISideEffect)
		defer cancel()
		if err := n.evict(ctx, evictions); err != nil {
			klog.InfoS("NRI: evictions a plugin asked for failed", "err", err)
		}
		if _, err := n.applyUpdates(ctx, updates); err != nil {
			klog.InfoS("NRI: updates a plugin asked for failed", "err", err)
		}
	}()
}
