package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/metrics"
)

// recover rebuilds the index from the records at start-up:
//   - a container whose Create was interrupted (PhaseCreating) is rolled
//     back: monitor, mount, lease and directories;
//   - an orphan directory (an interrupted Remove) is cleaned up;
//   - every other container gets its monitor back: running ones keep
//     running, and one that exited while crisp was down reports the exit
//     code and time its monitor recorded.
func (m *Manager) recover(ctx context.Context) error {
	cs, orphans, errs := m.store.loadAll()
	for _, err := range errs {
		// Left alone for a person to look at, with its monitor, mount and
		// lease; the node keeps working.
		klog.ErrorS(err, "Unreadable container record quarantined: its monitor, rootfs and image lease are kept until it is repaired or removed")
		m.quarantined = append(m.quarantined, err.Error())
		metrics.Recovery(metrics.RecoveryContainer, metrics.Quarantined)
	}
	for _, id := range orphans {
		m.cleanupOrphan(id)
	}
	for _, c := range cs {
		if c.Phase == PhaseCreating {
			klog.InfoS("Rolling back a create interrupted by a restart", "container", c.ID)
			if err := m.releaseImageVolumes(c.ID, len(c.ImageVolumes)); err != nil {
				klog.InfoS("Rolling back an interrupted create failed", "container", c.ID, "err", err)
				continue
			}
			m.cleanupOrphan(c.ID)
			metrics.Recovery(metrics.RecoveryContainer, metrics.RolledBack)
			continue
		}
		if err := m.names.Reserve(nameKey(c.PodID, c.Name, c.Attempt), c.ID); err != nil {
			klog.ErrorS(err, "Recovering a container's name", "container", c.ID)
		}
		e := &entry{podID: c.PodID}
		e.Store(c)
		proc, err := m.runtime.Load(m.bundleDir(c.ID), m.monitorStateDir(c.ID))
		if err != nil {
			// Status falls back to the record: the exit if it was seen,
			// else unknown. Remove still cleans up.
			klog.ErrorS(err, "Cannot re-attach to the container's monitor", "container", c.ID)
		} else {
			e.proc = proc
		}
		if st := statusOf(c, e.proc); st.State == StateRunning || st.State == StateCreated {
			// Still needed by the live container (and by exec); after a
			// reboot the container is dead and needs no rootfs.
			if err := m.mountRoot(c); err != nil {
				klog.ErrorS(err, "Re-mounting the container's rootfs failed", "container", c.ID)
			}
			m.remountImageVolumes(c)
		}
		m.containers.Add(c.ID, e)
		metrics.Recovery(metrics.RecoveryContainer, metrics.Recovered)
		if e.proc != nil {
			m.watchExit(e)
		}
	}
	if n := len(cs); n > 0 {
		klog.InfoS("Recovered container records", "count", m.containers.Len())
	}
	return ctx.Err()
}

// Quarantined describes the container records start-up could not read.
func (m *Manager) Quarantined() []string { return slices.Clone(m.quarantined) }

// cleanupOrphan removes whatever a container without a valid record left:
// its monitor (killing a container that may still run), rootfs mount,
// lease and directories. Each step tolerates what is already gone.
func (m *Manager) cleanupOrphan(id string) {
	bundle := m.bundleDir(id)
	if _, err := os.Stat(filepath.Join(bundle, "monitor.json")); err == nil {
		if proc, err := m.runtime.Load(bundle, m.monitorStateDir(id)); err == nil {
			if err := proc.Destroy(); err != nil {
				klog.InfoS("Destroying an orphaned monitor failed", "container", id, "err", err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			klog.InfoS("Loading an orphaned monitor failed", "container", id, "err", err)
		}
	}
	// Its leases were released before its record went (see Remove).
	if err := m.releaseImageVolumes(id, 0); err != nil {
		klog.InfoS("Cleaning up an orphaned container failed", "container", id, "err", err)
		return
	}
	if err := m.unmountRootfs(id, m.rootfsDir(id)); err != nil {
		klog.InfoS("Cleaning up an orphaned container failed", "container", id, "err", err)
		return
	}
	if err := m.store.deleteRecord(id); err != nil {
		klog.InfoS("Cleaning up an orphaned container failed", "container", id, "err", fmt.Errorf("delete record: %w", err))
		return
	}
	m.cleanupDirs(id)
}
