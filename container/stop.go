package container

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// Stop stops a container: its stop signal, then after timeout SIGKILL to
// every process in its cgroup. Stopping an exited container succeeds, as
// does an unknown id (kubelet retries stops of containers it removed).
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	e, err := m.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// The lifecycle lock is not held while waiting: a second Stop with a
	// shorter timeout (kubelet's grace override) must be able to proceed.
	if !e.Live() {
		return nil
	}
	return m.stopEntry(ctx, e, timeout)
}

func (m *Manager) stopEntry(ctx context.Context, e *entry, timeout time.Duration) error {
	c := e.Load()
	st := statusOf(c, e.proc)
	if st.State == StateExited || e.proc == nil {
		return nil
	}
	sig := syscall.Signal(c.StopSignal)
	if sig == 0 {
		sig = unix.SIGTERM
	}
	if st.State == StateCreated {
		// Its process never ran and has no handler to give grace to.
		sig, timeout = unix.SIGKILL, 0
	}
	if timeout < 0 {
		timeout = 0
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+timeouts.StopSlack)
	defer cancel()
	if err := e.proc.Stop(sctx, sig, timeout); err != nil {
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	if err := failpoint.Hit("ctr-stop/after-stop"); err != nil {
		return err
	}
	// Told here as well as by the exit watcher: plugins must have heard of
	// the stop when StopContainer (or the pod's stop) returns.
	m.lifecycleHooks().StopContainer(sctx, m.podOf(c.PodID), e.snapshot())
	return nil
}

// StopPodContainers stops every container of a pod in parallel; it is the
// sandbox manager's hook, called with the pod's lock held.
func (m *Manager) StopPodContainers(ctx context.Context, podID string, grace time.Duration) error {
	entries := m.podEntries(podID)
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Waits for a Create in progress; then the container exists
			// (or was rolled back) and can be stopped.
			if !e.Live() {
				return
			}
			if err := m.stopEntry(ctx, e, grace); err != nil {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		klog.FromContext(ctx).Info("Stopping the pod's containers failed", "pod", podID, "err", err)
	}
	return err
}

// RemovePodContainers removes every container of a pod; the sandbox
// manager's hook, called with the pod's lock held after the stop.
func (m *Manager) RemovePodContainers(ctx context.Context, podID string) error {
	var errs []error
	for _, e := range m.podEntries(podID) {
		if err := m.removeEntry(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
