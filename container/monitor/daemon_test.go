package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

// daemonEnv makes the test binary act as a minimal crisp daemon: create
// and start the container described by the variable's JSON Config, report
// "started", then idle until killed.
const daemonEnv = "CRISP_TEST_FAKE_DAEMON"

func fakeDaemon(cfgJSON string) int {
	var cfg Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	c, err := Create(context.Background(), cfg)
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("started")
	select {}
}

// startFakeDaemon runs a fake daemon for cfg and SIGKILLs it once the
// container has started.
func startAndKillDaemon(t *testing.T, cfg Config) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), daemonEnv+"="+string(b))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if line != "started\n" {
		t.Fatalf("fake daemon: %q", line)
	}
}

func TestDaemonKilled(t *testing.T) {
	// A running container keeps running and logging; a new "daemon"
	// picks it up, attaches to it and stops it.
	t.Run("running", func(t *testing.T) {
		cfg := testConfig(t, testOpts{args: []string{"ticker"}})
		tc := &testContainer{cfg: cfg}
		startAndKillDaemon(t, cfg)
		time.Sleep(200 * time.Millisecond)
		c, err := Load(cfg.Bundle, cfg.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		tc.Container = c
		t.Cleanup(func() { tc.destroy(t) })
		if st := c.Status(); st.State != StateRunning {
			t.Fatalf("status %+v", st)
		}
		var out testutil.SyncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := c.Attach(ctx, nil, &out, nil, nil); err != context.DeadlineExceeded {
			t.Fatalf("attach: %v", err)
		}
		if len(out.String()) == 0 {
			t.Fatal("attach got no output")
		}
		n := ticks(t, waitLog(t, cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) >= 30 }))
		if err := c.Stop(context.Background(), syscall.SIGKILL, 0); err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.ExitCode != 137 {
			t.Fatalf("status %+v", st)
		}
		if got := ticks(t, crilog.Lines(readLog(t, cfg.LogPath), crilog.Stdout)); got < n {
			t.Fatalf("log shrank")
		}
	})
	// The container exits while no daemon runs; Load reports the exit and
	// the orphaned monitor is reaped.
	t.Run("exit while down", func(t *testing.T) {
		cfg := testConfig(t, testOpts{args: []string{"delay-exit", "300", "7"}})
		tc := &testContainer{cfg: cfg}
		startAndKillDaemon(t, cfg)
		var rec proto.StatusRecord
		if err := proto.ReadJSON(filepath.Join(cfg.Bundle, proto.StatusFile), &rec); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(cfg.Bundle, proto.ExitFile)); err == nil {
			t.Fatal("exited before the daemon was killed")
		}
		testutil.WaitFor(t, "exit record", 10*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(cfg.Bundle, proto.ExitFile))
			return err == nil
		})
		c, err := Load(cfg.Bundle, cfg.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		tc.Container = c
		t.Cleanup(func() { tc.destroy(t) })
		st := waitExit(t, c, time.Second)
		if st.ExitCode != 7 || st.Reason != ReasonError || st.FinishedAt.Before(st.StartedAt) {
			t.Fatalf("status %+v", st)
		}
		if got := crilog.Lines(readLog(t, cfg.LogPath), crilog.Stdout); len(got) != 1 || got[0] != "bye" {
			t.Fatalf("log %q", got)
		}
		testutil.WaitFor(t, "orphaned monitor reaped", 5*time.Second, func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", rec.MonitorPid))
			return err != nil
		})
	})
}

// A Create abandoned at any point (ctx deadline) leaves nothing behind.
func TestCreateCancelled(t *testing.T) {
	for _, d := range []time.Duration{2, 5, 10, 15, 20, 25, 30, 40, 60} {
		cfg := testConfig(t, testOpts{args: []string{"sleep"}})
		ctx, cancel := context.WithTimeout(context.Background(), d*time.Millisecond)
		c, err := Create(ctx, cfg)
		cancel()
		if err == nil {
			// Too slow to cancel: fine, clean up normally.
			if err := c.Destroy(); err != nil {
				t.Fatal(err)
			}
		}
		assertNoCgroup(t, cfg.ID)
		for _, p := range []string{cfg.StateDir, cfg.Bundle} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("deadline %dms: %s left behind", d, p)
			}
		}
		t.Logf("deadline %dms: %v", d, err)
	}
	// Processes of the killed monitor's unfinished start are orphans
	// re-parented to us (the test is a subreaper): collect them.
	time.Sleep(100 * time.Millisecond)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			break
		}
	}
	if len(monitorPids()) != 0 {
		t.Fatal("monitors left")
	}
}

// The monitor itself is killed: the container is orphaned, its state
// unknown; Stop still kills it and Destroy cleans up.
func TestMonitorKilled(t *testing.T) {
	// A silent container: a writer would die of SIGPIPE with its reader.
	c := run(t, testOpts{args: []string{"sleep"}})
	if err := unix.Kill(c.rec.MonitorPid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "state unknown", 5*time.Second, func() bool { return c.Status().State == StateUnknown })
	select {
	case <-c.Wait():
		t.Fatal("Wait closed although no exit was recorded")
	default:
	}
	l, err := Load(c.cfg.Bundle, c.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	c.Container = l
	if st := l.Status(); st.State != StateUnknown {
		t.Fatalf("status %+v", st)
	}
	if err := l.Stop(context.Background(), syscall.SIGTERM, 0); err != nil {
		t.Fatal(err)
	}
	if st := l.Status(); st.State != StateExited || st.ExitCode != 137 {
		t.Fatalf("status %+v", st)
	}
	if z := zombiesOf(map[int]bool{os.Getpid(): true}); len(z) > 0 {
		t.Fatalf("zombies: %v", z)
	}
}
