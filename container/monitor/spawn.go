package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/phase"
)

func bundlePath(bundle, name string) string { return filepath.Join(bundle, name) }

// bundleFiles are the files Create puts into the bundle, removed again by
// a failed Create and by Destroy.
var bundleFiles = []string{proto.StatusFile, proto.ExitFile, proto.ConfigFile, proto.SpecFile, proto.MonitorLogFile}

// Create spawns the container's monitor, which creates the container
// (its init waits for Start). It returns once the monitor reported success
// or failure; on failure the monitor's error text is returned and nothing
// is left behind.
func Create(ctx context.Context, cfg Config) (_ *Container, retErr error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pc := cfg.persisted()
	pt := phase.From(ctx)
	pc.Phases = pt != nil
	for _, d := range []string{cfg.Bundle, cfg.StateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{proto.StatusFile, proto.ExitFile} {
		os.Remove(pc.Path(name)) // leftovers of an earlier attempt
		os.Remove(pc.VolatilePath(name))
	}
	// Made durable while the monitor creates the container (see synced
	// below): the monitor only needs them in the page cache.
	if err := proto.ReplaceJSON(pc.Path(proto.SpecFile), cfg.Spec); err != nil {
		return nil, err
	}
	if err := proto.ReplaceJSON(pc.Path(proto.ConfigFile), &pc); err != nil {
		return nil, err
	}
	pt.Mark("bundle")
	defer func() {
		if retErr != nil {
			removeState(&pc)
		}
	}()

	mlog, err := os.OpenFile(pc.Path(proto.MonitorLogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer mlog.Close()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer syncR.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		syncW.Close()
		return nil, err
	}
	defer goW.Close()

	cmd := &exec.Cmd{
		Path: cfg.MonitorBinary,
		Args: []string{cfg.MonitorBinary, cfg.Bundle},
		// A fixed, minimal environment: the daemon's must not leak into
		// the monitor (and from there into hooks).
		Env:    append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}, failpoint.Env()...),
		Dir:    "/", // do not pin the daemon's cwd mount
		Stderr: mlog,
		// Only fds 0-2 (/dev/null, /dev/null, log), the sync pipe (fd 3,
		// proto.SyncFd) and the go-ahead pipe (fd 4, proto.GoFd) are
		// inherited: everything Go opens is close-on-exec.
		ExtraFiles: []*os.File{syncW, goR},
		// Own session: no terminal signals, not killed with the daemon's
		// process group. No Pdeathsig: it must outlive the daemon.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	syncW.Close()
	goR.Close()
	if err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	pt.Mark("fork")
	// fsync costs milliseconds and the monitor's create tens of them, on
	// another process: overlapped, the bundle is durable by the time the
	// container is, as when the files were synced before the spawn.
	synced := make(chan error, 1)
	go func() { synced <- proto.SyncFiles(pc.Bundle, proto.SpecFile, proto.ConfigFile) }()
	pid := cmd.Process.Pid
	// Our own pidfd: the monitor is our child and unreaped, so its pid
	// cannot have been reused yet. We reap it ourselves in watch.
	pfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("pidfd_open monitor: %w", err)
	}
	pidfd := os.NewFile(uintptr(pfd), "pidfd")
	cmd.Process.Release()
	// We move the monitor out of our cgroup while it starts up, rather
	// than it itself once started: on cgroup v1 the move waits for an RCU
	// grace period (several ms), which this overlaps with the monitor's
	// exec and set-up; the init's move into the container's cgroup then
	// follows within about one grace period and does not wait again.
	if !pc.MonitorCgroup.IsZero() {
		if err := pc.MonitorCgroup.Join(pid); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			reapChild(pid)
			pidfd.Close()
			return nil, err
		}
		pt.Mark("cgroup-join")
	}
	goW.Write([]byte{1}) // a dead monitor is found out by readSync
	goW.Close()

	res, err := readSync(ctx, syncR)
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	if res != nil {
		for _, mk := range res.Marks {
			pt.MarkAt("monitor."+mk.Name, time.Unix(0, mk.At))
		}
		pt.Mark("monitor.report")
	}
	if err != nil {
		// The monitor cleans up after a failure it reports; if it did not
		// report (crash, ctx), kill it and clean up its libcontainer state.
		if res == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
		reapChild(pid)
		pidfd.Close()
		if res == nil {
			cleanupLibcontainer(&pc)
			if tail := tailFile(pc.Path(proto.MonitorLogFile), 2048); tail != "" {
				err = fmt.Errorf("%w: monitor log: %s", err, tail)
			}
		}
		return nil, err
	}

	// The monitor created the container: undone by killing it and
	// cleaning up after it.
	abandon := func(err error) (*Container, error) {
		unix.Kill(pid, unix.SIGKILL)
		reapChild(pid)
		pidfd.Close()
		cleanupLibcontainer(&pc)
		return nil, err
	}
	c := &Container{cfg: pc, done: make(chan struct{})}
	if err := proto.ReadJSON(pc.Path(proto.StatusFile), &c.rec); err != nil {
		return abandon(err)
	}
	c.status = statusOf(&c.rec)
	pt.Mark("status")
	if err := <-synced; err != nil {
		return abandon(err)
	}
	pt.Mark("bundle-sync-wait")
	c.watching.Store(true)
	go c.watch(pidfd)
	return c, nil
}

// readSync waits for the monitor's report. A nil result means it did not
// report: it died or ctx ended.
func readSync(ctx context.Context, r *os.File) (*proto.SyncResult, error) {
	if dl, ok := ctx.Deadline(); ok {
		r.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(r)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			err = context.DeadlineExceeded // the deadline fired first
		}
		return nil, fmt.Errorf("waiting for container monitor: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("container monitor exited without reporting")
	}
	var res proto.SyncResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("bad report from container monitor: %w", err)
	}
	return &res, nil
}

// reapChild waits for our child pid to exit.
func reapChild(pid int) {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			return
		}
	}
}

// removeState removes what Create made: the volatile state dir, our files
// in the bundle and the bundle itself if that leaves it empty.
func removeState(pc *proto.Config) {
	if !pc.MonitorCgroup.IsZero() {
		pc.MonitorCgroup.Remove() // Destroy reports its error
	}
	os.RemoveAll(pc.StateDir)
	for _, name := range bundleFiles {
		os.Remove(pc.Path(name))
	}
	os.Remove(pc.Path(proto.LockFile))
	// Temporary files of an atomic write cut short by a killed monitor.
	tmps, _ := filepath.Glob(filepath.Join(pc.Bundle, ".*.tmp*"))
	for _, f := range tmps {
		os.Remove(f)
	}
	os.Remove(pc.Bundle) // fails, as intended, if the caller keeps files there
}

func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))
}
