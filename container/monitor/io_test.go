package monitor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

func execProcess(c *testContainer, args ...string) *specs.Process {
	p := *c.cfg.Spec.Process
	p.Args = append([]string{"/bin/app"}, args...)
	p.Terminal = false
	return &p
}

// execPaths runs f for an exec started by the container's monitor and for
// one started by the daemon itself (a monitor of an older crisp).
func execPaths(t *testing.T, f func(t *testing.T, c *testContainer)) {
	for _, here := range []bool{false, true} {
		name := map[bool]string{false: "monitor", true: "daemon"}[here]
		t.Run(name, func(t *testing.T) {
			c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
			c.execHere.Store(here)
			f(t, c)
			if got := c.execHere.Load(); got != here {
				t.Errorf("exec in the daemon: %v after the test, want %v", got, here)
			}
		})
	}
}

// execParent is the process that starts and reaps execs.
func execParent(c *testContainer) int {
	if c.execHere.Load() {
		return os.Getpid()
	}
	return c.rec.MonitorPid
}

func TestExec(t *testing.T) { execPaths(t, testExec) }

func testExec(t *testing.T, c *testContainer) {
	var out, errb bytes.Buffer
	code, err := c.Exec(context.Background(), execProcess(c, "print", "hello", "world", "5"), nil, &out, &errb, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != 5 || out.String() != "hello\n" || errb.String() != "world\n" {
		t.Fatalf("code %d stdout %q stderr %q", code, out.String(), errb.String())
	}

	// stdin is delivered and its EOF closes the process's stdin.
	out.Reset()
	code, err = c.Exec(context.Background(), execProcess(c, "cat"), strings.NewReader("a\nb\n"), &out, nil, false, nil)
	if err != nil || code != 0 || out.String() != "echo: a\necho: b\nstdin closed\n" {
		t.Fatalf("cat: code %d err %v out %q", code, err, out.String())
	}

	_, err = c.Exec(context.Background(), execProcess(c, "nosuch-mode"), nil, nil, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := execProcess(c)
	p.Args = []string{"/bin/nosuch"}
	if _, err := c.Exec(context.Background(), p, nil, nil, nil, false, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("exec of a missing binary: %v", err)
	}
}

// Cancelling an exec kills the exec'd process and its children, not the
// container.
func TestExecCancel(t *testing.T) { execPaths(t, testExecCancel) }

func testExecCancel(t *testing.T, c *testContainer) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, execProcess(c, "tree"), nil, &out, nil, false, nil)
		done <- err
	}()
	testutil.WaitFor(t, "exec output", 10*time.Second, func() bool { return strings.Contains(out.String(), "\n") })
	procs := cgroupProcs(t, c.cfg.ID)
	if len(procs) != 3 {
		t.Fatalf("%d processes in cgroup, want init + exec + child", len(procs))
	}
	parents := map[int]int{}
	for _, pid := range procs {
		if st, err := proto.ReadProcStat(pid); err == nil && pid != c.Status().Pid {
			parents[st.PPid]++
		}
	}
	if parents[execParent(c)] != 1 {
		t.Fatalf("no exec'd process is a child of %d: parents %v", execParent(c), parents)
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Exec returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec did not return after cancel")
	}
	// SIGKILLed processes take a moment to leave the cgroup.
	testutil.WaitFor(t, "only the init left in the cgroup", 5*time.Second, func() bool {
		got := cgroupProcs(t, c.cfg.ID)
		return len(got) == 1 && got[0] == c.Status().Pid
	})
	if st := c.Status(); st.State != StateRunning {
		t.Fatalf("container state %v", st.State)
	}
	if z := zombiesOf(map[int]bool{os.Getpid(): true, c.rec.MonitorPid: true}); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

func TestExecTTY(t *testing.T) { execPaths(t, testExecTTY) }

func testExecTTY(t *testing.T, c *testContainer) {
	p := execProcess(c, "tty")
	p.Terminal = true
	var out testutil.SyncBuffer
	stdinR, stdinW := io.Pipe()
	resize := make(chan TermSize, 1)
	resize <- TermSize{Width: 100, Height: 40}
	done := make(chan error, 1)
	var code int
	go func() {
		var err error
		code, err = c.Exec(context.Background(), p, stdinR, &out, nil, true, resize)
		done <- err
	}()
	testutil.WaitFor(t, "isatty", 10*time.Second, func() bool { return strings.Contains(out.String(), "isatty=true") })
	io.WriteString(stdinW, "hello\nquit\n")
	select {
	case err := <-done:
		if err != nil || code != 0 {
			t.Fatalf("exec: code %d err %v", code, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("exec did not finish; output %q", out.String())
	}
	stdinW.Close()
	if !strings.Contains(out.String(), "echo: hello\r\n") {
		t.Fatalf("tty output %q", out.String())
	}
}

// Attach after a daemon restart: live output and stdin through the
// monitor; StdinOnce closes the container's stdin when the client's stdin
// ends.
func TestAttach(t *testing.T) {
	c := run(t, testOpts{args: []string{"cat"}, stdin: true, stdinOnce: true})
	l, err := Load(c.cfg.Bundle, c.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	c.Container = l

	stdinR, stdinW := io.Pipe()
	var out, errb testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- l.Attach(context.Background(), stdinR, &out, &errb, nil) }()
	io.WriteString(stdinW, "hi\n")
	testutil.WaitFor(t, "echo", 10*time.Second, func() bool { return out.String() == "echo: hi\n" })
	// A second, output-only client sees the same stream.
	var out2 testutil.SyncBuffer
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- l.Attach(ctx2, nil, &out2, nil, nil) }()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(stdinW, "there\n")
	testutil.WaitFor(t, "second client output", 10*time.Second, func() bool { return out2.String() == "echo: there\n" })
	cancel2()
	if err := <-done2; err != context.Canceled {
		t.Fatalf("second attach: %v", err)
	}

	stdinW.Close() // StdinOnce: the container sees EOF and exits
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end with the container")
	}
	if got := out.String(); got != "echo: hi\necho: there\nstdin closed\n" {
		t.Fatalf("attach output %q", got)
	}
	if st := waitExit(t, l, 5*time.Second); st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	lines := crilog.Lines(readLog(t, c.cfg.LogPath), crilog.Stdout)
	if strings.Join(lines, ",") != "echo: hi,echo: there,stdin closed" {
		t.Fatalf("log %q", lines)
	}
	if err := l.Attach(context.Background(), nil, &out, nil, nil); err != ErrNotRunning {
		t.Fatalf("attach to exited container: %v", err)
	}
}

// A client that never reads must not block the container.
func TestSlowAttachClient(t *testing.T) {
	c := run(t, testOpts{args: []string{"ticker"}})
	conn, err := c.dialMonitor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := proto.WriteFrame(conn, proto.FrameHello, []byte{0}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(4096) // and never read
	before := len(waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) > 0 }))
	ticks(t, waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) > before+20 }))
}

func TestTTY(t *testing.T) {
	c := run(t, testOpts{args: []string{"tty"}, tty: true, stdin: true})
	waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) > 0 })
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var out testutil.SyncBuffer
	resize := make(chan TermSize, 1)
	resize <- TermSize{Width: 120, Height: 50}
	done := make(chan error, 1)
	go func() { done <- c.Attach(context.Background(), stdinR, &out, nil, resize) }()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(stdinW, "hello\nquit\n")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("attach did not end; output %q", out.String())
	}
	if !strings.Contains(out.String(), "echo: hello") {
		t.Fatalf("attach output %q", out.String())
	}
	st := waitExit(t, c.Container, 5*time.Second)
	if st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	// The terminal stream is logged as stdout, CRLF line ends stripped.
	es := readLog(t, c.cfg.LogPath)
	lines := crilog.Lines(es, crilog.Stdout)
	if len(lines) == 0 || lines[0] != "isatty=true" || !contains(lines, "echo: hello") {
		t.Fatalf("log %q", lines)
	}
	if len(crilog.Lines(es, crilog.Stderr)) != 0 {
		t.Fatal("tty output logged as stderr")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestReopenLog(t *testing.T) {
	c := run(t, testOpts{args: []string{"ticker"}})
	waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) >= 5 })
	rotated := c.cfg.LogPath + ".1"
	if err := os.Rename(c.cfg.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := c.ReopenLog(); err != nil {
		t.Fatal(err)
	}
	newLines := waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) >= 5 })
	old := crilog.Lines(readLog(t, rotated), crilog.Stdout)
	ticks(t, append(old, newLines...)) // no line lost or duplicated
	if err := c.Stop(context.Background(), 9, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.ReopenLog(); err != ErrNotRunning {
		t.Fatalf("ReopenLog on exited container: %v", err)
	}
}

func TestStatsAndUpdate(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true, memLimit: 128 << 20})
	// Start returns once the init may exec; until it has, the init is
	// libcontainer's, whose Go runtime has several threads, and the task
	// count below would change under the test.
	awaitExec(c.Status().Pid, time.Now().Add(10*time.Second), c.done)
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids == 0 || s.CPUUsageNanos == 0 || s.MemoryUsageBytes == 0 || s.MemoryWorkingSetBytes > s.MemoryUsageBytes {
		t.Fatalf("stats %+v", s)
	}
	// Usage, read after Stats, agrees on what both read: its counters
	// only grow, and so does the task count, as the container's program
	// (the Go test app) may still be starting its runtime's threads.
	u, err := c.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Pids < s.Pids || u.CPUUsageNanos < s.CPUUsageNanos || u.PageFaults < s.PageFaults ||
		u.MemoryUsageBytes == 0 || u.MemoryWorkingSetBytes > u.MemoryUsageBytes || u.MemoryRSSBytes == 0 ||
		(s.Swap == nil) != (u.Swap == nil) || (s.Pressure == nil) != (u.Pressure == nil) {
		t.Fatalf("usage %+v\nafter stats %+v", u, s)
	}
	if u.Processes != nil || u.IOServiceBytes != nil {
		t.Errorf("usage read more than it reports: processes %v, io %v", u.Processes, u.IOServiceBytes)
	}
	limit := int64(64 << 20)
	if err := c.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/sys/fs/cgroup/memory/" + cgroupParent + "/" + c.cfg.ID + "/memory.limit_in_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != "67108864" {
		t.Fatalf("memory limit %s", b)
	}
	// Exec still works after an update (the update must not leave the
	// cached view with device rules skipped).
	if code, err := c.Exec(context.Background(), execProcess(c, "exit", "0"), nil, nil, nil, false, nil); err != nil || code != 0 {
		t.Fatalf("exec after update: %d %v", code, err)
	}
}

// readSmaps returns the smaps_rollup fields of pid, in kB.
func readSmaps(t testing.TB, pid int) map[string]int {
	t.Helper()
	f, err := os.Open("/proc/" + itoa(pid) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) == 3 && fs[2] == "kB" {
			m[strings.TrimSuffix(fs[0], ":")] = atoi(fs[1])
		}
	}
	return m
}

// An exec whose descendant detaches into a session of its own and keeps
// the output open does not hold its caller (and with it a streaming slot)
// forever: after the exec'd process exits, output is drained for at most
// ExecDrainTimeout; when the exec is cancelled or times out, the holder
// is killed with it. Many such execs leave no goroutine or descriptor
// behind, and exec still works.
func TestExecDetachedHolderOfOutput(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
	execDetach := func(ctx context.Context, mode string, tty bool) (int, string, error) {
		t.Helper()
		p := execProcess(c, "detach", mode)
		p.Terminal = tty
		var out testutil.SyncBuffer
		type result struct {
			code int
			err  error
		}
		done := make(chan result, 1)
		go func() {
			code, err := c.Exec(ctx, p, nil, &out, nil, tty, nil)
			done <- result{code, err}
		}()
		select {
		case r := <-done:
			return r.code, out.String(), r.err
		case <-time.After(2 * time.Minute):
			t.Fatalf("exec 'detach %s' (tty %v) did not return; output %q", mode, tty, out.String())
			return 0, "", nil
		}
	}
	if code, err := c.Exec(context.Background(), execProcess(c, "exit", "0"), nil, io.Discard, nil, false, nil); err != nil || code != 0 {
		t.Fatalf("warm-up exec: %d, %v", code, err)
	}
	goroutines, fds := runtime.NumGoroutine(), testutil.OpenFDs(t)

	for i := range 3 {
		for _, tty := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, out, err := execDetach(ctx, "hang", tty)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%d: timed-out exec (tty %v) returned %v; output %q", i, tty, err, out)
			}
			testutil.WaitFor(t, "the exec and its detached holder to be killed", 15*time.Second, func() bool {
				got := cgroupProcs(t, c.cfg.ID)
				return len(got) == 1 && got[0] == c.Status().Pid
			})

			code, out, err := execDetach(context.Background(), "exit", tty)
			if err != nil || code != 0 || !strings.Contains(out, "detached") {
				t.Fatalf("%d: exec that left a holder (tty %v): code %d, err %v, output %q", i, tty, code, err, out)
			}
			// The holder was started on purpose and outlives the exec, as
			// with containerd; only the streams are let go.
			for _, pid := range cgroupProcs(t, c.cfg.ID) {
				if pid != c.Status().Pid {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	testutil.WaitFor(t, "goroutines and descriptors back to where they were", 15*time.Second, func() bool {
		return runtime.NumGoroutine() <= goroutines+2 && testutil.OpenFDs(t) <= fds
	})
	if code, err := c.Exec(context.Background(), execProcess(c, "exit", "3"), nil, io.Discard, nil, false, nil); err != nil || code != 3 {
		t.Fatalf("exec after the holders: %d, %v", code, err)
	}
}
