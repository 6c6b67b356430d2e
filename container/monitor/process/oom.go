package process

import (
	"errors"
	"path/filepath"
	"sync"
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

	// On cgroup v2 the parent's memory.events counts its descendants' OOM
	// kills too. It is the witness of last resort when the container's
	// own file vanished before its kill could be read (see killedBy).
	parentFile string
	// parentStart is the parent's oom_kill read just before the last read
	// of file that showed no kill: a rise past it is a kill in the parent's
	// subtree after that moment.
	parentStart atomic.Uint64
	// pressure is set when the kernel signalled a memory event of the
	// container's own cgroup (max, oom, oom_kill: it was at its limit).
	pressure atomic.Bool
	// byParent records that killedBy decided on the parent's counter.
	byParent bool

	mu       sync.Mutex // guards the watch's fd: the watch and killedBy drain it
	fd       int
	watching bool // fd is open
	ended    bool
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
	c.setParent()
	c.start, err = c.read()
	return err
}

// setParent finds the parent's counter (cgroup v2 only: v1's oom_kill is
// the cgroup's own) and takes its baseline.
func (c *oomCounter) setParent() {
	if filepath.Base(c.file) != "memory.events" {
		return
	}
	c.parentFile = filepath.Join(filepath.Dir(filepath.Dir(c.file)), "memory.events")
	if n, err := readOOMKill(c.parentFile); err == nil {
		c.parentStart.Store(n)
	} else {
		c.parentFile = ""
	}
}

// read returns the current oom_kill value (same key in v1 and v2).
func (c *oomCounter) read() (uint64, error) {
	if c.file == "" {
		return 0, errors.New("no OOM counter")
	}
	return readOOMKill(c.file)
}

func readOOMKill(file string) (uint64, error) {
	ev, err := libct.ReadEventCounts(file)
	if err != nil {
		return 0, err
	}
	n, ok := ev["oom_kill"]
	if !ok {
		return 0, errors.New("oom_kill not found in " + file)
	}
	return n, nil
}

// killed reports whether an OOM kill happened in the cgroup since create.
func (c *oomCounter) killed() bool {
	return c.killedBy(false)
}

// killedBy is killed, told whether the init died of SIGKILL, which is how
// the OOM killer ends a process.
//
// Under the systemd driver the container's scope, with its memory.events,
// can be gone before its kill was read: the kernel rate-limits a cgroup
// file's notifications (one per ~10 ms; the rest wait on a timer that the
// cgroup's removal cancels), so the watch may have been woken by the
// "max" event that came just before the kill and read the file before the
// kill was counted. Then the parent's counter decides: it rose since that
// read, the container was at its limit, and its init died of SIGKILL. A
// sibling's OOM kill within that window, while this container was also at
// its limit and SIGKILLed, is the only case it gets wrong.
func (c *oomCounter) killedBy(sigkill bool) bool {
	c.drain()
	if c.seen.Load() {
		return true
	}
	n, err := c.read()
	if err == nil {
		return n > c.start
	}
	if !sigkill || c.parentFile == "" || !c.pressure.Load() {
		return false
	}
	p, err := readOOMKill(c.parentFile)
	c.byParent = err == nil && p > c.parentStart.Load()
	return c.byParent
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
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		logf("OOM watch: %v", err)
		return
	}
	if _, err := unix.InotifyAddWatch(fd, c.file, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		logf("OOM watch of %s: %v", c.file, err)
		return
	}
	c.mu.Lock()
	c.fd, c.watching = fd, true
	c.mu.Unlock()
	// Checked once after the watch is set: a kill before it is not missed.
	c.check()
	go func() {
		for {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
				logf("OOM watch: %v", err)
				c.stop()
				return
			}
			if c.drain() {
				c.stop()
				return
			}
		}
	}()
}

// drain handles the events queued on the watch; true once watching is
// over (the file is gone or the kill was seen). killedBy drains too: the
// init's exit can be reaped before this goroutine ran for the events
// that came before it.
func (c *oomCounter) drain() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.watching || c.ended {
		return true
	}
	var buf [4096]byte
	for {
		n, err := unix.Read(c.fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return false
		}
		if err != nil || n <= 0 {
			c.ended = true
			return true
		}
		gone := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			gone = gone || ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF) != 0
			if ev.Mask&unix.IN_MODIFY != 0 {
				c.pressure.Store(true)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		if gone || c.check() {
			c.ended = true
			return true
		}
	}
}

// stop closes the watch.
func (c *oomCounter) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching {
		unix.Close(c.fd)
		c.watching = false
	}
	c.ended = true
}

// check records a rise of the counter; true once one was seen.
// The parent is read first: a kill counts in the container's file before
// its parent's, so a parent value read before a file value without the
// kill cannot hold it either.
func (c *oomCounter) check() bool {
	var parent uint64
	parentErr := errors.New("no parent")
	if c.parentFile != "" {
		parent, parentErr = readOOMKill(c.parentFile)
	}
	n, err := c.read()
	switch {
	case err != nil:
	case n > c.start:
		c.seen.Store(true)
	case parentErr == nil:
		c.parentStart.Store(parent)
	}
	return c.seen.Load()
}
