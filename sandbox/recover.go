package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/bootid"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/record"
	"github.com/crisp-runtime/crisp/network"
)

// recoverAction is what start-up does with a loaded record.
type recoverAction int

const (
	// keepPod: the pod is indexed as recorded.
	keepPod recoverAction = iota
	// markNotReady: the pod is indexed but lost its namespaces or reaper
	// (a reboot, someone's umount or kill); kubelet will replace it.
	markNotReady
	// rollBack: RunPodSandbox never finished; undo it.
	rollBack
)

// podHealth is what start-up observed about a recorded pod.
type podHealth struct {
	pinsOK   bool // every recorded pin still holds a namespace
	reaperOK bool // the recorded reaper (if any) is alive and the same process
}

// decide is the pure part of recovery, kept apart so it can be tested.
func decide(sb *Sandbox, h podHealth) recoverAction {
	switch {
	case sb.State == StateCreating:
		return rollBack
	case sb.State == StateReady && (!h.pinsOK || !h.reaperOK):
		return markNotReady
	}
	return keepPod
}

// recover rebuilds the index from the records. It always succeeds: a node
// whose runtime does not come up cannot free anything, so what cannot be
// read is quarantined and what cannot be saved is kept in memory.
func (m *Manager) recover(ctx context.Context) {
	pods, orphans, errs := m.store.loadAll()
	// A pod whose record cannot be read (damaged, or a newer crisp's
	// schema after a rollback) may be live: its pins, shm, reaper and IP
	// are kept, untouched, until a person repairs or removes the record.
	quarantined := map[string]bool{}
	for _, err := range errs {
		klog.ErrorS(err, "Unreadable pod record quarantined: its namespaces, processes and IP are kept until it is repaired or removed")
		m.quarantined = append(m.quarantined, err.Error())
		metrics.Recovery(metrics.RecoveryPod, metrics.Quarantined)
		if le := (*record.LoadError)(nil); errors.As(err, &le) {
			quarantined[le.ID] = true
		}
	}
	for _, id := range orphans {
		// A Remove that crashed after deleting the record, or a Run that
		// crashed before writing its first one.
		klog.InfoS("Removing the leftovers of a pod without a record", "pod", id)
		m.removeLeftovers(id)
		_ = os.RemoveAll(m.store.dir(id))
	}
	var keep []network.Pod
	for _, sb := range pods {
		h := podHealth{pinsOK: true, reaperOK: true}
		for _, pin := range sb.Namespaces {
			if !isPinned(pin) {
				h.pinsOK = false
			}
		}
		if r := sb.Reaper; r != nil {
			// A record from before boot ids counts as this boot's only
			// while its pins (on /run, wiped by a reboot) still hold.
			st, err := procStartTime(r.PID)
			h.reaperOK = err == nil && st == r.StartTime && bootid.Same(r.BootID, h.pinsOK)
			if h.reaperOK && r.BootID == "" {
				r.BootID = bootid.Current() // saved with the next change of the pod
			}
		}
		switch decide(sb, h) {
		case rollBack:
			klog.InfoS("Rolling back a pod whose creation was interrupted", "pod", sb.ID)
			m.rollBack(ctx, sb)
			metrics.Recovery(metrics.RecoveryPod, metrics.RolledBack)
			continue
		case markNotReady:
			klog.InfoS("Pod lost its namespaces or reaper; reporting it not ready", "pod", sb.ID)
			sb.State = StateNotReady
			if !h.reaperOK {
				sb.Reaper = nil
			}
			if err := m.store.save(sb); err != nil {
				// In memory only: the next start-up decides again.
				klog.ErrorS(err, "Recording that a pod is not ready failed", "pod", sb.ID)
			}
		}
		if err := m.names.Reserve(nameKey(sb.Config.Metadata), sb.ID); err != nil {
			klog.ErrorS(err, "Recovering a pod's name", "pod", sb.ID)
		}
		e := &entry{}
		e.Store(sb)
		if sb.Reaper != nil {
			e.reaperExit = watchProcess(*sb.Reaper, nil)
			m.watchReaper(e, *sb.Reaper)
		}
		m.pods.Add(sb.ID, e)
		metrics.Recovery(metrics.RecoveryPod, metrics.Recovered)
		if sb.Network.Attached {
			keep = append(keep, netPod(sb))
		}
	}
	m.sweepOrphanMounts(quarantined)
	if m.net != nil {
		for id := range quarantined {
			keep = append(keep, network.Pod{ID: id})
		}
		if err := m.net.GC(ctx, keep); err != nil {
			klog.ErrorS(err, "CNI garbage collection failed")
		}
	}
}

// Quarantined describes the pod records start-up could not read.
func (m *Manager) Quarantined() []string { return slices.Clone(m.quarantined) }

// rollBack undoes a Run that crashed, from what its "creating" record says
// it may have created. Every step tolerates having never happened.
func (m *Manager) rollBack(ctx context.Context, sb *Sandbox) {
	if sb.Network.Attached && m.net != nil {
		if err := m.net.Teardown(ctx, netPod(sb)); err != nil {
			klog.ErrorS(err, "CNI DEL of an interrupted pod failed", "pod", sb.ID)
		}
	}
	m.removeLeftovers(sb.ID)
	if sb.Config.Namespaces.PID == ModePod {
		if err := m.cgroups.reaperCgroup(sb.Cgroup, sb.ID).Remove(); err != nil {
			klog.ErrorS(err, "Removing the reaper cgroup of an interrupted pod", "pod", sb.ID)
		}
	}
	if err := m.cgroups.remove(sb.CgroupCreated, path.Base(sb.Cgroup)); err != nil {
		klog.ErrorS(err, "Rolling back an interrupted pod", "pod", sb.ID)
	}
	if err := m.store.delete(sb.ID); err != nil {
		klog.ErrorS(err, "Rolling back an interrupted pod", "pod", sb.ID)
	}
}

// removeLeftovers kills a reaper the crash left untracked (it had been
// released but not yet recorded), then unpins and unmounts.
func (m *Manager) removeLeftovers(id string) {
	if pin := filepath.Join(m.pins.podDir(id), NSPID); isPinned(pin) {
		if err := killPIDNamespace(pin); err != nil {
			klog.ErrorS(err, "Removing pod leftovers", "pod", id)
		}
	}
	if err := m.pins.remove(id); err != nil {
		klog.ErrorS(err, "Removing pod leftovers", "pod", id)
	}
	if err := m.removeShm(id); err != nil {
		klog.ErrorS(err, "Removing pod leftovers", "pod", id)
	}
}

// sweepOrphanMounts unpins and unmounts what belongs to no pod, indexed or
// quarantined.
func (m *Manager) sweepOrphanMounts(quarantined map[string]bool) {
	for _, dir := range []string{m.pins.dir, m.shmDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if _, ok := m.pods.Get(e.Name()); !ok && !quarantined[e.Name()] {
				klog.InfoS("Removing the namespaces and shm of an unknown pod", "pod", e.Name())
				m.removeLeftovers(e.Name())
			}
		}
	}
}

// killPIDNamespace kills the init of the PID namespace pinned at pin, found
// by scanning /proc (start-up only), which takes the namespace's other
// processes with it.
func killPIDNamespace(pin string) error {
	var st unix.Stat_t
	if err := unix.Stat(pin, &st); err != nil {
		return err
	}
	want := fmt.Sprintf("pid:[%d]", st.Ino)
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && link == want {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return nil
}
