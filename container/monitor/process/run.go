package process

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// drainTimeout bounds how long the monitor waits, after the init exited,
// for the output streams to reach EOF. In a private pid namespace every
// process dies with the init and EOF comes at once; with a shared pid
// namespace a surviving process may keep the stream open forever.
const drainTimeout = 2 * time.Second

// run serves the running container until its init exits, then records the
// exit and returns the monitor's exit code.
func (m *monitor) run() int {
	m.oom.watch(m.logf)
	var wg sync.WaitGroup
	for _, o := range m.outputs {
		wg.Add(1)
		go m.pump(o, &wg)
	}
	go m.serve()

	ws := m.waitInit()
	finished := time.Now().UTC()
	close(m.initExited)

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		m.logf("output still open %v after the container exited; closing it", drainTimeout)
		for _, o := range m.outputs {
			o.f.SetReadDeadline(time.Now())
		}
		<-drained
	}

	e := exitFromWaitStatus(ws.Exited(), ws.ExitStatus(), ws.Signaled(), int(ws.Signal()))
	e.FinishedAt = finished
	setReason(&e, m.oom.killedBy(ws.Signaled() && ws.Signal() == unix.SIGKILL))
	if m.oom.byParent {
		m.logf("OOM kill counted by the parent cgroup: %s was gone before its own count was read", m.oom.file)
	}
	m.recordExit(&e)
	// Clients learn about the exit by the end of their stream, after
	// the last output was delivered.
	m.ln.Close()
	m.controlMu.Lock()
	os.Remove(m.cfg.SocketPath())
	m.killExecs()
	m.waitExecConns(drainTimeout)
	m.hub.close(time.Second)
	for _, o := range m.outputs {
		o.f.Close()
	}
	m.logw.Close()
	m.reapAll()
	return 0
}

// waitInit reaps children until the container init is among them and
// returns its wait status. As a subreaper the monitor also collects any
// orphan re-parented to it.
func (m *monitor) waitInit() unix.WaitStatus {
	for {
		ws, exited, err := m.reap()
		switch {
		case exited:
			return ws
		case errors.Is(err, unix.ECHILD):
			// Cannot happen while the init lives; do not spin if it does.
			m.logf("container init %d is not our child", m.initPid)
			return ws
		case err != nil:
			m.logf("wait: %v", err)
		}
		<-m.sigchld
	}
}

// reapAll collects remaining zombies without blocking.
func (m *monitor) reapAll() { m.reap() }

// reap collects the exited children, without blocking, and reports the
// init's wait status if it was among them. An exec'd process is left to
// its waiter (libcontainer's Process.Wait reaps it by pidfd): it is only
// looked at (WNOWAIT), and reaping goes on once its waiter has it.
func (m *monitor) reap() (initStatus unix.WaitStatus, initExited bool, err error) {
	m.reapMu.Lock()
	defer m.reapMu.Unlock()
	for {
		var si unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &si, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return initStatus, initExited, err
		}
		pid := siginfoPid(&si)
		if pid == 0 {
			return initStatus, initExited, nil // none has exited
		}
		if e := m.execs.get(pid); e != nil {
			<-e.reaped
			continue
		}
		var ws unix.WaitStatus
		for {
			if _, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != unix.EINTR {
				break
			}
		}
		if pid == m.initPid && err == nil {
			initStatus, initExited = ws, true
		}
	}
}

// siginfoPid is si_pid of a child's siginfo: it follows si_signo, si_errno,
// si_code and, on 64-bit systems, the padding that aligns the union.
func siginfoPid(si *unix.Siginfo) int {
	off := uintptr(3 * 4)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 4 * 4
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(si), off)))
}

// exitFromWaitStatus converts the init's wait status the way shells and
// the kubelet expect: 128+n for death by signal n.
func exitFromWaitStatus(exited bool, code int, signaled bool, sig int) proto.ExitRecord {
	var e proto.ExitRecord
	switch {
	case exited:
		e.ExitCode = code
	case signaled:
		e.Signal = sig
		e.ExitCode = 128 + sig
	default:
		e.ExitCode = 255
		e.Message = "unexpected wait status"
	}
	return e
}

func setReason(e *proto.ExitRecord, oomKilled bool) {
	e.OOMKilled = oomKilled
	switch {
	case oomKilled:
		e.Reason = proto.ReasonOOMKilled
	case e.ExitCode == 0:
		e.Reason = proto.ReasonCompleted
	default:
		e.Reason = proto.ReasonError
	}
	if e.Message == "" && e.Signal != 0 {
		e.Message = fmt.Sprintf("killed by signal %d", e.Signal)
	}
}
