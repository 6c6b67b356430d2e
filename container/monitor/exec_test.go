package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

func monitorFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// onlyInit waits until the container's cgroup holds its init alone.
func onlyInit(t testing.TB, c *testContainer) {
	t.Helper()
	testutil.WaitFor(t, "only the init left in the cgroup", 15*time.Second, func() bool {
		got := cgroupProcs(t, c.cfg.ID)
		return len(got) == 1 && got[0] == c.Status().Pid
	})
}

// A daemon that dies (or drops the connection) while its exec runs leaves
// nothing in the monitor: the process is killed and reaped, the fds it was
// given and the connection are closed, and the monitor goes on serving.
func TestExecConnectionLost(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
	mon := c.rec.MonitorPid
	// A first exec loads libcontainer in the monitor: count after it.
	if code, err := c.Exec(context.Background(), execProcess(c, "exit", "0"), nil, io.Discard, nil, false, nil); err != nil || code != 0 {
		t.Fatalf("first exec: %d, %v", code, err)
	}
	fds := monitorFDs(t, mon)

	for _, tty := range []bool{false, true} {
		conn, err := c.dialMonitor(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sio := &execIO{}
		if err := sio.setup(nil, io.Discard, io.Discard, tty); err != nil {
			t.Fatal(err)
		}
		p := execProcess(c, "tree")
		p.Terminal = tty
		req := proto.ExecRequest{Process: p, Tty: tty}
		files := sio.request(&req)
		b, _ := json.Marshal(&req)
		if err := proto.WriteFrame(conn, proto.FrameControl, []byte(proto.CmdExec)); err != nil {
			t.Fatal(err)
		}
		if err := proto.WriteFrameFiles(conn, proto.FrameExecRequest, b, files); err != nil {
			t.Fatal(err)
		}
		typ, reply, err := proto.ReadFrame(conn, nil)
		if err != nil {
			t.Fatal(err)
		}
		text, err := proto.ParseReply(typ, reply)
		if err != nil {
			t.Fatal(err)
		}
		var st proto.ExecStarted
		if err := json.Unmarshal([]byte(text), &st); err != nil {
			t.Fatal(err)
		}
		if ps, err := proto.ReadProcStat(st.Pid); err != nil || ps.PPid != mon {
			t.Fatalf("exec'd process %d: %+v, %v; want a child of the monitor %d", st.Pid, ps, err, mon)
		}
		testutil.WaitFor(t, "the exec's child", 10*time.Second, func() bool { return len(cgroupProcs(t, c.cfg.ID)) == 3 })
		conn.Close() // as the kernel does for a daemon killed with -9
		sio.closeAll()

		onlyInit(t, c)
		testutil.WaitFor(t, "the monitor's fds back to where they were", 10*time.Second, func() bool {
			return monitorFDs(t, mon) <= fds
		})
		if z := zombiesOf(map[int]bool{mon: true}); len(z) > 0 {
			t.Fatalf("tty %v: zombies of the monitor: %v", tty, z)
		}
	}
	if code, err := c.Exec(context.Background(), execProcess(c, "exit", "3"), nil, io.Discard, nil, false, nil); err != nil || code != 3 {
		t.Fatalf("exec after a lost connection: %d, %v", code, err)
	}
	if st := c.Status(); st.State != StateRunning {
		t.Fatalf("container %v after the execs", st.State)
	}
}

// Execs started at the same time each get their own exit status: the
// monitor's reaper (it collects the init and orphans) takes none of them.
func TestExecsAtOnce(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				want := (g*10 + i) % 7
				code, err := c.Exec(context.Background(), execProcess(c, "exit", strconv.Itoa(want)), nil, io.Discard, nil, false, nil)
				if err != nil || code != want {
					errs <- fmt.Errorf("exec %d/%d: code %d (want %d), %v", g, i, code, want, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.execHere.Load() {
		t.Error("the monitor did not run the execs")
	}
	if z := zombiesOf(map[int]bool{c.rec.MonitorPid: true}); len(z) > 0 {
		t.Fatalf("zombies of the monitor: %v", z)
	}
}

// An exec running when the container exits ends with it, and the monitor
// still records the exit and goes away.
func TestExecEndsWithContainer(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), execProcess(c, "sleep"), nil, io.Discard, nil, false, nil)
		done <- err
	}()
	testutil.WaitFor(t, "the exec'd process", 10*time.Second, func() bool { return len(cgroupProcs(t, c.cfg.ID)) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("exec did not return after the container exited")
	}
	if st := waitExit(t, c.Container, 15*time.Second); st.ExitCode != 137 {
		t.Fatalf("container exit %d", st.ExitCode)
	}
}

// The monitor's memory after many execs: libcontainer's exec path costs it
// once (Go heap, runtime metadata), not per exec, and the monitor gives back
// what it can once the execs are idle. Anonymous memory is compared: the
// monitor's freshly built binary is dirty in the page cache, which smaps
// counts as private dirty. CRISP_TEST_EXECS sets how many (default 200).
func TestExecMonitorMemory(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
	n := 200
	if v, err := strconv.Atoi(os.Getenv("CRISP_TEST_EXECS")); err == nil && v > 100 {
		n = v
	}
	mon := c.rec.MonitorPid
	exec := func() {
		t.Helper()
		if code, err := c.Exec(context.Background(), execProcess(c, "print", "out", "err", "0"), nil, io.Discard, io.Discard, false, nil); err != nil || code != 0 {
			t.Fatalf("exec: %d, %v", code, err)
		}
	}
	// After the monitor's trim (trimDelay, 1 s, after the last exec).
	settled := func(what string) map[string]int {
		t.Helper()
		time.Sleep(1500 * time.Millisecond)
		m := readSmaps(t, mon)
		t.Logf("%-22s Rss %5d kB, Pss %5d kB, Anonymous %5d kB", what, m["Rss"], m["Pss"], m["Anonymous"])
		return m
	}
	settled("before any exec")
	exec()
	settled("after the first exec")
	fds := monitorFDs(t, mon)
	for range 99 {
		exec()
	}
	hundred := settled("after 100 execs")
	for range n - 100 {
		exec()
	}
	after := settled("after " + strconv.Itoa(n) + " execs")
	// A leak of 5 kB per exec shows over the default 100 more; the Go
	// heap's own breathing does not reach this.
	if grow := after["Anonymous"] - hundred["Anonymous"]; grow > 512 {
		t.Errorf("the monitor's anonymous memory grew by %d kB over %d execs", grow, n-100)
	}
	if got := monitorFDs(t, mon); got > fds {
		t.Errorf("the monitor has %d fds open after the execs, %d before", got, fds)
	}
}

// fakeMonitor serves one connection on the container's attach socket with
// serve, as a monitor of some version would.
func fakeMonitor(t *testing.T, c *Container, serve func(conn *net.UnixConn)) {
	t.Helper()
	if err := os.MkdirAll(c.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: c.cfg.SocketPath(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		serve(conn)
	}()
}

// The daemon's side of the exec protocol, against fake monitors: an old
// one makes the daemon run the exec itself from then on, a new one gets
// the process and its streams and reports the exit, one that dies or is
// not there is told apart from both.
func TestExecInMonitorProtocol(t *testing.T) {
	newContainer := func(t *testing.T) *Container {
		return &Container{cfg: proto.Config{ID: "c", StateDir: filepath.Join(testRun, "p"+strconv.Itoa(rand.IntN(1<<30)))}}
	}
	proc := &specs.Process{Args: []string{"true"}, Cwd: "/"}
	start := func(t *testing.T, c *Container) (startedExec, error) {
		t.Helper()
		sio := &execIO{}
		t.Cleanup(sio.closeAll)
		if err := sio.setup(nil, io.Discard, io.Discard, false); err != nil {
			t.Fatal(err)
		}
		return c.execInMonitor(context.Background(), proc, sio, false, nil)
	}

	t.Run("old monitor", func(t *testing.T) {
		c := newContainer(t)
		fakeMonitor(t, c, func(conn *net.UnixConn) {
			_, p, _ := proto.ReadFrame(conn, nil)
			// What every monitor before the command answered.
			proto.WriteFrame(conn, proto.FrameReply, proto.ReplyPayload(fmt.Errorf("unknown command %s", p), ""))
		})
		if _, err := start(t, c); !errors.Is(err, errMonitorCannotExec) || !c.execHere.Load() {
			t.Fatalf("old monitor: %v, exec here %v", err, c.execHere.Load())
		}
	})
	t.Run("new monitor", func(t *testing.T) {
		c := newContainer(t)
		got := make(chan string, 1)
		fakeMonitor(t, c, func(conn *net.UnixConn) {
			typ, p, _ := proto.ReadFrame(conn, nil)
			if typ != proto.FrameControl || string(p) != proto.CmdExec {
				got <- fmt.Sprintf("control %q %q", typ, p)
				return
			}
			typ, p, files, err := proto.ReadFrameFiles(conn)
			var req proto.ExecRequest
			json.Unmarshal(p, &req)
			got <- fmt.Sprintf("%q %v %d files, stdin %v stdout %v stderr %v, %v", typ, req.Process.Args, len(files), req.Stdin, req.Stdout, req.Stderr, err)
			for _, f := range files {
				f.Close()
			}
			b, _ := json.Marshal(proto.ExecStarted{Pid: 4242})
			proto.WriteFrame(conn, proto.FrameReply, proto.ReplyPayload(nil, string(b)))
			b, _ = json.Marshal(proto.ExecExit{WaitStatus: 3 << 8})
			proto.WriteFrame(conn, proto.FrameExecExit, b)
		})
		run, err := start(t, c)
		if err != nil {
			t.Fatal(err)
		}
		defer run.close()
		if want := `'X' [true] 2 files, stdin false stdout true stderr true, <nil>`; <-got != want {
			t.Fatalf("the monitor got something else than %s", want)
		}
		ws, err := run.wait()
		if run.pid() != 4242 || err != nil || ws.ExitStatus() != 3 {
			t.Fatalf("pid %d, exit %d, %v", run.pid(), ws.ExitStatus(), err)
		}
		if c.execHere.Load() {
			t.Fatal("a monitor that runs execs made the daemon run them")
		}
	})
	t.Run("monitor dies", func(t *testing.T) {
		c := newContainer(t)
		fakeMonitor(t, c, func(conn *net.UnixConn) { proto.ReadFrame(conn, nil) })
		if _, err := start(t, c); err == nil || errors.Is(err, errMonitorCannotExec) || c.execHere.Load() {
			t.Fatalf("monitor gone mid-request: %v, exec here %v", err, c.execHere.Load())
		}
	})
	t.Run("no monitor", func(t *testing.T) {
		c := newContainer(t)
		if _, err := start(t, c); !errors.Is(err, errMonitorCannotExec) || c.execHere.Load() {
			t.Fatalf("no monitor: %v, exec here %v", err, c.execHere.Load())
		}
	})
}
