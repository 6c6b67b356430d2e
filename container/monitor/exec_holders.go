package monitor

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// streamID identifies an exec's stream as the processes holding its other
// end see it: a pipe by its inode, a terminal by its slave's device number.
type streamID struct {
	dev, ino, rdev uint64
}

// unix98 pty slaves: major 136, minor the pty index.
const ptySlaveMajor = 136

// identities of the streams the exec'd processes hold.
func (e *execIO) identities() []streamID {
	var ids []streamID
	if e.console != nil {
		withFD(e.console, func(fd int) {
			if n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN); err == nil {
				ids = append(ids, streamID{rdev: unix.Mkdev(ptySlaveMajor, n)})
			}
		})
		return ids
	}
	for _, f := range e.outR {
		withFD(f, func(fd int) {
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil {
				ids = append(ids, streamID{dev: st.Dev, ino: st.Ino})
			}
		})
	}
	return ids
}

// withFD runs fn on f's descriptor without f.Fd(), which would make it
// blocking: closing it could then no longer interrupt a read.
func withFD(f *os.File, fn func(fd int)) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
}

// holdsAny reports whether process pid has one of the streams open.
func holdsAny(pid int, ids []streamID) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, ent := range ents {
		var st unix.Stat_t
		if unix.Stat(dir+ent.Name(), &st) != nil {
			continue
		}
		for _, id := range ids {
			if id.rdev != 0 && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == id.rdev {
				return true
			}
			if id.rdev == 0 && st.Dev == id.dev && st.Ino == id.ino {
				return true
			}
		}
	}
	return false
}
