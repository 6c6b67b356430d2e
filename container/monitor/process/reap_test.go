package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// exited starts sh -c 'exit code' and waits until it is a zombie, without
// reaping it.
func exited(t *testing.T, code string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", "exit "+code)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// The reaper collects the init and orphans, but leaves an exec'd process
// to its waiter (which gets its true status) and goes on once it has it.
func TestReapLeavesExecsToTheirWaiters(t *testing.T) {
	m := &monitor{}
	execd := exited(t, "3") // first: the one reap looks at first
	orphan := exited(t, "4")
	init := exited(t, "7")
	m.initPid = init.Process.Pid
	e := m.execs.add(execd.Process.Pid)

	type result struct {
		ws     unix.WaitStatus
		exited bool
		err    error
	}
	reaped := make(chan result, 1)
	go func() {
		ws, ok, err := m.reap()
		reaped <- result{ws, ok, err}
	}()
	select {
	case r := <-reaped:
		t.Fatalf("reap returned %+v before the exec's waiter had its process", r)
	case <-time.After(100 * time.Millisecond):
	}
	// The waiter, as waitExec does: libcontainer's wait by pidfd.
	err := execd.Wait()
	m.execs.done(e)
	if code := execd.ProcessState.ExitCode(); err == nil || code != 3 {
		t.Fatalf("exec'd process: exit %d, %v (want 3)", code, err)
	}
	r := <-reaped
	// ECHILD: there are no children left.
	if (r.err != nil && r.err != unix.ECHILD) || !r.exited || r.ws.ExitStatus() != 7 {
		t.Fatalf("reap: %+v, want the init's exit 7", r)
	}
	// The orphan was collected too: nothing is left to wait for.
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(orphan.Process.Pid, &ws, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Fatalf("orphan not reaped: wait4 = %d, %v", pid, err)
	}
	if _, ok, err := m.reap(); ok || err != unix.ECHILD {
		t.Fatalf("reap with no children: %v %v", ok, err)
	}
}

// A start fails for a refused fork in Go (EAGAIN, wrapped by libcontainer)
// or in nsexec (only its message); nothing else is taken for one.
func TestForkRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("unable to start container process: error starting setns process: %w", &os.PathError{Op: "fork/exec", Path: "/proc/self/fd/7", Err: unix.EAGAIN}), true},
		{errors.New("unable to start container process: error executing setns process: exit status 1; runc init error(s): nsexec-0[12]: unable to spawn stage-1: Resource temporarily unavailable"), true},
		{errors.New(`exec: "nosuch": executable file not found in $PATH`), false},
		{fmt.Errorf("start: %w", unix.ENOMEM), false},
	} {
		if got := forkRefused(c.err); got != c.want {
			t.Errorf("forkRefused(%v) = %v", c.err, got)
		}
	}
}
