package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/ids"
	"github.com/crisp-runtime/crisp/internal/phase"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/sandbox/podinit"
)

// Run creates a pod and returns its id. Everything it did is undone if it
// fails; a crash half way is undone at the next start-up (see recover).
//
// The id is not a named result: a failing return sets the result to "",
// and the rollback closures must still remove this pod's files, not the
// directories of every pod.
func (m *Manager) Run(ctx context.Context, cfg Config) (_ string, retErr error) {
	if err := cfg.validate(); err != nil {
		return "", err
	}
	if err := m.validateAnnotations(cfg); err != nil {
		return "", err
	}
	podNet := cfg.Namespaces.Network == ModePod
	if podNet && m.net == nil {
		return "", errdefs.FailedPrecondition("%w", errNoNetwork)
	}
	if cfg.Namespaces.UsernsPod() {
		if err := m.UserNamespaces(); err != nil {
			return "", errdefs.FailedPrecondition("namespace_options.userns_options: %w", err)
		}
	}
	cgPath, err := m.cgroups.podPath(cfg.CgroupParent, "")
	if err != nil {
		return "", errdefs.InvalidArgument("%v", err)
	}
	pt := phase.From(ctx)
	// Finished even if the client gives up: kubelet's retry adopts the
	// pod (the cancellation policy in internal/timeouts).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeouts.PodRun)
	defer cancel()

	id := ids.New()
	if cfg.CgroupParent == "" {
		cgPath, _ = m.cgroups.podPath("", id)
	}
	key := nameKey(cfg.Metadata)
	if err := m.names.Reserve(key, id); err != nil {
		return "", err
	}

	var undo []func() error
	defer func() {
		if retErr == nil {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				klog.FromContext(ctx).Error(err, "Rolling back a failed RunPodSandbox", "pod", id)
			}
		}
		m.names.Release(key, id)
	}()

	sb, kinds, err := m.plan(id, cfg, cgPath)
	if err != nil {
		return "", err
	}
	// The "creating" record lists everything the following steps may
	// create, so that recovery can undo them after a crash.
	undo = append(undo, func() error { return m.store.delete(id) })
	if err := m.store.save(sb); err != nil {
		return "", fmt.Errorf("save pod record: %w", err)
	}
	pt.Mark("record")
	if err := writePodFiles(sb); err != nil {
		return "", fmt.Errorf("pod files: %w", err)
	}
	pt.Mark("files")

	made, err := m.cgroups.create(sb.CgroupCreated)
	sb.CgroupCreated = made
	undo = append(undo, func() error { return m.cgroups.remove(made, path.Base(cgPath)) })
	if err != nil {
		return "", err
	}
	pt.Mark("cgroup")

	if sb.ShmMounted {
		undo = append(undo, func() error { return m.removeShm(id) })
		if err := mountShm(sb.ShmPath, sb.ShmSize, sb.Config.Namespaces); err != nil {
			return "", err
		}
	}
	pt.Mark("shm")

	var reaperExit processExit
	if len(kinds) > 0 {
		spec := podinit.Spec{Sysctls: cfg.Sysctls}
		if podNet {
			spec.Hostname = sb.Hostname
		}
		reaperCg := m.cgroups.reaperCgroup(cgPath, id)
		if cfg.Namespaces.PID == ModePod {
			// After the reaper's undo below has stopped it.
			undo = append(undo, reaperCg.Remove)
		}
		undo = append(undo, func() error { return m.pins.remove(id) })
		p, err := m.pins.create(ctx, id, kinds, cfg.Namespaces, spec, reaperCg.Join)
		if err != nil {
			return "", err
		}
		if p.reaper != nil {
			r := *p.reaper
			sb.Reaper = &r
			reaperExit = watchProcess(r, p.cmd)
			undo = append(undo, func() error { return stopReaper(r, reaperExit) })
		}
		if err := failpoint.Hit("pod-run/after-pins"); err != nil {
			return "", err
		}
	}
	pt.Mark("namespaces")

	if podNet {
		undo = append(undo, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), timeouts.Cleanup)
			defer cancel()
			return m.net.Teardown(ctx, netPod(sb))
		})
		res, err := m.net.Setup(ctx, netPod(sb))
		if err != nil {
			return "", fmt.Errorf("pod network: %w", err)
		}
		sb.Network.IPs = res.IPs
		sb.Network.Interfaces = res.Interfaces
		sb.Network.Name = res.Network
		sb.Network.Raw = res.Raw
		if err := failpoint.Hit("pod-run/after-cni-add"); err != nil {
			return "", err
		}
	}
	pt.Mark("cni")
	if err := writeHosts(sb); err != nil {
		return "", fmt.Errorf("pod hosts file: %w", err)
	}
	pt.Mark("hosts")

	// Plugins see the pod complete but nobody else sees it before they
	// agreed; until it is indexed, a connecting plugin waits for it.
	hooks := m.lifecycleHooks()
	unblock := hooks.BlockSync()
	defer unblock()
	if err := hooks.RunPod(ctx, sb); err != nil {
		return "", err
	}
	undo = append(undo, func() error {
		hooks.StopPod(ctx, sb)
		hooks.RemovePod(ctx, sb)
		return nil
	})

	sb.State = StateReady
	e := &entry{reaperExit: reaperExit}
	if err := m.pods.Commit(e, sb); err != nil {
		return "", err
	}
	pt.Mark("record-ready")
	// A failure from here on cannot roll back: the pod is recorded ready.
	_ = failpoint.Hit("pod-run/after-record")
	if sb.Reaper != nil {
		m.watchReaper(e, *sb.Reaper)
	}
	m.pods.Add(id, e)
	// The pod's namespaces are its "container": created and started at once.
	m.publish(EventCreated, sb)
	m.publish(EventStarted, sb)
	return id, nil
}

// plan decides every name and path of a new pod without touching anything.
func (m *Manager) plan(id string, cfg Config, cgPath string) (*Sandbox, []string, error) {
	ns := cfg.Namespaces
	sb := &Sandbox{
		ID:         id,
		Config:     cfg,
		State:      StateCreating,
		CreatedAt:  time.Now(),
		Hostname:   cfg.Hostname,
		Namespaces: map[string]string{},
		Cgroup:     cgPath,
		ShmPath:    hostShm,
		Network:    PodNetwork{Attached: ns.Network == ModePod},
	}
	podFilePaths(sb, m.store.dir(id))
	var kinds []string
	if ns.Network == ModePod {
		kinds = append(kinds, NSNet, NSUTS)
		if sb.Hostname == "" {
			// kubelet always sends one; for other clients containerd's
			// choice, the node's name, is what tools expect (a pod name can
			// exceed the kernel's 64-byte limit).
			h, err := os.Hostname()
			if err != nil {
				return nil, nil, err
			}
			sb.Hostname = h
		}
	} else {
		// Host network pods share the node's UTS namespace too.
		h, err := os.Hostname()
		if err != nil {
			return nil, nil, err
		}
		sb.Hostname = h
	}
	if ns.IPC == ModePod {
		kinds = append(kinds, NSIPC)
		sb.ShmPath = filepath.Join(m.shmDir, id, "shm")
		sb.ShmMounted = true
		size, err := m.shm.shmSize(cfg)
		if err != nil {
			return nil, nil, err
		}
		sb.ShmSize = size
	}
	if ns.PID == ModePod {
		kinds = append(kinds, NSPID)
	}
	if ns.UsernsPod() {
		kinds = append(kinds, NSUser)
	}
	for _, k := range kinds {
		sb.Namespaces[k] = filepath.Join(m.pins.podDir(id), k)
	}
	sb.CgroupCreated = m.cgroups.plan(cgPath)
	return sb, kinds, nil
}

func (m *Manager) removeShm(id string) error {
	err := unmountShm(filepath.Join(m.shmDir, id, "shm"))
	if rmErr := os.Remove(filepath.Join(m.shmDir, id)); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}

// stopReaper kills a pod's PID 1, which takes every process of the PID
// namespace with it, and waits until it is gone.
func stopReaper(r Reaper, exit processExit) error {
	if err := signalProcess(r, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill pod reaper %d: %w", r.PID, err)
	}
	select {
	case <-exit:
		return nil
	case <-time.After(timeouts.ReaperStop):
		return fmt.Errorf("pod reaper %d did not exit within %v", r.PID, timeouts.ReaperStop)
	}
}

// watchReaper marks the pod not ready if its reaper dies on its own (OOM
// killer, someone's kill): the PID namespace can then no longer be joined.
func (m *Manager) watchReaper(e *entry, r Reaper) {
	exit := e.reaperExit
	go func() {
		<-exit
		if !e.LockLive() {
			return // removed
		}
		defer e.Unlock()
		sb := e.Load()
		if sb.Reaper == nil || *sb.Reaper != r {
			return // stopped deliberately
		}
		klog.InfoS("Pod reaper exited; the pod is no longer ready", "pod", sb.ID, "pid", r.PID)
		sb = sb.clone()
		sb.Reaper = nil
		sb.State = StateNotReady
		if err := m.pods.Commit(e, sb); err != nil {
			klog.ErrorS(err, "Marking the pod not ready", "pod", sb.ID)
			e.Store(sb)
		}
		m.publish(EventStopped, sb)
	}()
}
