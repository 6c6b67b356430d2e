package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

func TestOutputToLog(t *testing.T) {
	c := run(t, testOpts{args: []string{"print", "out1", "err1", "out2", "err2", "out3", "0"}})
	st := waitExit(t, c.Container, 10*time.Second)
	if st.ExitCode != 0 || st.Reason != ReasonCompleted || st.OOMKilled {
		t.Fatalf("status %+v", st)
	}
	if st.CreatedAt.IsZero() || st.StartedAt.Before(st.CreatedAt) || st.FinishedAt.Before(st.StartedAt) {
		t.Fatalf("bad timestamps %+v", st)
	}
	es := readLog(t, c.cfg.LogPath)
	if got := strings.Join(crilog.Lines(es, crilog.Stdout), ","); got != "out1,out2,out3" {
		t.Errorf("stdout lines %q", got)
	}
	if got := strings.Join(crilog.Lines(es, crilog.Stderr), ","); got != "err1,err2" {
		t.Errorf("stderr lines %q", got)
	}
	for _, e := range es {
		if e.Partial {
			t.Errorf("unexpected partial entry %+v", e)
		}
	}
}

func TestPartialLines(t *testing.T) {
	c := run(t, testOpts{args: []string{"long", "40000"}})
	waitExit(t, c.Container, 10*time.Second)
	es := readLog(t, c.cfg.LogPath)
	var tags []string
	for _, e := range es {
		tag := "F"
		if e.Partial {
			tag = "P"
		}
		tags = append(tags, tag+":"+string(rune('0'+len(e.Content)/crilog.DefaultMaxLineSize)))
	}
	// 40000 = 16384 + 16384 + 7232, then "tail" without a newline.
	if got := strings.Join(tags, " "); got != "P:1 P:1 F:0 P:0" {
		t.Fatalf("tags %s", got)
	}
	if string(es[3].Content) != "tail" {
		t.Fatalf("last entry %q", es[3].Content)
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		signal syscall.Signal
		code   int
		reason string
	}{
		{"zero", []string{"exit", "0"}, 0, 0, ReasonCompleted},
		{"three", []string{"exit", "3"}, 0, 3, ReasonError},
		{"sigkill", []string{"sleep"}, syscall.SIGKILL, 137, ReasonError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := run(t, testOpts{args: tc.args, noLog: true})
			if tc.signal != 0 {
				if err := c.Signal(tc.signal); err != nil {
					t.Fatal(err)
				}
			}
			st := waitExit(t, c.Container, 10*time.Second)
			if st.ExitCode != tc.code || st.Reason != tc.reason {
				t.Fatalf("got code %d reason %q, want %d %q", st.ExitCode, st.Reason, tc.code, tc.reason)
			}
			// What the daemon reads back after a restart is the same.
			l, err := Load(c.cfg.Bundle, c.cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if ls := l.Status(); ls.State != StateExited || ls.ExitCode != tc.code || !ls.FinishedAt.Equal(st.FinishedAt) {
				t.Fatalf("loaded status %+v", ls)
			}
		})
	}
}

func TestCreateFailure(t *testing.T) {
	cfg := testConfig(t, testOpts{args: []string{"x"}})
	cfg.Spec.Process.Args = []string{"nosuch"}
	_, err := Create(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), `exec: "nosuch": executable file not found in $PATH`) {
		t.Fatalf("Create error = %v", err)
	}
	assertNoCgroup(t, cfg.ID)
	for _, p := range []string{cfg.StateDir, cfg.Bundle} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	if z := zombiesOf(map[int]bool{os.Getpid(): true}); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

func TestCreateThenDestroyWithoutStart(t *testing.T) {
	c := create(t, testOpts{args: []string{"sleep"}})
	if st := c.Status(); st.State != StateCreated || st.Pid <= 0 {
		t.Fatalf("status %+v", st)
	}
	if got := cgroupProcs(t, c.cfg.ID); len(got) != 1 || got[0] != c.Status().Pid {
		t.Fatalf("cgroup procs %v, init %d", got, c.Status().Pid)
	}
	// Cleanup destroys it: the init blocked on the exec fifo is killed.
}

// The daemon's handle is dropped and rebuilt with Load, as after a daemon
// restart: the container keeps running and logging without a gap.
func TestSurvivesDaemonRestart(t *testing.T) {
	c := run(t, testOpts{args: []string{"ticker"}})
	pid := c.Status().Pid
	waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) >= 5 })
	// "Restart": drop the handle, let the container log unobserved.
	c.Container = nil
	time.Sleep(300 * time.Millisecond)

	l, err := Load(c.cfg.Bundle, c.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	c.Container = l
	st := l.Status()
	if st.State != StateRunning || st.Pid != pid || st.StartedAt.IsZero() {
		t.Fatalf("loaded status %+v", st)
	}
	n := ticks(t, waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) >= 25 }))
	if err := l.Stop(context.Background(), syscall.SIGTERM, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	st = l.Status()
	// The ticker ignores SIGTERM, so Stop had to SIGKILL it.
	if st.State != StateExited || st.ExitCode != 137 {
		t.Fatalf("status after stop %+v", st)
	}
	es := readLog(t, c.cfg.LogPath)
	if got := ticks(t, crilog.Lines(es, crilog.Stdout)); got < n {
		t.Fatalf("%d ticks after stop, %d before", got, n)
	}
}

// An exit that happens while no daemon is watching is reported by Load.
func TestExitWhileDaemonDown(t *testing.T) {
	c := run(t, testOpts{args: []string{"print", "bye", "7"}})
	c.Container = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(c.cfg.Bundle, proto.ExitFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exit recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	l, err := Load(c.cfg.Bundle, c.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	c.Container = l
	select {
	case <-l.Wait():
	default:
		t.Fatal("Wait not closed for an exited container")
	}
	if st := l.Status(); st.State != StateExited || st.ExitCode != 7 || st.Reason != ReasonError || st.FinishedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if got := crilog.Lines(readLog(t, c.cfg.LogPath), crilog.Stdout); len(got) != 1 || got[0] != "bye" {
		t.Fatalf("log %q", got)
	}
}

func TestStopKillsEveryProcess(t *testing.T) {
	c := run(t, testOpts{args: []string{"stubborn"}})
	waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) == 1 && l[0] == "ready" })
	if n := len(cgroupProcs(t, c.cfg.ID)); n != 2 {
		t.Fatalf("%d processes in the cgroup, want 2", n)
	}
	start := time.Now()
	if err := c.Stop(context.Background(), syscall.SIGTERM, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("stopped after %v: SIGTERM should have been ignored", d)
	}
	if st := c.Status(); st.ExitCode != 137 {
		t.Fatalf("status %+v", st)
	}
	if got := cgroupProcs(t, c.cfg.ID); len(got) != 0 {
		t.Fatalf("processes left in cgroup: %v", got)
	}
	// Stopping again is a no-op.
	if err := c.Stop(context.Background(), syscall.SIGTERM, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestOOMKilled(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control"); err != nil {
		t.Skip("no cgroup v1 memory controller")
	}
	c := run(t, testOpts{args: []string{"oom"}, memLimit: 32 << 20, noLog: true})
	st := waitExit(t, c.Container, 30*time.Second)
	if !st.OOMKilled || st.ExitCode != 137 || st.Reason != ReasonOOMKilled {
		t.Fatalf("status %+v", st)
	}
}

// When neither the bundle's filesystem nor the state dir takes exit.json,
// the monitor keeps the exit (code and OOM kill) and retries instead of
// exiting without it, which the daemon would report as 255.
func TestExitKeptUntilARecordFits(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control"); err != nil {
		t.Skip("no cgroup v1 memory controller")
	}
	c := create(t, testOpts{args: []string{"oom"}, memLimit: 32 << 20, noLog: true})
	// A non-empty directory where exit.json goes: every write fails.
	var blocks []string
	for _, dir := range []string{c.cfg.Bundle, c.cfg.StateDir} {
		b := filepath.Join(dir, proto.ExitFile)
		if err := os.MkdirAll(filepath.Join(b, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the monitor to retry recording the exit", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(c.cfg.Bundle, proto.MonitorLogFile))
		return strings.Contains(string(b), "retrying")
	})
	if st := c.Status(); st.State == StateExited {
		t.Fatalf("exit reported before it was recorded: %+v", st)
	}
	if err := os.RemoveAll(blocks[0]); err != nil {
		t.Fatal(err)
	}
	st := waitExit(t, c.Container, 30*time.Second)
	if !st.OOMKilled || st.ExitCode != 137 || st.Reason != ReasonOOMKilled {
		t.Fatalf("status %+v, want the OOM kill", st)
	}
	os.RemoveAll(blocks[1])
}

// status.json is not synced: after a crash of the node (the volatile state
// dir is gone) a bundle may have none, or a cut one. Load reports such a
// container as exited, or with the exit exit.json (synced) recorded.
func TestLoadAfterNodeCrash(t *testing.T) {
	for _, tc := range []struct {
		name, status, exit string
		code               int
	}{
		{name: "no status.json", code: 255},
		{name: "empty status.json", status: "", code: 255},
		{name: "cut status.json", status: `{"monitor_pid": 12`, code: 255},
		{name: "exit recorded", status: `{"monitor_pid": 12`, exit: `{"exit_code": 3, "reason": "Error"}`, code: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			stateDir := filepath.Join(t.TempDir(), "gone")
			pc := proto.Config{ID: "c1", Bundle: bundle, StateDir: stateDir}
			if err := proto.WriteJSONAtomic(pc.Path(proto.ConfigFile), &pc); err != nil {
				t.Fatal(err)
			}
			if tc.name != "no status.json" {
				os.WriteFile(pc.Path(proto.StatusFile), []byte(tc.status), 0o600)
			}
			if tc.exit != "" {
				os.WriteFile(pc.Path(proto.ExitFile), []byte(tc.exit), 0o600)
			}
			c, err := Load(bundle, stateDir)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.Wait():
			default:
				t.Fatal("Wait not closed")
			}
			if st := c.Status(); st.State != StateExited || st.ExitCode != tc.code {
				t.Fatalf("status %+v", st)
			}
			if c.MonitorRunning() {
				t.Fatal("a monitor of another boot is watched")
			}
		})
	}
	// In this boot (state dir present) an unreadable status.json is an
	// error, as before: the monitor may be alive.
	bundle, stateDir := t.TempDir(), t.TempDir()
	pc := proto.Config{ID: "c2", Bundle: bundle, StateDir: stateDir}
	if err := proto.WriteJSONAtomic(pc.Path(proto.ConfigFile), &pc); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pc.Path(proto.StatusFile), []byte(`{"monitor_pid"`), 0o600)
	if _, err := Load(bundle, stateDir); err == nil {
		t.Fatal("Load of a cut status.json in this boot succeeded")
	}
}
