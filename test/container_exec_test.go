//go:build integration

package test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// execdProcess finds the host pid of the process whose argv is args.
func execdProcess(args ...string) int {
	want := []byte(strings.Join(args, "\x00") + "\x00")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Equal(b, want) {
			return pid
		}
	}
	return 0
}

func ppidOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func exeOf(pid int) string {
	p, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return filepath.Base(p)
}

func fdsOf(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// startExec runs ExecSync of args (no timeout) in the background and
// returns the exec'd process's host pid once it runs, and the call's end.
func startExec(t *testing.T, d *harness.Daemon, id string, args ...string) (int, <-chan error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := d.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: args})
		done <- err
	}()
	var pid int
	testutil.WaitFor(t, "the exec'd process", 30*time.Second, func() bool {
		pid = execdProcess(args...)
		return pid != 0
	})
	return pid, done
}

// TestExecRunByMonitor: the container's monitor starts and reaps an exec'd
// process (libcontainer's init for it is the small crisp-monitor binary).
// When crisp is killed with -9 mid-exec, the monitor kills and reaps the
// process and closes what it was given; after the restart the container
// runs and execs work.
func TestExecRunByMonitor(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "exec-monitor")
	id := runCtr(t, d, pod, podCfg, ctrConfig("c", "sleep 1000"))
	if r := execSync(t, d, id, 10, "true"); r.ExitCode != 0 {
		t.Fatalf("first exec: %d", r.ExitCode)
	}
	// The monitor starts execs through its C init; it logs why if it
	// cannot (container/monitor/internal/cinit).
	if log := monitorLog(t, d, id); strings.Contains(log, "libcontainer's init") {
		t.Fatalf("the monitor fell back to libcontainer's init for RuntimeDefault busybox:\n%s", log)
	}

	pid, done := startExec(t, d, id, "sleep", "701.5")
	mon := ppidOf(t, pid)
	if mon == d.PID() || exeOf(mon) != "crisp-monitor" {
		t.Fatalf("exec'd process %d is a child of %d (%s), not of the container's monitor; crisp is %d", pid, mon, exeOf(mon), d.PID())
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if err := <-done; err != nil {
		t.Fatalf("killed exec: %v", err)
	}
	testutil.WaitFor(t, "the killed exec's process to be reaped", 30*time.Second, func() bool {
		return execdProcess("sleep", "701.5") == 0
	})
	idle := fdsOf(t, mon)

	pid, done = startExec(t, d, id, "sleep", "701.6")
	if ppidOf(t, pid) != mon {
		t.Fatalf("second exec'd process is a child of %d", ppidOf(t, pid))
	}
	d.Kill9(t)
	<-done
	testutil.WaitFor(t, "the exec'd process to be killed and reaped", 30*time.Second, func() bool {
		return execdProcess("sleep", "701.6") == 0
	})
	testutil.WaitFor(t, "the monitor to close the exec's descriptors", 30*time.Second, func() bool {
		return fdsOf(t, mon) <= idle
	})
	d.StartAgain(t)
	if st := ctrStatus(t, d, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after kill -9 mid-exec: %v %s", st.State, st.Message)
	}
	if r := execSync(t, d, id, 10, "sh", "-c", "echo again; exit 4"); string(r.Stdout) != "again\n" || r.ExitCode != 4 {
		t.Fatalf("exec after the restart: %q %d", r.Stdout, r.ExitCode)
	}
	checkNoZombies(t, d)
}

// TestExecOldMonitorFallback: a monitor that does not know the exec command
// (of a crisp before it; the failpoint makes this one answer so) gets the
// exec run by the daemon, as before: output, exit codes, the timeout and
// the kill of what the command started all work, and the daemon remembers
// not to ask that monitor again.
func TestExecOldMonitorFallback(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t, harness.WithBinary(failpointBinary(t)), harness.WithEnv(failpoint.EnvVar+"=monitor/exec-unknown=error"))
	pull(t, d, ctrImage)
	pod, podCfg := ctrPod(t, d, "exec-old-monitor")
	id := runCtr(t, d, pod, podCfg, ctrConfig("c", "sleep 1000"))

	r := execSync(t, d, id, 10, "sh", "-c", "echo out; echo err >&2; exit 5")
	if string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" || r.ExitCode != 5 {
		t.Fatalf("exec through an old monitor: %q %q %d", r.Stdout, r.Stderr, r.ExitCode)
	}
	// The failpoint fires once per monitor: if the daemon asked again, the
	// monitor would run this one.
	pid, done := startExec(t, d, id, "sleep", "702.5")
	if ppid := ppidOf(t, pid); ppid != d.PID() {
		t.Fatalf("exec'd process %d is a child of %d (%s), not of crisp %d", pid, ppid, exeOf(ppid), d.PID())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("killed exec: %v", err)
	}
	_, err := d.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "sleep 703 & sleep 704"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("timed-out exec: %v", err)
	}
	testutil.WaitFor(t, "the timed-out exec's processes to be killed", 30*time.Second, func() bool {
		return execdProcess("sleep", "703") == 0 && execdProcess("sleep", "704") == 0
	})
	checkNoZombies(t, d)
}

// monitorLog is the container's monitor's own log (its stderr).
func monitorLog(t *testing.T, d *harness.Daemon, id string) string {
	t.Helper()
	for _, dir := range []string{d.Root, d.State} {
		logs, _ := filepath.Glob(filepath.Join(dir, "*", id, "bundle", "monitor.log"))
		for _, l := range logs {
			b, err := os.ReadFile(l)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("no monitor log for container %s under %s or %s", id, d.Root, d.State)
	return ""
}
