package monitor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/bootid"
	"github.com/crisp-runtime/crisp/internal/procexit"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// ErrNotRunning is returned for operations that need a running container.
var ErrNotRunning = errors.New("container is not running")

// Container is the daemon's handle on a container run by a monitor.
type Container struct {
	cfg proto.Config

	mu  sync.Mutex
	rec proto.StatusRecord
	// otherBoot: rec's pids are of an earlier boot and name nothing of ours.
	otherBoot bool
	status    Status
	done      chan struct{} // closed once the exit is recorded in status
	// watching is true while the monitor process is alive and watched.
	watching atomic.Bool
	// execHere: the monitor (of an older crisp) cannot run execs, the
	// daemon does (see Exec).
	execHere atomic.Bool
	// goInit: the monitor starts execs with libcontainer's init even
	// where its C init could (tests compare the two).
	goInit atomic.Bool

	lcMu sync.Mutex
	lc   *libcontainer.Container // cached libcontainer view, see libcontainer()
	// eventsFile is memoryEventsPath's answer, kept: cgroup paths never change.
	eventsFile string
	usage      *usageCgroup // usageReader's answer, kept likewise
	// pidsRoot, pidsDir: the monitor's pids cgroup (monitorHasPidsRoom).
	pidsRoot, pidsDir string
}

// ID returns the container id.
func (c *Container) ID() string { return c.cfg.ID }

// Status returns the last known status; it does not touch the disk.
func (c *Container) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Wait returns a channel that is closed once the container has exited and
// its exit status is available from Status.
func (c *Container) Wait() <-chan struct{} { return c.done }

// MonitorRunning reports whether the container's monitor process is alive.
func (c *Container) MonitorRunning() bool { return c.watching.Load() }

// Load rebuilds the handle of a container created earlier, typically by a
// previous daemon process. A live monitor is watched again; an exit that
// happened while nobody was watching is read from exit.json.
func Load(bundle, stateDir string) (*Container, error) {
	c := &Container{done: make(chan struct{})}
	if err := proto.ReadJSON(bundlePath(bundle, proto.ConfigFile), &c.cfg); err != nil {
		return nil, err
	}
	// The state dir may have moved (it is volatile); trust the caller.
	c.cfg.Bundle, c.cfg.StateDir = bundle, stateDir
	err := proto.ReadRecord(&c.cfg, proto.StatusFile, &c.rec)
	if errors.Is(err, fs.ErrNotExist) && proto.WaitBundleUnlocked(bundle, timeouts.InterruptedCreate) {
		// The daemon that spawned the monitor died while the monitor was
		// still creating the container (under the bundle lock): once the
		// create is over, status.json is there, or the create was undone.
		err = proto.ReadRecord(&c.cfg, proto.StatusFile, &c.rec)
	}
	_, serr := os.Stat(stateDir)
	if err != nil {
		if serr == nil {
			return nil, err
		}
		// status.json is not synced (see process.record): after a crash
		// of the node, which wiped the state dir, it may be missing or
		// cut short, and the container died with the node.
		c.otherBoot = true
		if !c.readExit() {
			c.monitorGone()
		}
		return c, nil
	}
	c.status = statusOf(&c.rec)
	// A record without a boot id is of this boot if the volatile state
	// dir, which a reboot wipes, is still there.
	c.otherBoot = !bootid.Same(c.rec.BootID, serr == nil)
	exited := c.readExit()
	// Watch the monitor even if the exit is already recorded: if it became
	// our child (we are its subreaper) it must still be reaped.
	pidfd, err := c.openVerifiedPidfd(c.rec.MonitorPid, c.rec.MonitorStartTime)
	switch {
	case err == nil:
		c.watching.Store(true)
		go c.watch(pidfd)
	case !exited && !c.readExit():
		// Gone without recording an exit (readExit again: it may have
		// written exit.json just now).
		c.monitorGone()
	}
	return c, nil
}

// readExit applies exit.json if present and marks the container exited.
func (c *Container) readExit() bool {
	var e proto.ExitRecord
	if err := proto.ReadRecord(&c.cfg, proto.ExitFile, &e); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.setExit(func(s *Status) {
				s.State, s.ExitCode, s.Reason = StateExited, 255, ReasonError
				s.Message = fmt.Sprintf("unreadable exit status: %v", err)
			})
			return true
		}
		return false
	}
	c.setExit(func(s *Status) { s.applyExit(&e) })
	return true
}

func (c *Container) setExit(f func(*Status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return // already recorded
	default:
	}
	f(&c.status)
	close(c.done)
}

// monitorGone handles a monitor that died without recording an exit (it
// was killed). If the init still runs the container is orphaned: its state
// is unknown, but Stop and Destroy can still kill it through its cgroup.
func (c *Container) monitorGone() {
	if !c.otherBoot && aliveWithStartTime(c.rec.InitPid, c.rec.InitStartTime) {
		c.mu.Lock()
		c.status.State = StateUnknown
		c.status.Message = "container monitor is gone"
		c.mu.Unlock()
		return
	}
	c.setExit(func(s *Status) {
		s.State, s.ExitCode, s.Reason = StateExited, 255, ReasonError
		s.FinishedAt = time.Now().UTC()
		s.Message = "container monitor exited without recording an exit status"
	})
}

// aliveWithStartTime reports whether pid is a live (not zombie) process that
// started at startTime, i.e. the same process as recorded, not a reused pid.
func aliveWithStartTime(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := proto.ReadProcStat(pid)
	return err == nil && st.StartTime == startTime && st.State != 'Z' && st.State != 'X'
}

// errOtherBoot refuses pids recorded in an earlier boot.
var errOtherBoot = errors.New("process was recorded in an earlier boot")

// openVerifiedPidfd returns a pidfd for pid if it still is the process
// (possibly a zombie) of this boot that started at startTime. The start
// time is checked after the pidfd is opened, so a match proves the pidfd
// refers to our process, not to a reuse of its pid.
func (c *Container) openVerifiedPidfd(pid int, startTime uint64) (*os.File, error) {
	if c.otherBoot {
		return nil, errOtherBoot
	}
	if pid <= 0 {
		return nil, errors.New("no monitor pid")
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if st, err := proto.ReadProcStat(pid); err != nil || st.StartTime != startTime {
		unix.Close(fd)
		return nil, errors.New("monitor pid was reused")
	}
	// Non-blocking, so os wraps it in the runtime poller: waiting for the
	// exit costs no thread.
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// watch waits for the monitor to exit, reaps it if it is our child, and
// publishes the exit it recorded.
func (c *Container) watch(pidfd *os.File) {
	defer pidfd.Close()
	waitPidfd(context.Background(), pidfd)
	c.watching.Store(false)
	reapPidfd(pidfd)
	if !c.readExit() {
		c.monitorGone()
	}
}

// waitPidfd waits until the process behind pidfd has exited (the pidfd
// becomes readable once its whole thread group is gone) or ctx ends.
func waitPidfd(ctx context.Context, pidfd *os.File) error {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { pidfd.SetReadDeadline(time.Now()) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool {
		exited, _ := procexit.Exited(fd)
		return exited
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// reapPidfd reaps exactly the exited process behind pidfd. It fails with
// ECHILD, harmlessly, if the process is not our child (its parent or init
// reaps it) or was reaped already.
func reapPidfd(pidfd *os.File) {
	if rc, err := pidfd.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			var info unix.Siginfo
			unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
		})
	}
}

// libcontainer returns the container as libcontainer sees it. The daemon
// uses it for signal, exec, update and stats; it is loaded once and
// reused, because loading parses the whole state.
func (c *Container) libcontainer() (*libcontainer.Container, error) {
	c.lcMu.Lock()
	defer c.lcMu.Unlock()
	if c.lc == nil {
		lc, err := libcontainer.Load(c.cfg.LibcontainerRoot(), c.cfg.ID)
		if err != nil {
			return nil, err
		}
		c.lc = lc
	}
	return c.lc, nil
}

// lockedLibcontainer is libcontainer() with the bundle lock held, as every
// libcontainer operation on the container needs (libcontainer has no
// cross-process locking): call unlock when done.
func (c *Container) lockedLibcontainer() (lc *libcontainer.Container, unlock func(), err error) {
	if lc, err = c.libcontainer(); err != nil {
		return nil, nil, err
	}
	if unlock, err = proto.LockBundle(c.cfg.Bundle); err != nil {
		return nil, nil, err
	}
	return lc, unlock, nil
}

func (c *Container) forgetLibcontainer() {
	c.lcMu.Lock()
	c.lc = nil
	c.lcMu.Unlock()
}

// running reports whether the container init has been started and has not
// exited.
func (c *Container) running() bool {
	return c.Status().State == StateRunning
}
