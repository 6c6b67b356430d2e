package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor/internal/cinit"
	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/container/monitor/internal/thp"
	"github.com/crisp-runtime/crisp/internal/phase"

	// nsenter's constructor runs before the Go runtime in the `init`
	// re-exec that libcontainer's Run (Exec) starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// InitIfRequested runs libcontainer's container init when the program was
// re-executed for it (args "init"): libcontainer starts exec'd processes by
// re-executing the calling binary, the daemon for the execs it runs itself
// (see Exec). main must call it first thing. It does not return in that
// case.
func InitIfRequested() {
	cinit.DumpIfRequested() // the crisp binary serving as a monitor
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// Whatever THP opt-out the daemon inherited is not the exec'd
		// program's: it gets the system's policy like the container's
		// init (see package thp).
		thp.Allow()
		libcontainer.Init()
	}
}

// Exec runs p inside the running container and returns its exit code. The
// streams may be nil. When ctx ends, the process and everything it started
// are killed (the container keeps running) and ctx's error is returned.
//
// The container's monitor starts and reaps the process (see execInMonitor);
// the daemon holds the streams, as the process's parent did before, and
// does the killing. A monitor of an older crisp, which cannot, gets the
// exec run here.
func (c *Container) Exec(ctx context.Context, p *specs.Process, stdin io.Reader, stdout, stderr io.Writer, tty bool, resize <-chan TermSize) (int, error) {
	if !c.running() {
		return -1, ErrNotRunning
	}
	sio := &execIO{}
	defer sio.closeAll()
	if err := sio.setup(stdin, stdout, stderr, tty); err != nil {
		return -1, err
	}
	pt := phase.From(ctx)
	pt.Mark("setup")
	run, err := c.startExec(ctx, p, sio, tty, pt)
	if err != nil {
		return -1, err
	}
	defer run.close()
	pid := run.pid()
	if err := sio.started(stdin, stdout, resize); err != nil {
		c.killExec(pid, sio)
		run.wait()
		return -1, err
	}

	waited := make(chan error, 1)
	var code int
	go func() {
		ws, err := run.wait()
		if err == nil {
			code = exitCode(ws)
		}
		waited <- err
	}()
	// The exec'd process is a session leader (libcontainer's nsenter calls
	// setsid), so its descendants can be found by session id even after
	// it exited and they were re-parented.
	select {
	case err = <-waited:
	case <-ctx.Done():
		c.killExec(pid, sio)
		run.waitKilled(waited)
		sio.drain(ExecDrainTimeout)
		return -1, ctx.Err()
	}
	if err != nil {
		sio.drain(0)
		return -1, err
	}
	pt.Mark("wait")
	// Deliver all output: wait until every holder of the streams is gone,
	// but not for one that detached and keeps them (`setsid daemon &`):
	// like containerd's drain_exec_sync_io_timeout, the exec is done when
	// its process is, plus a bounded drain.
	drain := time.NewTimer(ExecDrainTimeout)
	defer drain.Stop()
	select {
	case <-sio.outputDone():
		pt.Mark("drain")
	case <-drain.C:
		sio.drain(0)
	case <-ctx.Done():
		c.killExec(pid, sio)
		sio.drain(ExecDrainTimeout)
		return code, ctx.Err()
	}
	return code, nil
}

// startExec starts p through the monitor, or here if it cannot.
func (c *Container) startExec(ctx context.Context, p *specs.Process, sio *execIO, tty bool, pt *phase.Timer) (startedExec, error) {
	if !c.execHere.Load() && c.monitorHasPidsRoom() {
		run, err := c.execInMonitor(ctx, p, sio, tty, pt)
		if !errors.Is(err, errMonitorCannotExec) {
			return run, err
		}
	}
	return c.execInDaemon(p, sio, pt)
}

// startedExec is an exec'd process that runs.
type startedExec interface {
	pid() int
	// wait returns once the process has exited and was reaped.
	wait() (syscall.WaitStatus, error)
	// waitKilled waits for wait's result on waited after the process was
	// killed, giving up after a while if it does not come.
	waitKilled(waited <-chan error)
	close()
}

// errMonitorCannotExec: the monitor does not run execs (it is of a version
// before it could, or gone) or could not fork for this one (the pod's
// pids.max): the daemon runs the exec itself.
var errMonitorCannotExec = errors.New("container monitor cannot run the exec")

// execInMonitor asks the container's monitor to start p with the streams
// of sio (proto.CmdExec), so that libcontainer's init for it is the small
// crisp-monitor binary rather than the daemon's. errMonitorCannotExec
// means nothing was started.
func (c *Container) execInMonitor(ctx context.Context, p *specs.Process, sio *execIO, tty bool, pt *phase.Timer) (startedExec, error) {
	conn, err := c.dialMonitor(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A monitor that is gone can start nothing; libcontainer
		// still can while the init lives (state unknown).
		return nil, errMonitorCannotExec
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	req := proto.ExecRequest{Process: p, Tty: tty, Phases: pt != nil, GoInit: c.goInit.Load()}
	files := sio.request(&req)
	b, err := json.Marshal(&req)
	if err != nil {
		return nil, err
	}
	if err := proto.WriteFrame(conn, proto.FrameControl, []byte(proto.CmdExec)); err != nil {
		return nil, fmt.Errorf("container monitor: %w", err)
	}
	// A monitor that does not know the command may have answered and
	// closed already: its reply says so.
	werr := proto.WriteFrameFiles(conn, proto.FrameExecRequest, b, files)
	typ, reply, err := proto.ReadFrame(conn, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("container monitor: %w", errors.Join(werr, err))
	}
	text, err := proto.ParseReply(typ, reply)
	if proto.IsUnknownCommand(err) {
		c.execHere.Store(true)
		return nil, errMonitorCannotExec
	}
	if proto.IsForkRefused(err) {
		// The pod is at its pids.max: the daemon's fork is not the
		// pod's, and the exec'd process joins the container's cgroup
		// as it always did.
		return nil, errMonitorCannotExec
	}
	if err != nil {
		return nil, err
	}
	var st proto.ExecStarted
	if err := json.Unmarshal([]byte(text), &st); err != nil || st.Pid <= 0 {
		return nil, fmt.Errorf("container monitor: bad exec reply %q", text)
	}
	for _, mk := range st.Marks {
		pt.MarkAt(mk.Name, time.Unix(0, mk.At))
	}
	pt.Mark("monitor.reply")
	if !stop() {
		// ctx ended just now (the connection's deadline is being set):
		// closing the connection makes the monitor kill the process.
		return nil, ctx.Err()
	}
	ok = true
	return &monitorExec{conn: conn, p: st.Pid}, nil
}

// monitorExec is a process the monitor started; it reports the exit on the
// connection, and kills the process if the connection is closed first.
type monitorExec struct {
	conn *net.UnixConn
	p    int
}

func (e *monitorExec) pid() int { return e.p }

func (e *monitorExec) wait() (syscall.WaitStatus, error) {
	typ, p, err := proto.ReadFrame(e.conn, nil)
	if err != nil {
		return 0, fmt.Errorf("container monitor: no exit status for exec'd process %d: %w", e.p, err)
	}
	var x proto.ExecExit
	if typ != proto.FrameExecExit || json.Unmarshal(p, &x) != nil {
		return 0, fmt.Errorf("container monitor: unexpected frame %q instead of the exec's exit", typ)
	}
	if x.Error != "" {
		return 0, errors.New(x.Error)
	}
	return syscall.WaitStatus(x.WaitStatus), nil
}

// waitKilled gives the monitor ExecDrainTimeout to report the killed
// process's exit; past that the connection is closed, and the monitor
// kills and reaps what is left by itself.
func (e *monitorExec) waitKilled(waited <-chan error) {
	t := time.NewTimer(ExecDrainTimeout)
	defer t.Stop()
	select {
	case <-waited:
	case <-t.C:
		e.conn.Close()
		<-waited
	}
}

func (e *monitorExec) close() { e.conn.Close() }

// execInDaemon starts p with libcontainer in the daemon: libcontainer
// re-executes the daemon's binary as the process's init (InitIfRequested).
func (c *Container) execInDaemon(p *specs.Process, sio *execIO, pt *phase.Timer) (startedExec, error) {
	lc, err := c.libcontainer()
	if err != nil {
		return nil, err
	}
	proc, err := libct.NewProcess(p)
	if err != nil {
		return nil, err
	}
	sio.attach(proc)
	unlock, err := proto.LockBundle(c.cfg.Bundle)
	if err != nil {
		return nil, err
	}
	if pt != nil {
		var marks []libct.Mark
		marks, err = libct.TracedRun(lc, proc, libct.ExecSteps)
		for _, mk := range marks {
			pt.MarkAt(mk.Name, mk.At)
		}
	} else {
		err = lc.Run(proc)
	}
	unlock()
	if err != nil {
		reapStrayStages()
		return nil, err
	}
	pt.Mark("libct.return")
	pid, _ := proc.Pid()
	return &daemonExec{proc: proc, p: pid}, nil
}

// daemonExec is a process the daemon started: its child.
type daemonExec struct {
	proc *libcontainer.Process
	p    int
}

func (e *daemonExec) pid() int { return e.p }

func (e *daemonExec) wait() (syscall.WaitStatus, error) {
	ps, err := e.proc.Wait()
	if ps != nil {
		return ps.Sys().(syscall.WaitStatus), nil
	}
	return 0, err
}

// waitKilled: a killed child of ours is reaped at once.
func (e *daemonExec) waitKilled(waited <-chan error) { <-waited }

func (e *daemonExec) close() {}

// ExecDrainTimeout bounds the wait for an exec's output after its process
// exited or was killed. Past it the streams are closed: a process that
// still holds them (started detached, or outside the container's cgroup)
// must not keep the caller, its goroutines and descriptors, and the
// client's streaming slot.
const ExecDrainTimeout = 2 * time.Second

// killExec SIGKILLs every process of the container in session sid, and
// those holding the exec's streams: what the exec started, even in a
// session of its own.
func (c *Container) killExec(sid int, sio *execIO) {
	lc, unlock, err := c.lockedLibcontainer()
	if err != nil {
		return
	}
	defer unlock()
	held := sio.identities()
	libct.KillCgroup(lc, func(pid int) bool {
		if pid == sid {
			return true
		}
		if st, err := proto.ReadProcStat(pid); err == nil && st.Session == sid {
			return true
		}
		return len(held) > 0 && holdsAny(pid, held)
	})
}

// exitCode converts a wait status to a shell-style exit code.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
