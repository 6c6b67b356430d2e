package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// Stop stops a pod: its containers, its reaper (and with it every process
// of its PID namespace), its network, its pins and its shm. It is idempotent
// and an unknown id is success, as kubelet expects. A failed CNI DEL keeps the
// netns pinned and is retried by the next Stop or Remove.
func (m *Manager) Stop(ctx context.Context, id string) error {
	e, err := m.pods.LockLive(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer e.Unlock()
	return m.stopLocked(ctx, e)
}

// Remove stops the pod if needed and deletes everything crisp created for
// it. An unknown id is success.
func (m *Manager) Remove(ctx context.Context, id string) error {
	e, err := m.pods.LockLive(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer e.Unlock()
	if err := m.stopLocked(ctx, e); err != nil {
		return err
	}
	sb := e.Load()
	if cs := m.containerStopper(); cs != nil {
		if err := cs.RemovePodContainers(ctx, sb.ID); err != nil {
			return fmt.Errorf("remove containers of pod %s: %w", sb.ID, err)
		}
	}
	if err := failpoint.Hit("pod-remove/after-containers"); err != nil {
		return err
	}
	if sb.Config.Namespaces.PID == ModePod {
		if err := m.cgroups.reaperCgroup(sb.Cgroup, sb.ID).Remove(); err != nil {
			return err
		}
	}
	if err := m.cgroups.remove(m.cgroupsToRemove(sb), path.Base(sb.Cgroup)); err != nil {
		return err
	}
	if err := m.pins.remove(sb.ID); err != nil {
		return err
	}
	if err := m.removeShm(sb.ID); err != nil {
		return err
	}
	if err := failpoint.Hit("pod-remove/after-unpin"); err != nil {
		return err
	}
	if err := m.store.delete(sb.ID); err != nil {
		return fmt.Errorf("delete pod record: %w", err)
	}
	m.pods.Delete(sb.ID, e)
	m.names.Release(nameKey(sb.Config.Metadata), sb.ID)
	m.publish(EventDeleted, sb)
	m.lifecycleHooks().RemovePod(ctx, sb)
	return nil
}

// stopLocked does the work of Stop; the pod's lock is held.
func (m *Manager) stopLocked(ctx context.Context, e *entry) error {
	sb := e.Load().clone()
	wasReady := sb.State == StateReady
	var errs []error
	if wasReady {
		// Not ready before anything is torn down or its containers are
		// listed. CreateContainer indexes its container and then checks the
		// pod, so a create either finds the pod not ready or is in the list
		// (and is waited for and stopped). And a crash half-way must not
		// leave, after the restart, a pod reported ready whose IP CNI has
		// released; the record still lists what is left to undo, for
		// kubelet's retry of the stop. Memory follows even when the disk
		// refuses: a create must not slip in.
		sb.State = StateNotReady
		sb.StoppedAt = time.Now()
		if err := m.pods.Commit(e, sb); err != nil {
			e.Store(sb)
			errs = append(errs, err)
		}
		sb = sb.clone()
	}
	if cs := m.containerStopper(); cs != nil {
		// The CRI demands forcible termination: kubelet has already
		// given containers their grace period by the time it stops a pod.
		if err := cs.StopPodContainers(ctx, sb.ID, 0); err != nil {
			return errors.Join(append(errs, fmt.Errorf("stop containers of pod %s: %w", sb.ID, err))...)
		}
	}
	// Once per pod however often it is stopped: the hooks keep count, as
	// they also know pods of a previous run.
	m.lifecycleHooks().StopPod(ctx, sb)
	if !wasReady && sb.Reaper == nil && !sb.Network.Attached && len(sb.Namespaces) == 0 && !sb.ShmMounted {
		return nil // fully stopped already; no need to write the record again
	}

	if sb.Reaper != nil {
		if err := stopReaper(*sb.Reaper, e.reaperExit); err != nil {
			errs = append(errs, err)
		} else {
			sb.Reaper = nil
			e.reaperExit = nil
		}
	}
	var keep []string
	if sb.Network.Attached {
		if err := m.teardownNetwork(sb); err != nil {
			errs = append(errs, err)
			// DEL will need the namespace to find the interfaces.
			keep = append(keep, NSNet)
		} else {
			sb.Network.Attached = false
			if err := failpoint.Hit("pod-stop/after-cni-del"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if sb.Reaper != nil {
		keep = append(keep, NSPID)
	}
	if err := m.pins.remove(sb.ID, keep...); err != nil {
		errs = append(errs, err)
	} else {
		for k := range sb.Namespaces {
			if !contains(keep, k) {
				delete(sb.Namespaces, k)
			}
		}
		if err := failpoint.Hit("pod-stop/after-unpin"); err != nil {
			errs = append(errs, err)
		}
	}
	if sb.ShmMounted {
		if err := m.removeShm(sb.ID); err != nil {
			errs = append(errs, err)
		} else {
			sb.ShmMounted = false
		}
	}
	sb.State = StateNotReady
	if sb.StoppedAt.IsZero() {
		sb.StoppedAt = time.Now()
	}
	if err := m.pods.Commit(e, sb); err != nil {
		errs = append(errs, err)
	}
	if wasReady {
		m.publish(EventStopped, e.Load())
	}
	return errors.Join(errs...)
}

// teardownNetwork runs CNI DEL on a context of its own: an IP must be
// released even when the client that asked for the stop has gone away.
func (m *Manager) teardownNetwork(sb *Sandbox) error {
	if m.net == nil {
		return errNoNetwork
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeouts.Cleanup)
	defer cancel()
	if err := m.net.Teardown(ctx, netPod(sb)); err != nil {
		klog.FromContext(ctx).Info("CNI DEL failed, will retry on the next stop or remove", "pod", sb.ID, "err", err)
		return fmt.Errorf("pod network teardown: %w", err)
	}
	return nil
}

// cgroupsToRemove is what crisp created for the pod, plus crisp's own
// default parent (/crisp) when the pod used it: whichever pod created that
// parent may be gone while others still used it, so the last one out
// removes it (remove skips it while it is not empty).
func (m *Manager) cgroupsToRemove(sb *Sandbox) []string {
	dirs := sb.CgroupCreated
	if sb.Config.CgroupParent == "" {
		var parents []string
		for _, root := range m.cgroups.roots {
			parents = append(parents, filepath.Join(root, path.Dir(sb.Cgroup)))
		}
		dirs = append(parents, dirs...)
	}
	return dirs
}
