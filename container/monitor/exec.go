package monitor

import (
	"context"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"

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
// re-executing the calling binary: the daemon. main must call it first
// thing. It does not return in that case.
func InitIfRequested() {
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
func (c *Container) Exec(ctx context.Context, p *specs.Process, stdin io.Reader, stdout, stderr io.Writer, tty bool, resize <-chan TermSize) (int, error) {
	if !c.running() {
		return -1, ErrNotRunning
	}
	lc, err := c.libcontainer()
	if err != nil {
		return -1, err
	}
	proc, err := libct.NewProcess(p)
	if err != nil {
		return -1, err
	}
	sio := &execIO{}
	defer sio.closeAll()
	if err := sio.setup(proc, stdin, stdout, stderr, tty); err != nil {
		return -1, err
	}
	pt := phase.From(ctx)
	pt.Mark("setup")
	unlock, err := proto.LockBundle(c.cfg.Bundle)
	if err != nil {
		return -1, err
	}
	if pt != nil {
		err = tracedRun(pt, lc, proc)
	} else {
		err = lc.Run(proc)
	}
	unlock()
	if err != nil {
		return -1, err
	}
	pt.Mark("libct.return")
	pid, _ := proc.Pid()
	if err := sio.started(stdin, stdout, resize); err != nil {
		c.killExec(lc, pid, sio)
		proc.Wait()
		return -1, err
	}

	waited := make(chan error, 1)
	var code int
	go func() {
		ps, err := proc.Wait()
		if ps != nil {
			code = exitCode(ps.Sys().(syscall.WaitStatus))
			err = nil
		}
		waited <- err
	}()
	// The exec'd process is a session leader (libcontainer's nsenter calls
	// setsid), so its descendants can be found by session id even after
	// it exited and they were re-parented.
	select {
	case err = <-waited:
	case <-ctx.Done():
		c.killExec(lc, pid, sio)
		<-waited
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
		c.killExec(lc, pid, sio)
		sio.drain(ExecDrainTimeout)
		return code, ctx.Err()
	}
	return code, nil
}

// execSteps are the steps of libcontainer's Run of an exec'd process as
// its parent side (the daemon) sees them.
var execSteps = []libct.Step{
	{Prefix: "runc exeseal: ", Name: "libct.seal-exe"},
	{Prefix: "reading sync", Name: "libct.exec-init+nsexec+cgroup-join"},
	{Prefix: "read sync type:procReady", Name: "libct.init-setup"},
	{Prefix: "writing sync type:procRun", Name: "libct.rlimits"},
	{Prefix: "sync pipe closed", Name: "libct.seccomp+caps"},
}

// tracedRun is lc.Run with its steps marked on pt, unless another exec is
// being traced at the same time (libcontainer logs through one logger).
func tracedRun(pt *phase.Timer, lc *libcontainer.Container, proc *libcontainer.Process) error {
	stop, ok := libct.Trace(execSteps)
	if !ok {
		return lc.Run(proc)
	}
	err := lc.Run(proc)
	for _, mk := range stop() {
		pt.MarkAt(mk.Name, mk.At)
	}
	return err
}

// ExecDrainTimeout bounds the wait for an exec's output after its process
// exited or was killed. Past it the streams are closed: a process that
// still holds them (started detached, or outside the container's cgroup)
// must not keep the caller, its goroutines and descriptors, and the
// client's streaming slot.
const ExecDrainTimeout = 2 * time.Second

// killExec SIGKILLs every process of the container in session sid, and
// those holding the exec's streams: what the exec started, even in a
// session of its own.
func (c *Container) killExec(lc *libcontainer.Container, sid int, sio *execIO) {
	unlock, err := proto.LockBundle(c.cfg.Bundle)
	if err != nil {
		return
	}
	defer unlock()
	held := sio.identities()
	signalCgroup(lc, func(pid int) bool {
		if pid == sid {
			return true
		}
		if st, err := proto.ReadProcStat(pid); err == nil && st.Session == sid {
			return true
		}
		return len(held) > 0 && holdsAny(pid, held)
	})
}

// execIO wires an exec'd process's stdio to the caller's streams through
// pipes (or a pty) that we own, so that waiting for the process never
// depends on the caller's readers, unlike exec.Cmd's copying.
type execIO struct {
	theirs  []*os.File // given to the process, closed after start
	ours    []*os.File
	console *os.File
	sock    *os.File // console socket, parent end
	wg      sync.WaitGroup
	stdinW  *os.File
	outR    []*os.File
	outW    []io.Writer

	doneOnce sync.Once
	done     chan struct{}
}

func (e *execIO) setup(p *libcontainer.Process, stdin io.Reader, stdout, stderr io.Writer, tty bool) error {
	if tty {
		parent, child, err := libct.NewConsoleSocketPair()
		if err != nil {
			return err
		}
		e.sock = parent
		e.ours = append(e.ours, parent)
		e.theirs = append(e.theirs, child)
		p.ConsoleSocket = child
		return nil
	}
	if stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		e.theirs, e.ours = append(e.theirs, r), append(e.ours, w)
		e.stdinW = w
		p.Stdin = r
	}
	for i, w := range []io.Writer{stdout, stderr} {
		if w == nil {
			continue
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		e.theirs, e.ours = append(e.theirs, pw), append(e.ours, r)
		e.outR, e.outW = append(e.outR, r), append(e.outW, w)
		if i == 0 {
			p.Stdout = pw
		} else {
			p.Stderr = pw
		}
	}
	return nil
}

// started closes the process's ends and starts copying.
func (e *execIO) started(stdin io.Reader, stdout io.Writer, resize <-chan TermSize) error {
	for _, f := range e.theirs {
		f.Close()
	}
	e.theirs = nil
	if e.sock != nil {
		con, err := libct.RecvConsole(e.sock)
		if err != nil {
			return err
		}
		e.console = con
		e.ours = append(e.ours, con)
		e.stdinW = con
		if stdout != nil {
			e.outR, e.outW = []*os.File{con}, []io.Writer{stdout}
		}
		if resize != nil {
			go func() {
				for s := range resize {
					if libct.SetWinsize(con, s.Width, s.Height) != nil {
						return
					}
				}
			}()
		}
	}
	for i := range e.outR {
		e.wg.Add(1)
		go func(r *os.File, w io.Writer) {
			defer e.wg.Done()
			// A pty master reports EIO once the last slave is closed;
			// that is the end of the stream, not an error.
			io.Copy(w, r)
		}(e.outR[i], e.outW[i])
	}
	if stdin != nil && e.stdinW != nil {
		// This goroutine may stay blocked on the caller's reader after
		// the process exited; it ends when that reader returns.
		w := e.stdinW
		go func() {
			io.Copy(w, stdin)
			if e.console == nil {
				w.Close()
			}
		}()
	}
	return nil
}

func (e *execIO) outputDone() <-chan struct{} {
	e.doneOnce.Do(func() {
		e.done = make(chan struct{})
		go func() { e.wg.Wait(); close(e.done) }()
	})
	return e.done
}

// drain waits up to d for the output to end, then closes our ends of the
// streams and waits for the copiers, which then stop at once: the caller's
// writers must not be written after Exec returned.
func (e *execIO) drain(d time.Duration) {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-e.outputDone():
			return
		case <-t.C:
		}
	}
	for _, f := range e.outR {
		f.Close()
	}
	<-e.outputDone()
}

func (e *execIO) closeAll() {
	for _, f := range e.theirs {
		f.Close()
	}
	// Closing the stdin pipe also ends a stdin copier still blocked on
	// the caller's reader at its next write.
	for _, f := range e.ours {
		f.Close()
	}
}

// exitCode converts a wait status to a shell-style exit code.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
