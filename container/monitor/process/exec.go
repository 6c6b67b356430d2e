package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/cinit"
	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// Execs (proto.CmdExec) run here rather than in the daemon: the monitor
// starts them through its C init (package cinit), prepared once per
// container, and where that cannot, through libcontainer's, which
// re-executes its caller's binary: crisp-monitor starts in a fraction of the
// time the daemon's binary needs (package inits of gRPC, protobuf, metrics).

// execs are the exec'd processes this monitor started and has not reaped
// yet. Each is reaped by its own waiter (libcontainer's Process.Wait, by
// pidfd); the reaper, which collects the init and orphans, leaves them
// alone (see reap).
type execs struct {
	mu    sync.Mutex
	procs map[int]*execProc
	wg    sync.WaitGroup // started execs whose exit is not reported yet
	gen   int            // execs ended, for trim
}

// trimDelay is how long the monitor waits, after the last exec ended, to
// give the memory the execs used back to the system.
const trimDelay = time.Second

// trim returns the memory the execs used to the system once none has run
// for trimDelay. libcontainer's start of a process builds its whole config
// (as JSON for the init) and more: the Go heap grows to a few MiB, which
// the runtime would keep for the next exec, in every monitor that ever
// served one (an exec probe's container).
func (x *execs) trim() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gen++
	gen := x.gen
	time.AfterFunc(trimDelay, func() {
		x.mu.Lock()
		idle := x.gen == gen && len(x.procs) == 0
		x.mu.Unlock()
		if idle {
			debug.FreeOSMemory()
		}
	})
}

type execProc struct {
	pid    int
	reaped chan struct{} // closed once its waiter has reaped it
}

func (x *execs) add(pid int) *execProc {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.procs == nil {
		x.procs = make(map[int]*execProc)
	}
	e := &execProc{pid: pid, reaped: make(chan struct{})}
	x.procs[pid] = e
	return e
}

func (x *execs) get(pid int) *execProc {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.procs[pid]
}

func (x *execs) done(e *execProc) {
	x.mu.Lock()
	delete(x.procs, e.pid)
	x.mu.Unlock()
	close(e.reaped)
}

func (x *execs) pids() []int {
	x.mu.Lock()
	defer x.mu.Unlock()
	pids := make([]int, 0, len(x.procs))
	for pid := range x.procs {
		pids = append(pids, pid)
	}
	return pids
}

// execRequestTimeout bounds the wait for the request after the command.
const execRequestTimeout = 10 * time.Second

// serveExec runs one exec for the daemon on conn (see proto.CmdExec).
func (m *monitor) serveExec(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(execRequestTimeout))
	typ, p, files, err := proto.ReadFrameFiles(conn)
	if err != nil {
		return // the daemon gave up, or is gone: nothing was started
	}
	conn.SetReadDeadline(time.Time{})
	proc, started, err := m.startExec(typ, p, files)
	for _, f := range files {
		f.Close() // the process has its copies: EOF must reach the daemon
	}
	if err != nil {
		proto.WriteFrame(conn, proto.FrameReply, proto.ReplyPayload(err, ""))
		return
	}
	defer m.execs.wg.Done() // added by startExec
	b, _ := json.Marshal(started)
	proto.WriteFrame(conn, proto.FrameReply, proto.ReplyPayload(nil, string(b)))

	exited := make(chan proto.ExecExit, 1)
	go func() { exited <- m.waitExec(proc, started.Pid) }()
	// The daemon sends nothing more: a read returns when it closes the
	// connection (it died, or gave up on the exec).
	gone := make(chan struct{})
	go func() {
		var b [1]byte
		conn.Read(b[:])
		close(gone)
	}()
	var res proto.ExecExit
	select {
	case res = <-exited:
	case <-gone:
		// Nobody is left to wait for the process or kill it: do both.
		m.killExec(started.Pid)
		<-exited
		return
	}
	b, _ = json.Marshal(&res)
	proto.WriteFrame(conn, proto.FrameExecExit, b)
	m.execs.trim()
}

// startExec starts the requested process in the container.
func (m *monitor) startExec(typ byte, p []byte, files []*os.File) (*libcontainer.Process, *proto.ExecStarted, error) {
	if typ != proto.FrameExecRequest {
		return nil, nil, errors.New("exec: expected the exec request")
	}
	var req proto.ExecRequest
	if err := json.Unmarshal(p, &req); err != nil {
		return nil, nil, fmt.Errorf("exec: bad request: %w", err)
	}
	if req.Process == nil {
		return nil, nil, errors.New("exec: request without a process")
	}
	if len(files) != req.Files() {
		return nil, nil, fmt.Errorf("exec: %d fds came with the request, want %d", len(files), req.Files())
	}
	proc, err := libct.NewProcess(req.Process)
	if err != nil {
		return nil, nil, err
	}
	var stdio cinit.Stdio
	if req.Tty {
		proc.ConsoleSocket = files[0]
	} else {
		// Only streams that exist are set: a nil *os.File in an
		// io.Writer is not a nil Writer.
		next := files
		take := func() *os.File { f := next[0]; next = next[1:]; return f }
		if req.Stdin {
			stdio.Stdin = take()
			proc.Stdin = stdio.Stdin
		}
		if req.Stdout {
			stdio.Stdout = take()
			proc.Stdout = stdio.Stdout
		}
		if req.Stderr {
			stdio.Stderr = take()
			proc.Stderr = stdio.Stderr
		}
	}
	// The exit path waits for starts in flight so that their processes
	// are known when it kills the execs; one that comes after the init's
	// exit is refused (before the exit path holds controlMu for good).
	if m.initDead() {
		return nil, nil, errInitDead
	}
	m.controlMu.RLock()
	defer m.controlMu.RUnlock()
	if m.initDead() {
		return nil, nil, errInitDead
	}
	var marks []proto.Mark
	mark := func(name string, at time.Time) {
		if req.Phases {
			marks = append(marks, proto.Mark{Name: name, At: at.UnixNano()})
		}
	}
	unlock, err := proto.LockBundle(m.cfg.Bundle)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	lc, err := m.libcontainer()
	if err != nil {
		return nil, nil, err
	}
	mark("monitor.request", time.Now())
	// libcontainer waits for its helper processes by pid, and the C
	// init's caller reaps its own: the reaper must not collect them
	// meanwhile, nor the exec'd process before it is registered.
	m.reapMu.RLock()
	var pid int
	started := false
	if !req.GoInit {
		if t := m.cinitTarget(lc); t != nil {
			mark("cinit.prepare", time.Now())
			pid, err = t.Start(proc, stdio, func(step string) { mark(step, time.Now()) })
			started = !cinit.IsUnsupported(err)
			if started {
				proc = nil // reaped by waitExec itself
			}
		}
	}
	if !started {
		if req.Phases {
			var steps []libct.Mark
			steps, err = libct.TracedRun(lc, proc, libct.ExecSteps)
			for _, s := range steps {
				mark(s.Name, s.At)
			}
		} else {
			err = lc.Run(proc)
		}
		if err == nil {
			pid, err = proc.Pid()
		}
	}
	if err == nil {
		m.execs.add(pid)
		// Under controlMu: the exit path, once it holds it, waits for
		// exactly the execs that started.
		m.execs.wg.Add(1)
	}
	m.reapMu.RUnlock()
	if err != nil {
		var refused *cinit.Refused
		if !errors.As(err, &refused) && forkRefused(err) {
			return nil, nil, proto.ForkRefused(err)
		}
		return nil, nil, err
	}
	if proc != nil {
		mark("libct.return", time.Now())
	}
	return proc, &proto.ExecStarted{Pid: pid, Marks: marks}, nil
}

// forkRefused reports a start that failed because a fork was refused:
// EAGAIN from Go's fork of the init, or in the message of nsexec's clone
// of its stages (C's strerror), the only forks, both in the monitor's
// cgroup.
func forkRefused(err error) bool {
	return errors.Is(err, unix.EAGAIN) || strings.Contains(strings.ToLower(err.Error()), unix.EAGAIN.Error())
}

func (m *monitor) initDead() bool {
	select {
	case <-m.initExited:
		return true
	default:
		return false
	}
}

// waitExec reaps the exec'd process and returns how it ended.
func (m *monitor) waitExec(proc *libcontainer.Process, pid int) proto.ExecExit {
	e := m.execs.get(pid)
	defer m.execs.done(e)
	var err error
	if proc != nil {
		var ps *os.ProcessState
		ps, err = proc.Wait()
		if ps != nil {
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
				return proto.ExecExit{WaitStatus: uint32(ws)}
			}
		}
	}
	// Started by the C init, or not reaped by libcontainer's wait: do it
	// here, or the reaper would wait for this waiter forever.
	var ws unix.WaitStatus
	for {
		_, werr := unix.Wait4(pid, &ws, 0, nil)
		if werr == nil {
			return proto.ExecExit{WaitStatus: uint32(ws)}
		}
		if werr != unix.EINTR {
			return proto.ExecExit{Error: fmt.Sprintf("wait for exec'd process %d: %v", pid, errors.Join(err, werr))}
		}
	}
}

// killExec SIGKILLs the exec'd process pid and what it started in its
// session (it is a session leader: libcontainer's nsexec calls setsid).
func (m *monitor) killExec(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	unlock, err := proto.LockBundle(m.cfg.Bundle)
	if err != nil {
		return
	}
	defer unlock()
	lc, err := m.libcontainer()
	if err != nil {
		return
	}
	if err := libct.KillCgroup(lc, func(p int) bool {
		st, err := proto.ReadProcStat(p)
		return err == nil && st.Session == pid
	}); err != nil {
		m.logf("kill exec session %d: %v", pid, err)
	}
}

// killExecs ends every exec when the container's init has exited: in a
// private pid namespace the kernel did already; in a shared one they
// would outlive the container, as containerd's shim does not let them.
func (m *monitor) killExecs() {
	for _, pid := range m.execs.pids() {
		m.killExec(pid)
	}
}

// waitExecConns waits, at most d, for the exec connections to be served
// to the end, so that their exit statuses reach the daemon.
func (m *monitor) waitExecConns(d time.Duration) {
	done := make(chan struct{})
	go func() { m.execs.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		m.logf("exec connections still open %v after the container exited", d)
	}
}

// libcontainer returns the container as libcontainer sees it, loaded once:
// loading parses the whole state. Call with the bundle lock held.
func (m *monitor) libcontainer() (*libcontainer.Container, error) {
	m.lcMu.Lock()
	defer m.lcMu.Unlock()
	if m.lc == nil {
		lc, err := libcontainer.Load(m.cfg.LibcontainerRoot(), m.cfg.ID)
		if err != nil {
			return nil, err
		}
		m.lc = lc
	}
	return m.lc, nil
}
