package container

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/phase"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Start lets a created container run its process. Only a container in
// state created can be started; anything else is FailedPrecondition.
func (m *Manager) Start(ctx context.Context, id string) error {
	e, err := m.lockLive(id)
	if err != nil {
		return err
	}
	defer e.Unlock()
	c := e.Load()
	if st := statusOf(c, e.proc).State; st != StateCreated {
		return errdefs.FailedPrecondition("container %s is %s, only a created container can be started", c.ID, st)
	}
	hooks, pod := m.lifecycleHooks(), m.podOf(c.PodID)
	// Checked under the container's lock: a pod stop marks the pod not
	// ready before it lists containers and waits for their locks, so a
	// start either sees that or is stopped by the stop after it.
	if pod == nil || pod.State != sandbox.StateReady {
		return errdefs.FailedPrecondition("container %s: pod sandbox %s is not ready", c.ID, c.PodID)
	}
	if err := hooks.StartContainer(ctx, pod, e.snapshot()); err != nil {
		return err
	}
	pt := phase.From(ctx)
	pt.Mark("lookup")
	if err := e.proc.Start(); err != nil {
		return fmt.Errorf("start container %s: %w", c.ID, err)
	}
	pt.Mark("monitor-start")
	if err := failpoint.Hit("ctr-start/after-start"); err != nil {
		return err
	}
	metrics.ContainerStarted()
	m.events.publish(Event{Type: EventStarted, ContainerID: c.ID, PodID: c.PodID, Time: time.Now()})
	hooks.PostStartContainer(ctx, pod, e.snapshot())
	return nil
}

// watchExit records the exit once the monitor reports it, and tells event
// subscribers. One goroutine per container; it ends with the container or
// with Close.
func (m *Manager) watchExit(e *entry) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-e.proc.Wait():
		case <-m.stop:
			return // Close: the next daemon's watcher takes over
		}
		if s := m.recordExit(e); s != nil {
			// Outside the lock: plugins may take their time.
			m.lifecycleHooks().StopContainer(context.Background(), m.podOf(s.PodID), s)
		}
	}()
}

func exitOf(st Status) *Exit {
	return &Exit{FinishedAt: st.FinishedAt, ExitCode: st.ExitCode, Reason: st.Reason, Message: st.Message}
}

// recordExit persists an exit the monitor reported and tells event
// subscribers; it returns the exited container, nil if there was no exit.
func (m *Manager) recordExit(e *entry) *Snapshot {
	if !e.LockLive() {
		return nil
	}
	defer e.Unlock()
	c := e.Load()
	st := statusOf(c, e.proc)
	if st.State != StateExited {
		return nil
	}
	if c.Exit == nil {
		// The first time this exit is seen, by this daemon or (the exit
		// happened while crisp was down) the next.
		metrics.ContainerExited(st.Reason)
		n := c.clone()
		n.Exit = exitOf(st)
		if err := m.commit(e, n); err != nil {
			// The monitor's exit.json still has it.
			klog.InfoS("Recording a container exit failed; the monitor's exit.json still has it", "container", c.ID, "err", err)
		}
	}
	m.events.publish(Event{Type: EventStopped, ContainerID: c.ID, PodID: c.PodID, Time: st.FinishedAt})
	return e.snapshot()
}
