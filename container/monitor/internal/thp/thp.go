// Package thp keeps transparent huge pages away from crisp's per-container
// processes and gives them back to the containers.
//
// With THP in "always" mode the Go runtime's heap arenas and stacks of the
// small, long-lived monitor are backed by 2 MiB pages, which roughly
// quadruples what each container costs in PSS. The monitor therefore opts
// out with PR_SET_THP_DISABLE. The kernel keeps that flag across fork and
// execve, so the container's init, which the monitor (or, for exec, the
// daemon) forks and re-executes as libcontainer's init, must drop it again
// before the user's program runs: workloads such as ML training want THP.
package thp

import "golang.org/x/sys/unix"

// Disable opts the calling process, and every process it later forks or
// executes, out of transparent huge pages. crisp-monitor already does this
// in a C constructor, before the Go runtime maps its heap; this is for the
// crisp binary serving as the monitor and for builds without cgo. Errors
// are ignored: kernels without the prctl (< 3.15) cannot be helped.
func Disable() {
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
}

// Allow clears the opt-out inherited from the monitor, so that the process
// (and the program it executes) follows the system's THP policy again.
func Allow() {
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 0, 0, 0, 0)
}
