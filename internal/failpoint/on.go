//go:build failpoint

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// armed maps failpoint names to actions, from EnvVar.
var (
	mu    sync.Mutex
	armed = parse(os.Getenv(EnvVar))
)

// parentPause is how long "kill-parent" waits before going on: long enough
// for the test to have restarted the daemon, whose start-up then meets this
// process half-way through its step.
const parentPause = 3 * time.Second

func parse(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if name, action, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			m[name] = action
		}
	}
	return m
}

// Hit runs the action armed for name, if any. The line it logs first is
// what the suite looks for to know the crash happened where it meant.
// A failpoint fires once per process, so that kubelet's retry of an RPC
// that failed there can succeed.
func Hit(name string) error {
	mu.Lock()
	action, ok := armed[name]
	delete(armed, name)
	mu.Unlock()
	if !ok {
		return nil
	}
	fmt.Fprintf(os.Stderr, "failpoint %s fired: %s\n", name, action)
	switch action {
	case "kill":
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL is not instant for a multi-threaded process
	case "kill-parent":
		unix.Kill(os.Getppid(), unix.SIGKILL)
		time.Sleep(parentPause)
		return nil
	case "error":
		return fmt.Errorf("failpoint %s", name)
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: unknown action %q ignored\n", name, action)
	return nil
}

// Env is the environment that arms the same failpoints in a child process
// (the container monitor, whose environment is otherwise fixed).
func Env() []string {
	if v := os.Getenv(EnvVar); v != "" {
		return []string{EnvVar + "=" + v}
	}
	return nil
}
