//go:build integration

package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// TestContainerTTYLogs: a TTY container's log is the terminal's stream, as
// stdout lines (a terminal merges stderr into it), with the terminal's CRLF
// line endings taken as plain line ends.
func TestContainerTTYLogs(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "tty")
	cfg := ctrConfig("tty", "[ -t 1 ] && echo is-a-tty; echo to-stderr >&2; printf 'no newline'")
	cfg.Tty = true
	id := runCtr(t, d, pod, podCfg, cfg)
	if st := waitExited(t, d, id, time.Minute); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, st.Message)
	}
	lines := readCRILog(t, logPathOf(podCfg, cfg))
	want := []logLine{{"stdout", "F", "is-a-tty"}, {"stdout", "F", "to-stderr"}, {"stdout", "P", "no newline"}}
	if len(lines) != len(want) {
		t.Fatalf("log lines %+v, want %+v", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
}

// TestReopenContainerLogAfterRename does what kubelet's log rotation does:
// rename the live log, ask for a reopen, and expect the container's lines to
// continue in a new file at the old path, none lost or repeated.
func TestReopenContainerLogAfterRename(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "reopen")
	cfg := ctrConfig("logger", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.01; done")
	id := runCtr(t, d, pod, podCfg, cfg)
	path := logPathOf(podCfg, cfg)
	testutil.WaitFor(t, "first log lines", 30*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n") >= 20
	})

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // lines keep going to the renamed file
	if _, err := d.Runtime.ReopenContainerLog(harness.Ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "lines in the reopened log", 30*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n") >= 20
	})
	if _, err := d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatal(err)
	}

	old, cur := readCRILog(t, path+".1"), readCRILog(t, path)
	if len(old) < 20 {
		t.Fatalf("rotated file has %d lines", len(old))
	}
	for i, l := range append(old, cur...) {
		if want := fmt.Sprintf("line-%d", i); l.text != want || l.stream != "stdout" || l.tag != "F" {
			t.Fatalf("line %d (%d in the rotated file) is %+v, want %q", i, len(old), l, want)
		}
	}

	// A container that does not run has no log to reopen.
	if _, err := d.Runtime.ReopenContainerLog(harness.Ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err == nil {
		t.Error("ReopenContainerLog of a stopped container succeeded")
	}
}
