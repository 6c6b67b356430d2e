package spec

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The probe must say yes on any kernel with mount_setattr, or Status would
// hide a feature the node has.
func TestProbeRecursiveReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fsopen needs CAP_SYS_ADMIN; run as root")
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("parse kernel release: %v", err)
	}
	err := probeRecursiveReadOnly()
	if major > 5 || (major == 5 && minor >= 12) {
		if err != nil {
			t.Fatalf("kernel %d.%d has mount_setattr, probe says %v", major, minor, err)
		}
	} else if err == nil {
		t.Fatalf("kernel %d.%d lacks mount_setattr, probe succeeded", major, minor)
	}
}
