// Package testutil holds the few helpers that tests of several packages
// (and the integration tests and their harness) share. Only tests import it.
package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is an output sink a test can read while another goroutine
// (a process's output copier) writes it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TimeoutScaleEnv names the factor (a positive integer, default 1) by
// which tests stretch their waits on a slow machine: the VM lane's emulated
// guest sets 4 (hack/vm/guest.sh). It lengthens how long a test waits for
// something to happen, never what a test asserts about durations.
const TimeoutScaleEnv = "CRISP_TEST_TIMEOUT_SCALE"

var timeoutScale = sync.OnceValue(func() time.Duration {
	n, err := strconv.Atoi(os.Getenv(TimeoutScaleEnv))
	if err != nil || n < 1 {
		return 1
	}
	return time.Duration(n)
})

// Scaled is a test's wait d stretched by $CRISP_TEST_TIMEOUT_SCALE.
func Scaled(d time.Duration) time.Duration { return d * timeoutScale() }

// WaitFor polls cond until it holds, failing the test with what after
// timeout (scaled, see Scaled).
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	timeout = Scaled(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// OpenFDs is the number of descriptors this process has open, for leak
// checks.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Children are pid's child processes, zombies included (the children
// files of all its threads; a thread that exits meanwhile has none).
func Children(pid int) []string {
	var kids []string
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}
