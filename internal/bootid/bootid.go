// Package bootid names the running boot of the kernel. Recorded next to a
// process's pid and start time it tells a process of this boot from one of
// an earlier boot: start times count clock ticks since boot, so after a
// reboot the same pid with the same start time can be a host process, which
// crisp must never signal as a pod's.
package bootid

import (
	"os"
	"strings"
	"sync"
)

const path = "/proc/sys/kernel/random/boot_id"

// Current is this boot's id, "" if the kernel does not say.
var Current = sync.OnceValue(func() string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// Same reports whether a process recorded with boot id rec belongs to this
// boot. A record without one (written before boot ids were recorded) is of
// this boot only if volatileOK: the caller's evidence from state that a
// reboot wipes, such as its files under /run still being there.
func Same(rec string, volatileOK bool) bool {
	if rec == "" {
		return volatileOK
	}
	return rec == Current()
}
