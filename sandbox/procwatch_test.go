package sandbox

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWatchProcessSignals: a watched process that lives is not reported
// gone because a signal was pending while the watch polled its pidfd (the
// Go runtime preempts with SIGURG; poll then fails with EINTR even without
// a timeout). A pod's reaper reported gone makes the pod NOTREADY.
func TestWatchProcessSignals(t *testing.T) {
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	st, err := procStartTime(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r := Reaper{PID: sleep.Process.Pid, StartTime: st}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				// Every thread: the one polling must have it pending.
				tasks, _ := os.ReadDir("/proc/self/task")
				for _, task := range tasks {
					tid, _ := strconv.Atoi(task.Name())
					syscall.Tgkill(syscall.Getpid(), tid, syscall.SIGURG)
				}
			}
		}
	}()
	const n = 300
	watches := make([]processExit, 0, n)
	for range n {
		watches = append(watches, watchProcess(r, nil))
	}
	time.Sleep(200 * time.Millisecond)
	gone := 0
	for _, w := range watches {
		select {
		case <-w:
			gone++
		default:
		}
	}
	if gone > 0 {
		t.Fatalf("%d of %d watches reported a live process gone", gone, n)
	}
	sleep.Process.Kill()
	for i, w := range watches {
		select {
		case <-w:
		case <-time.After(10 * time.Second):
			t.Fatalf("watch %d did not see the exit", i)
		}
	}
}
