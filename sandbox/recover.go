package sandbox

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/metrics"
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

func (m *Manager) recover(ctx context.Context) error {
	pods, orphans, errs := m.store.loadAll()
	for _, err := range errs {
		klog.ErrorS(err, "Ignoring an unreadable pod record")
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
		if sb.Reaper != nil {
			st, err := procStartTime(sb.Reaper.PID)
			h.reaperOK = err == nil && st == sb.Reaper.StartTime
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
				return err
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
	m.sweepOrphanMounts()
	if m.net != nil {
		if err := m.net.GC(ctx, keep); err != nil {
			klog.ErrorS(err, "CNI garbage collection failed")
		}
	}
	return nil
}

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

// sweepOrphanMounts unpins and unmounts what belongs to no indexed pod.
func (m *Manager) sweepOrphanMounts() {
	for _, dir := range []string{m.pins.dir, m.shmDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if _, ok := m.pods.Get(e.Name()); !ok {
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
