//go:build cgo

package podinit

/*
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

// crisp_pod_reaper runs before the Go runtime starts, in every process of a
// binary that links this package, and returns at once unless the process was
// exec'd as a reaper (execReaper). A reaper then never reaches Go: it costs
// the few pages of a C process rather than a Go runtime's heap, stacks and
// threads, and it lives as long as its pod.
//
// Every signal is blocked and the two that matter are taken with sigwait, so
// none can kill it from outside the pod but SIGTERM and SIGKILL (the daemon's
// stop). SIGCHLDs coalesce, but one that arrives during a drain stays
// pending and triggers another full drain, so no zombie outlives a drain.
__attribute__((constructor)) static void crisp_pod_reaper(void) {
	if (getenv("CRISP_POD_REAPER") == NULL)
		return;
	prctl(PR_SET_NAME, "crisp-pod-init", 0, 0, 0);
	// An inherited SIG_IGN would make the kernel reap (and hide) children.
	signal(SIGCHLD, SIG_DFL);
	sigset_t all, wanted;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGCHLD);
	sigaddset(&wanted, SIGTERM);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		int sig = 0;
		if (sigwait(&wanted, &sig) == 0 && sig == SIGTERM)
			_exit(0);
	}
}
*/
import "C"

import (
	"os"

	"golang.org/x/sys/unix"
)

// reaperEnv makes the exec'd binary a reaper before Go starts (see above).
const reaperEnv = "CRISP_POD_REAPER"

// execReaper replaces this Go process with the C reaper of the same binary.
// The PID and its start time, which the daemon records, stay the same. It
// returns only if the exec failed; the caller then reaps in Go.
func execReaper() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return unix.Exec(exe, []string{initProcName}, []string{reaperEnv + "=1"})
}
