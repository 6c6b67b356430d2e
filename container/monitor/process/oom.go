package process

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
)

// oomCounter reads the cgroup's count of OOM kills. The exit code alone
// cannot tell an OOM kill: a child killed by the OOM killer can make the
// init exit with any code. So the monitor compares the counter at exit with
// its value at create.
type oomCounter struct {
	file  string // memory.oom_control (v1) or memory.events (v2)
	start uint64
	// seen is set by watch when the counter rose while the cgroup existed.
	seen atomic.Bool
}

// open finds the container's counter and takes its value at create.
func (c *oomCounter) open(lc *libcontainer.Container) error {
	st, err := lc.State()
	if err != nil {
		return err
	}
	if c.file, err = libct.MemoryEventsPath(st); err != nil {
		return err
	}
	c.start, err = c.read()
	return err
}

// read returns the current oom_kill value (same key in v1 and v2).
func (c *oomCounter) read() (uint64, error) {
	if c.file == "" {
		return 0, errors.New("no OOM counter")
	}
	ev, err := libct.ReadEventCounts(c.file)
	if err != nil {
		return 0, err
	}
	n, ok := ev["oom_kill"]
	if !ok {
		return 0, errors.New("oom_kill not found in " + c.file)
	}
	return n, nil
}

// killed reports whether an OOM kill happened in the cgroup since create.
func (c *oomCounter) killed() bool {
	if c.seen.Load() {
		return true
	}
	n, err := c.read()
	return err == nil && n > c.start
}

// watch reads the counter whenever the kernel signals a change of its file,
// until the file goes away. Reading it at exit is not enough under the
// systemd driver: systemd removes a container's scope, and its
// memory.events with it, as soon as the scope is empty, which is often
// before the monitor has waited for the init; the kernel notifies the
// change at the kill, while the cgroup still exists. (containerd's and
// CRI-O's monitors watch memory.events the same way.)
func (c *oomCounter) watch(logf func(string, ...any)) {
	if c.file == "" {
		return
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		logf("OOM watch: %v", err)
		return
	}
	if _, err := unix.InotifyAddWatch(fd, c.file, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		logf("OOM watch of %s: %v", c.file, err)
		return
	}
	// Checked once after the watch is set: a kill before it is not missed.
	c.check()
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return
			}
			gone := false
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				gone = gone || ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF) != 0
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
			if gone {
				return
			}
			if c.check() {
				return
			}
		}
	}()
}

// check records a rise of the counter; true once one was seen.
func (c *oomCounter) check() bool {
	if n, err := c.read(); err == nil && n > c.start {
		c.seen.Store(true)
	}
	return c.seen.Load()
}
