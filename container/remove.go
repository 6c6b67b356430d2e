package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
)

// Remove stops a container if needed and deletes everything crisp created
// for it: monitor and cgroup, rootfs mount, writable layer, log-independent
// state and the image lease. An unknown id is success. The record is deleted
// before the directories, so an interrupted Remove leaves an orphan
// directory that start-up finishes removing, never a half-removed container.
func (m *Manager) Remove(ctx context.Context, id string) error {
	e, err := m.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return m.removeEntry(ctx, e)
}

func (m *Manager) removeEntry(ctx context.Context, e *entry) error {
	if !e.LockLive() {
		return nil
	}
	defer e.Unlock()
	c := e.Load()
	last := e.snapshot()
	if e.proc != nil {
		if err := m.stopEntry(ctx, e, 0); err != nil {
			return err
		}
		last = e.snapshot()
		// The exit goes into the record before Destroy deletes the
		// monitor's copy: the exit watcher waits for this lock, and a
		// crash before the record is deleted must find an exited
		// container, not one of unknown state. A failed write (a full
		// disk) must not keep anyone from removing, which frees space.
		if st := statusOf(c, e.proc); c.Exit == nil && st.State == StateExited {
			n := c.clone()
			n.Exit = exitOf(st)
			if err := m.commit(e, n); err != nil {
				klog.FromContext(ctx).Info("Recording the exit of a container being removed failed", "container", c.ID, "err", err)
			} else {
				c = n
			}
		}
		if err := e.proc.Destroy(); err != nil {
			return fmt.Errorf("remove container %s: %w", c.ID, err)
		}
		if err := failpoint.Hit("ctr-remove/after-destroy"); err != nil {
			return err
		}
	}
	// Released while the record still lists them: an interrupted Remove
	// must not leave leases that no record names.
	if err := m.releaseImageVolumes(c.ID, len(c.ImageVolumes)); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if err := m.unmountRootfs(c.ID, c.Rootfs); err != nil {
		return err
	}
	if err := m.store.deleteRecord(c.ID); err != nil {
		return fmt.Errorf("remove container %s record: %w", c.ID, err)
	}
	// The record is gone: what is left is an orphan for start-up.
	_ = failpoint.Hit("ctr-remove/after-record-delete")
	m.forget(e, c)
	m.cleanupDirs(c.ID)
	m.events.publish(Event{Type: EventDeleted, ContainerID: c.ID, PodID: c.PodID, Time: time.Now()})
	m.lifecycleHooks().RemoveContainer(ctx, m.podOf(c.PodID), last)
	return nil
}

// cleanupDirs removes what is left once the record is gone; failures are
// logged, and start-up retries them (the directory is then an orphan).
func (m *Manager) cleanupDirs(id string) {
	if id == "" || strings.ContainsAny(id, "/.") {
		// The directories of an empty id are the roots of every container.
		klog.ErrorS(nil, "Refusing to clean up the directories of a bad container id", "container", id)
		return
	}
	os.RemoveAll(m.monitorStateDir(id))
	if err := m.images.Unlease(id); err != nil {
		// The directory stays, so start-up sees an orphan and retries.
		klog.InfoS("Releasing the image lease of a removed container failed", "container", id, "err", err)
		return
	}
	if err := os.RemoveAll(m.store.dir(id)); err != nil {
		klog.InfoS("Removing the directory of a removed container failed", "container", id, "err", err)
	}
}
