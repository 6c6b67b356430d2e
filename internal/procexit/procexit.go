// Package procexit tells whether the process behind a pidfd has exited, for
// the daemon's watches (pods' reapers, containers' monitors) that wait on
// pidfds in the runtime's netpoller and ask this each time one may be
// readable.
package procexit

import "golang.org/x/sys/unix"

// Exited polls fd once, without waiting. poll fails with EINTR whenever a
// signal is pending, even with no timeout (the Go runtime's preemption
// signal, often at start-up). That says nothing about the process, and a
// caller that went back to wait for the next readiness edge could wait
// forever for an exit that already had its edge: so it polls again.
func Exited(fd uintptr) (bool, error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err != unix.EINTR {
			return n > 0, err
		}
	}
}
