package monitor

import "github.com/crisp-runtime/crisp/internal/pidsroom"

// execPidsMargin is the room for new tasks that the cgroups of the monitor
// (its leaf, the pod, and up) must have for it to run an exec: the forks
// of libcontainer's init (three stages at most at once) and the threads
// its Go runtime may add for blocking calls. A monitor whose runtime cannot
// create a thread aborts, so with less room the daemon, which is not in
// the pod, runs the exec as it always did.
const execPidsMargin = 32

// monitorHasPidsRoom reports whether the monitor's cgroups leave it room
// to run an exec (execPidsMargin). Unknown limits do not stop it.
func (c *Container) monitorHasPidsRoom() bool {
	c.mu.Lock()
	pid := c.rec.MonitorPid
	c.mu.Unlock()
	c.lcMu.Lock()
	if c.pidsDir == "" && pid > 0 {
		c.pidsRoot, c.pidsDir = pidsroom.CgroupOf(pid)
	}
	root, dir := c.pidsRoot, c.pidsDir
	c.lcMu.Unlock()
	if dir == "" {
		return true
	}
	l, limited := pidsroom.Tightest(root, dir)
	return !limited || l.Room() >= execPidsMargin
}
