// Package process is the code that runs inside crisp-monitor, the
// per-container monitor process: it creates and starts one container
// through libcontainer, holds its stdio, writes its CRI log, serves attach
// clients and control commands on the attach socket, and records the exit
// status, so that the container does not depend on the crisp daemon staying
// up. The daemon's side (starting a monitor, and its handle on the
// container) is package monitor; what the two agree on is package
// monitor/internal/proto.
package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/cinit"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/container/monitor/internal/thp"
)

// serveArg is the first argument of the monitor's second image, see reexec.
const serveArg = "serve"

// monitor is the state of the monitor process.
type monitor struct {
	cfg     proto.Config
	status  proto.StatusRecord
	initPid int
	oom     oomCounter

	logw    *crilog.Writer
	outputs []output // container stdout/stderr (or the pty master)
	stdin   *os.File // write end of the container's stdin, or the pty master
	console *os.File // pty master in TTY mode
	ln      *net.UnixListener
	hub     *hub
	sigchld chan os.Signal

	// marks are the ends of the create's steps, reported to the daemon
	// when cfg.Phases asks (see mark).
	marks []proto.Mark

	startMu    sync.Mutex
	initExited chan struct{} // closed once the init has been reaped

	// controlMu is read-held by each control command being served (for
	// an exec: while it starts) and write-held by the exit path.
	controlMu sync.RWMutex

	// reapMu is write-held while the reaper collects children and
	// read-held while libcontainer starts an exec'd process: it waits
	// for its helper processes by pid itself.
	reapMu sync.RWMutex
	execs  execs

	lcMu sync.Mutex
	lc   *libcontainer.Container // loaded for the first exec, see libcontainer()
	// cinit is the container as the C init of execs needs it, prepared
	// for the first exec (cinitDone); nil if it cannot run them.
	cinit     *cinit.Target
	cinitDone bool
}

// InitIfRequested runs libcontainer's container init when the program was
// re-executed for it (args "init"): libcontainer creates a container by
// re-executing the calling binary. main must call it first thing. It does
// not return in that case.
func InitIfRequested() {
	cinit.DumpIfRequested()
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// The monitor's THP opt-out is inherited; the container's
		// program gets the system's policy.
		thp.Allow()
		libcontainer.Init()
	}
}

// Main is the entry point of crisp-monitor. args are the arguments after
// the program name: the bundle directory.
func Main(args []string) int {
	// The monitor is paid for per running container: one P and a tight GC
	// keep its private memory small.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(20)
	// crisp-monitor has done this before its runtime started; the crisp
	// binary serving as monitor does it here, before the re-exec below
	// starts the serving image.
	thp.Disable()
	if len(args) == 3 && args[0] == serveArg {
		m, err := restore(args[1], args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s monitor: %v\n", time.Now().Format(time.RFC3339Nano), err)
			return 1
		}
		return m.run()
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: crisp-monitor BUNDLE")
		return 2
	}
	// Never pass the sync pipe on to the container.
	unix.CloseOnExec(proto.SyncFd)
	unix.CloseOnExec(proto.GoFd)
	syncPipe := os.NewFile(proto.SyncFd, "sync")

	m := &monitor{}
	m.mark("exec") // since the daemon's fork: execve and the Go runtime's start
	if err := m.create(args[0]); err != nil {
		m.logf("create: %v", err)
		report(syncPipe, err, nil)
		return 1
	}
	report(syncPipe, nil, m.marks)
	err := m.reexec()
	// Only reached if the exec failed: serve from this image instead.
	m.logf("re-exec failed, serving from the create image: %v", err)
	return m.run()
}

func report(f *os.File, err error, marks []proto.Mark) {
	r := proto.SyncResult{Marks: marks}
	if err != nil {
		r.Error = err.Error()
	}
	b, _ := json.Marshal(r)
	f.Write(b)
	f.Close()
}

// mark records that the step name of the create ended now. Marks are
// kept until the config is read, and reported only if it asks for them.
func (m *monitor) mark(name string) {
	if m.cfg.ID != "" && !m.cfg.Phases {
		return
	}
	m.marks = append(m.marks, proto.Mark{Name: name, At: time.Now().UnixNano()})
}

func (m *monitor) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().Format(time.RFC3339Nano), m.cfg.ID, fmt.Sprintf(format, args...))
}

// setupProcess makes the monitor a subreaper that survives the daemon.
// Called in both images: it is cheap, and it does not depend on what
// execve preserves.
func (m *monitor) setupProcess() error {
	// The container init (whose intermediate parent exits) and, with a
	// shared pid namespace, its orphans are re-parented to us; we reap
	// them all so no zombie is left.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set child subreaper: %w", err)
	}
	// Survive the daemon: it may die and close our session/terminal, or
	// close the attach connection abruptly.
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGTTIN, unix.SIGTTOU)
	// Subscribe before the container can exit so its exit is not missed;
	// waitInit also reaps once without waiting for a signal.
	m.sigchld = make(chan os.Signal, 1)
	signal.Notify(m.sigchld, unix.SIGCHLD)
	m.initExited = make(chan struct{})
	return nil
}

// handoff is what the create image passes to the serve image.
type handoff struct {
	Outputs  []int  `json:"outputs"` // fds, stdout first
	Stdin    int    `json:"stdin"`   // -1 if none
	Console  bool   `json:"console"` // Stdin is also Outputs[0]: the pty master
	Listener int    `json:"listener"`
	OOMFile  string `json:"oom_file,omitempty"`
	OOMStart uint64 `json:"oom_start,omitempty"`
	// The parent's counter (oomCounter.parentFile), when there is one.
	OOMParentFile  string `json:"oom_parent_file,omitempty"`
	OOMParentStart uint64 `json:"oom_parent_start,omitempty"`
}

// reexec replaces the monitor's image with a fresh one of the same binary
// that only serves the container. The pid, children, subreaper status and
// the fds handed over stay; what creating the container cost (libcontainer
// and JSON caches, grown stacks, about 1 MiB) is gone. It returns only on
// failure.
func (m *monitor) reexec() error {
	h := handoff{Stdin: -1, Console: m.console != nil, OOMFile: m.oom.file, OOMStart: m.oom.start,
		OOMParentFile: m.oom.parentFile, OOMParentStart: m.oom.parentStart.Load()}
	var files []*os.File
	for _, o := range m.outputs {
		files = append(files, o.f)
	}
	if m.stdin != nil && m.console == nil {
		files = append(files, m.stdin)
	}
	lf, err := m.ln.File() // a dup, without close-on-exec handling by net
	if err != nil {
		return err
	}
	files = append(files, lf)
	for _, f := range files {
		if _, _, e := unix.Syscall(unix.SYS_FCNTL, f.Fd(), unix.F_SETFD, 0); e != 0 {
			return e
		}
	}
	for _, o := range m.outputs {
		h.Outputs = append(h.Outputs, int(o.f.Fd()))
	}
	if m.console != nil {
		h.Stdin = int(m.console.Fd())
	} else if m.stdin != nil {
		h.Stdin = int(m.stdin.Fd())
	}
	h.Listener = int(lf.Fd())
	b, err := json.Marshal(&h)
	if err != nil {
		return err
	}
	err = syscall.Exec("/proc/self/exe", []string{os.Args[0], serveArg, m.cfg.Bundle, string(b)}, os.Environ())
	for _, f := range files {
		unix.CloseOnExec(int(f.Fd()))
	}
	lf.Close()
	return err
}

// restore rebuilds the monitor in the serve image from the bundle's files
// and the handed-over fds.
func restore(bundle, handoffArg string) (*monitor, error) {
	m := &monitor{}
	var h handoff
	if err := json.Unmarshal([]byte(handoffArg), &h); err != nil {
		return nil, fmt.Errorf("bad handoff: %w", err)
	}
	for _, fd := range append(h.Outputs, h.Stdin, h.Listener) {
		if fd >= 0 {
			// Whatever happens next, these fds must not reach anything
			// we start.
			unix.CloseOnExec(fd)
			// os.File.Fd made them blocking before the exec; non-blocking
			// fds go through the runtime poller, so waiting on them costs
			// no thread and read deadlines work.
			unix.SetNonblock(fd, true)
		}
	}
	if err := proto.ReadJSON(filepath.Join(bundle, proto.ConfigFile), &m.cfg); err != nil {
		return nil, err
	}
	if err := proto.ReadJSON(m.cfg.Path(proto.StatusFile), &m.status); err != nil {
		return nil, err
	}
	m.initPid = m.status.InitPid
	m.oom = oomCounter{file: h.OOMFile, start: h.OOMStart, parentFile: h.OOMParentFile}
	m.oom.parentStart.Store(h.OOMParentStart)
	if err := m.setupProcess(); err != nil {
		return nil, err
	}
	var err error
	// Reopening by path is safe: the container has not run yet, so
	// nothing was logged and the kubelet cannot have rotated the file.
	if m.logw, err = crilog.OpenBeneath(m.cfg.LogRoot, m.cfg.LogPath, func(err error) { m.logf("%v", err) }); err != nil {
		return nil, err
	}
	streams := []crilog.StreamType{crilog.Stdout, crilog.Stderr}
	for i, fd := range h.Outputs {
		f := os.NewFile(uintptr(fd), "output"+strconv.Itoa(i))
		m.outputs = append(m.outputs, output{f: f, frame: streamFrame(streams[i]), log: m.logw.NewStream(streams[i], 0)})
	}
	if h.Console && len(m.outputs) > 0 {
		m.console = m.outputs[0].f
		m.stdin = m.console
	} else if h.Stdin >= 0 {
		m.stdin = os.NewFile(uintptr(h.Stdin), "stdin")
	}
	lf := os.NewFile(uintptr(h.Listener), "listener")
	l, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return nil, err
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return nil, errors.New("handed-over listener is not a unix socket")
	}
	ul.SetUnlinkOnClose(false)
	m.ln = ul
	m.hub = newHub()
	return m, nil
}

// start lets the container init exec the user process and records
// started_at. The init is blocked opening the exec fifo for writing; like
// libcontainer's Exec we open it for reading, read the byte it writes and
// remove the fifo (its absence is how libcontainer tells "running" from
// "created").
func (m *monitor) start() (time.Time, error) {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	if !m.status.StartedAt.IsZero() {
		return time.Time{}, fmt.Errorf("container %s was already started", m.cfg.ID)
	}
	unlock, err := proto.LockBundle(m.cfg.Bundle)
	if err != nil {
		return time.Time{}, err
	}
	defer unlock()
	fifo := filepath.Join(m.cfg.LibcontainerRoot(), m.cfg.ID, "exec.fifo")
	// Taken before the init is released: a process that exits at once
	// must not be reported as finished before it started.
	startedAt := time.Now().UTC()
	if err := m.openExecFifo(fifo); err != nil {
		return time.Time{}, err
	}
	m.status.StartedAt = startedAt
	m.recordStarted()
	return m.status.StartedAt, nil
}

var errInitDead = errors.New("container process is already dead")

func (m *monitor) openExecFifo(path string) error {
	type result struct {
		f   *os.File
		err error
	}
	opened := make(chan result, 1)
	go func() {
		// Blocks until the init opens its end; a thread is parked
		// meanwhile, only for this moment.
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		opened <- result{f, err}
	}()
	var r result
	select {
	case r = <-opened:
	case <-m.initExited:
		// Either the init died before opening its end, or it wrote its
		// byte and the user process has already exited (a quick "exit
		// 0"): both wake this case, and the byte in the fifo tells them
		// apart. A writer of our own (O_RDWR never blocks on a fifo)
		// lets the opener in whether or not it has called open yet.
		w, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return errInitDead
		}
		r = <-opened
		w.Close()
	}
	if r.err != nil {
		return fmt.Errorf("exec fifo: %w", r.err)
	}
	data, err := io.ReadAll(r.f)
	r.f.Close()
	if err != nil {
		return fmt.Errorf("exec fifo: %w", err)
	}
	if len(data) == 0 {
		return errInitDead
	}
	return os.Remove(path)
}
