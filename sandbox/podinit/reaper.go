package podinit

import (
	"os"
	"os/signal"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// reap is the life of a shared-PID pod's PID 1. It exists because a pinned
// PID namespace whose first process has exited can no longer be entered, so
// drop-infra needs one small process for these pods (and only these).
//
// Why no zombie survives:
//   - Any process of the pod that is orphaned (its parent exited) is
//     reparented by the kernel to this process, the namespace's init; each
//     exit raises SIGCHLD and drain() collects every exited child, so zombies
//     live only until the next drain.
//   - SIGCHLDs coalesce, but a signal arriving during a drain leaves one
//     value buffered in the channel, which triggers one more full drain.
//   - Processes whose parent is outside the namespace (container inits
//     started by the runtime) are reaped by that parent as usual.
//   - When this process exits (SIGTERM, or SIGKILL from Stop) the kernel
//     kills everything left in the namespace, and the exiting init waits for
//     them before it is itself reaped.
//   - This process is reaped by the daemon that started it (it waits on every
//     reaper it spawned); after a daemon restart it has been reparented to
//     the host's init, which reaps it.
//
// No parent-death signal is set and the process is its own session leader:
// it must outlive daemon restarts (and kill -9) and process-group signals.
func reap() {
	// Setup is done; give the heap's pages back and keep the footprint
	// to the runtime's minimum.
	debug.SetGCPercent(20)
	debug.FreeOSMemory()

	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGPIPE, unix.SIGUSR1, unix.SIGUSR2, unix.SIGQUIT)
	chld := make(chan os.Signal, 1)
	term := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	signal.Notify(term, unix.SIGTERM)
	drain()
	for {
		select {
		case <-chld:
			drain()
		case <-term:
			os.Exit(0)
		}
	}
}

// drain collects every exited child without blocking.
func drain() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
