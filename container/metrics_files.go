package container

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// filesMaxAge bounds how often a container's open files are counted: that
// walks /proc/<pid>/fd of every process, which is the costly part of the
// metrics (a process may hold thousands of descriptors), so callers within
// one sampling period share a count.
const filesMaxAge = defaultStatsInterval

// FileUsage is what cAdvisor's process metrics count in /proc.
type FileUsage struct {
	Timestamp time.Time
	FDs       uint64 // open file descriptors of all processes
	Sockets   uint64 // of which sockets
}

// openFiles returns the open file count of a container's processes,
// counting again when the cached count is older than filesMaxAge.
func (s *sampler) openFiles(id string, pids []int, now time.Time) FileUsage {
	s.mu.Lock()
	u, ok := s.files[id]
	s.mu.Unlock()
	if ok && now.Sub(u.Timestamp) < filesMaxAge && !now.Before(u.Timestamp) {
		return u
	}
	u = countOpenFiles("/proc", pids)
	u.Timestamp = now
	if _, ok := s.m.entryOf(id); ok { // not removed meanwhile
		s.mu.Lock()
		s.files[id] = u
		s.mu.Unlock()
	}
	return u
}

// countOpenFiles counts the descriptors of pids under procRoot. Processes
// that exit meanwhile, or whose fd directory cannot be read, are skipped.
func countOpenFiles(procRoot string, pids []int) FileUsage {
	var u FileUsage
	for _, pid := range pids {
		dir := procRoot + "/" + strconv.Itoa(pid) + "/fd"
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, n := range names {
			u.FDs++
			// readlink is the only way to tell a socket; it is a cheap
			// syscall next to the directory read.
			if t, err := os.Readlink(dir + "/" + n); err == nil && strings.HasPrefix(t, "socket:") {
				u.Sockets++
			}
		}
	}
	return u
}
