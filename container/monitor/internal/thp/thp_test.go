package thp

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// thpEnabled reads the THP_enabled field of a /proc/PID/status text: 1 when
// the process may get huge pages, 0 after PR_SET_THP_DISABLE.
func thpEnabled(t *testing.T, status string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "THP_enabled:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Skip("kernel does not report THP_enabled")
	return ""
}

// The flag is per process and survives fork+execve in both directions: a
// child of a disabled process starts disabled and can allow itself again.
func TestDisableAllow(t *testing.T) {
	self := func() string {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		return thpEnabled(t, string(b))
	}
	child := func() string {
		out, err := exec.Command("cat", "/proc/self/status").Output()
		if err != nil {
			t.Fatal(err)
		}
		return thpEnabled(t, string(out))
	}
	defer Allow()
	Disable()
	if got := self(); got != "0" {
		t.Fatalf("after Disable THP_enabled = %s, want 0", got)
	}
	if got := child(); got != "0" {
		t.Fatalf("child of a disabled process: THP_enabled = %s, want 0 (inherited)", got)
	}
	Allow()
	if got := self(); got != "1" {
		t.Fatalf("after Allow THP_enabled = %s, want 1", got)
	}
	if got := child(); got != "1" {
		t.Fatalf("child after Allow: THP_enabled = %s, want 1", got)
	}
}
