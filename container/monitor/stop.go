package monitor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// Signal sends sig to the container init.
func (c *Container) Signal(sig syscall.Signal) error {
	if st := c.Status().State; st == StateExited {
		return ErrNotRunning
	}
	lc, unlock, err := c.lockedLibcontainer()
	if err != nil {
		return err
	}
	defer unlock()
	if err := lc.Signal(sig); err != nil {
		if initGone(err) {
			return ErrNotRunning
		}
		return err
	}
	return nil
}

// initGone tells libcontainer's "not running" apart from real failures: an
// init that exits between libcontainer's liveness check and its signal
// surfaces as os.ErrProcessDone.
func initGone(err error) bool {
	return errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, os.ErrProcessDone)
}

// Stop sends sig to the init and, if the container has not exited after
// timeout, kills every process in its cgroup. It returns once the exit has
// been recorded (or ctx ends).
func (c *Container) Stop(ctx context.Context, sig syscall.Signal, timeout time.Duration) error {
	switch c.Status().State {
	case StateExited:
		return nil
	case StateUnknown:
		return c.stopOrphan(ctx)
	}
	if timeout > 0 && sig != unix.SIGKILL {
		st := c.Status()
		pid := st.Pid
		if st.State == StateRunning {
			// A created container's init waits for a start that
			// will not come: no exec to wait for.
			awaitExec(pid, time.Now().Add(min(timeout, time.Second)), c.done)
		}
		before, _ := readSignalState(pid, sig)
		if err := c.Signal(sig); err != nil && !errors.Is(err, ErrNotRunning) {
			return err
		}
		// The kernel decides at the send, between the two reads.
		after, _ := readSignalState(pid, sig)
		if before.discarded() || after.discarded() {
			// Lost on arrival (stop_signal.go): send it again once
			// the init can take it.
			stop := make(chan struct{})
			defer close(stop)
			go c.redeliver(pid, sig, stop)
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := c.killAll(); err != nil {
		return err
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopOrphan kills a container whose monitor is gone. Nobody will record
// its exit, so it is recorded here once the init is gone. If the init was
// re-parented to us (we are a subreaper), we reap it.
func (c *Container) stopOrphan(ctx context.Context) error {
	pidfd, err := c.openVerifiedPidfd(c.rec.InitPid, c.rec.InitStartTime)
	if err == nil {
		defer pidfd.Close()
	}
	if err := c.killAll(); err != nil {
		return err
	}
	if pidfd != nil {
		if err := waitPidfd(ctx, pidfd); err != nil {
			return err
		}
		reapPidfd(pidfd)
	}
	c.setExit(func(s *Status) {
		s.State, s.ExitCode, s.Reason = StateExited, 128+int(unix.SIGKILL), ReasonError
		s.FinishedAt = time.Now().UTC()
		s.Message = "killed after its container monitor was gone"
	})
	return nil
}

// killAll SIGKILLs every process in the container's cgroup: the init (in a
// private pid namespace that alone kills the rest) and, for shared pid
// namespaces and exec'd processes, everything else. The cgroup is frozen
// meanwhile so that nothing can fork out of the kill.
func (c *Container) killAll() error {
	lc, unlock, err := c.lockedLibcontainer()
	if err != nil {
		return err
	}
	defer unlock()
	err = libct.KillCgroup(lc, func(int) bool { return true })
	// The cgroup kill above usually got the init already.
	if err2 := lc.Signal(unix.SIGKILL); err == nil && err2 != nil && !initGone(err2) && !cgroupGone(err2) {
		err = err2
	}
	return err
}

// cgroupGone reports a kill through cgroup.kill that found the cgroup
// removed: with the systemd driver the container's scope goes as soon as
// its last process has exited (ENODEV while it is being removed, ENOENT
// after), and with nothing left in it there is nothing to kill.
func cgroupGone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, libcontainer.ErrCgroupNotExist)
}

// Destroy removes a container: it kills it if still running, removes its
// cgroup and libcontainer state, and deletes its state files. It is
// idempotent.
func (c *Container) Destroy() error {
	select {
	case <-c.done:
	default:
		if err := c.killAll(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// Without a monitor (state unknown) nobody will record the exit;
		// cleanupLibcontainer waits for the init to be gone.
		if c.Status().State != StateUnknown {
			select {
			case <-c.done:
			case <-time.After(timeouts.MonitorDestroy):
				return fmt.Errorf("container %s did not exit after SIGKILL", c.cfg.ID)
			}
		}
	}
	c.forgetLibcontainer()
	if err := cleanupLibcontainer(&c.cfg); err != nil {
		return err
	}
	if !c.cfg.MonitorCgroup.IsZero() {
		if err := c.cfg.MonitorCgroup.Remove(); err != nil {
			return err
		}
	}
	removeState(&c.cfg)
	return nil
}

// cleanupLibcontainer kills what may be left and runs libcontainer Destroy
// (cgroup and state removal). A container libcontainer does not know (any
// more) is fine.
func cleanupLibcontainer(pc *proto.Config) error {
	if _, err := os.Stat(pc.LibcontainerRoot()); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	unlock, err := proto.LockBundle(pc.Bundle)
	if err != nil {
		return err
	}
	defer unlock()
	lc, err := libcontainer.Load(pc.LibcontainerRoot(), pc.ID)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) || errors.Is(err, fs.ErrNotExist) {
			// A monitor killed in the middle of libcontainer's start
			// leaves a cgroup but no state: find it from the spec.
			if err := destroySpecCgroup(pc); err != nil {
				return err
			}
			return os.RemoveAll(pc.LibcontainerRoot())
		}
		return err
	}
	libct.KillCgroup(lc, func(int) bool { return true })
	lc.Signal(unix.SIGKILL)
	// Destroy refuses a container whose init still runs; the SIGKILL
	// takes a moment.
	for i := 0; ; i++ {
		err = lc.Destroy()
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(pc.LibcontainerRoot())
}

// destroySpecCgroup kills the processes in, and removes, the cgroup the
// container's spec asks for.
func destroySpecCgroup(pc *proto.Config) error {
	var spec specs.Spec
	if err := proto.ReadJSON(pc.Path(proto.SpecFile), &spec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	cg, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{CgroupName: pc.ID, UseSystemdCgroup: pc.SystemdCgroup, Spec: &spec}, nil)
	if err != nil {
		return err
	}
	m, err := manager.New(cg)
	if err != nil {
		return err
	}
	// Not m.Exists(): it checks one controller, and the start may have
	// been cut short before that one was created.
	pids, _ := m.GetAllPids()
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	// Removal fails while the killed processes are still exiting.
	for i := 0; ; i++ {
		err = m.Destroy()
		if err == nil || i == 50 {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
