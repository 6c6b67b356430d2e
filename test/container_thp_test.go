//go:build integration

package test

import (
	"fmt"
	"strings"
	"testing"
)

// TestContainerTHP checks that the monitor runs without transparent huge
// pages (THP "always" would quadruple its PSS) while the container's
// processes, its init and an exec'd one, keep the system's THP policy: the
// monitor's PR_SET_THP_DISABLE is inherited across fork and execve and must
// be dropped before the user's program runs.
func TestContainerTHP(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "thp")
	id := runCtr(t, d, pod, podCfg, ctrConfig("c", "sleep 100000"))
	init := int(ctrPid(t, d, id))
	if got := thpEnabled(t, readFile(t, fmt.Sprintf("/proc/%d/status", init))); got != "1" {
		t.Errorf("container init %d: THP_enabled %s, want 1", init, got)
	}
	mon := ppid(t, init)
	if got := thpEnabled(t, readFile(t, fmt.Sprintf("/proc/%d/status", mon))); got != "0" {
		t.Errorf("monitor %d: THP_enabled %s, want 0", mon, got)
	}
	resp := execSync(t, d, id, 10, "cat", "/proc/self/status")
	if resp.ExitCode != 0 {
		t.Fatalf("exec: exit %d: %s", resp.ExitCode, resp.Stderr)
	}
	if got := thpEnabled(t, string(resp.Stdout)); got != "1" {
		t.Errorf("exec'd process: THP_enabled %s, want 1", got)
	}
}

// thpEnabled is the THP_enabled field of a /proc/PID/status text: 0 once
// the process has PR_SET_THP_DISABLE set.
func thpEnabled(t *testing.T, status string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "THP_enabled:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Skip("kernel does not report THP_enabled in /proc/PID/status")
	return ""
}
