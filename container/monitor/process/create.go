package process

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/bootid"
	"github.com/crisp-runtime/crisp/internal/failpoint"

	// Registers the cgroup device-rule manager; without it libcontainer
	// fails with "cgroup manager is not configured to set device rules".
	_ "github.com/opencontainers/cgroups/devices"
	// nsenter's constructor runs before the Go runtime in `init` re-execs.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// create creates and starts the container (its init then blocks on the
// exec fifo until Start), and records it in status.json. On failure nothing
// is left behind: libcontainer state and cgroup are destroyed.
func (m *monitor) create(bundle string) (retErr error) {
	if err := proto.ReadJSON(filepath.Join(bundle, proto.ConfigFile), &m.cfg); err != nil {
		return err
	}
	if !m.cfg.Phases {
		m.marks = nil
	}
	m.mark("config")
	spec := new(specs.Spec)
	if err := proto.ReadJSON(m.cfg.Path(proto.SpecFile), spec); err != nil {
		return err
	}
	if err := m.setupProcess(); err != nil {
		return err
	}
	var err error
	m.logw, err = crilog.OpenBeneath(m.cfg.LogRoot, m.cfg.LogPath, func(err error) { m.logf("%v", err) })
	if err != nil {
		return err
	}
	unlock, err := proto.LockBundle(m.cfg.Bundle)
	if err != nil {
		return err
	}
	defer unlock()
	m.mark("spec+log+lock")

	lc, err := m.startContainer(spec)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			m.destroy(lc)
		}
	}()
	if err = m.oom.open(lc); err != nil {
		m.logf("OOM detection disabled: %v", err)
	}
	if err := m.listen(); err != nil {
		return err
	}
	self, err := proto.ReadProcStat(os.Getpid())
	if err != nil {
		return err
	}
	initStat, err := proto.ReadProcStat(m.initPid)
	if err != nil {
		return fmt.Errorf("container init: %w", err)
	}
	m.status = proto.StatusRecord{
		MonitorPid: os.Getpid(), MonitorStartTime: self.StartTime,
		InitPid: m.initPid, InitStartTime: initStat.StartTime, BootID: bootid.Current(),
		CreatedAt: time.Now().UTC(),
	}
	// "kill-parent": the daemon dies while it waits for this report.
	if err := failpoint.Hit("monitor/before-status"); err != nil {
		return err
	}
	m.mark("oom+listen")
	err = proto.ReplaceJSON(m.cfg.Path(proto.StatusFile), &m.status) // see record
	m.mark("status")
	return err
}

// startContainer runs libcontainer Create and Start with our stdio.
func (m *monitor) startContainer(spec *specs.Spec) (*libcontainer.Container, error) {
	if m.cfg.Tty {
		spec.Process.Terminal = true
	}
	lcfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       m.cfg.ID,
		UseSystemdCgroup: m.cfg.SystemdCgroup,
		Spec:             spec,
	})
	if err != nil {
		return nil, err
	}
	p, err := libct.NewProcess(spec.Process)
	if err != nil {
		return nil, err
	}
	p.Init = true
	// The container's ends of the stdio, closed here once it has them.
	var theirs []*os.File
	defer func() {
		for _, f := range theirs {
			f.Close()
		}
	}()
	var consoleParent *os.File
	if m.cfg.Tty {
		var child *os.File
		if consoleParent, child, err = libct.NewConsoleSocketPair(); err != nil {
			return nil, err
		}
		defer consoleParent.Close()
		theirs = append(theirs, child)
		p.ConsoleSocket = child
	} else {
		for _, st := range []crilog.StreamType{crilog.Stdout, crilog.Stderr} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			theirs = append(theirs, w)
			m.outputs = append(m.outputs, output{f: r, frame: streamFrame(st), log: m.logw.NewStream(st, 0)})
		}
		p.Stdout, p.Stderr = theirs[0], theirs[1]
		if m.cfg.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			theirs = append(theirs, r)
			m.stdin = w
			p.Stdin = r
		}
	}

	hugetlb := libct.TakeHybridHugetlb(lcfg.Cgroups.Resources)
	m.mark("libct-config")
	lc, err := libcontainer.Create(m.cfg.LibcontainerRoot(), m.cfg.ID, lcfg)
	if err != nil {
		return nil, err
	}
	m.mark("libct-create")
	// Nothing is forked before the daemon has moved us out of its cgroup
	// (children start in their parent's cgroup); it does that while we
	// start up (see monitor.Create).
	if err := awaitGoAhead(); err != nil {
		m.destroy(lc)
		return nil, err
	}
	m.mark("go-ahead")
	if m.cfg.Phases {
		stop := m.traceStart()
		err = lc.Start(p)
		stop()
	} else {
		err = lc.Start(p)
	}
	if err != nil {
		m.destroy(lc)
		return nil, err
	}
	m.mark("libct.return")
	if m.initPid, err = p.Pid(); err != nil {
		m.destroy(lc)
		return nil, err
	}
	// The init waits on the exec fifo: the limits are in place before the
	// container's program runs.
	if hugetlb != nil {
		if err := setHybridHugetlb(lc, hugetlb); err != nil {
			m.destroy(lc)
			return nil, err
		}
	}
	if consoleParent != nil {
		if m.console, err = libct.RecvConsole(consoleParent); err != nil {
			m.destroy(lc)
			return nil, err
		}
		m.stdin = m.console
		// The log records the terminal stream as stdout.
		m.outputs = append(m.outputs, output{f: m.console, frame: proto.FrameStdout, log: m.logw.NewStream(crilog.Stdout, 0)})
	}
	return lc, nil
}

// awaitGoAhead waits for the daemon's byte on proto.GoFd.
func awaitGoAhead() error {
	f := os.NewFile(proto.GoFd, "go-ahead")
	defer f.Close()
	var b [1]byte
	if n, err := f.Read(b[:]); n != 1 {
		return fmt.Errorf("the daemon gave no go-ahead (it did not move the monitor into its cgroup, or it is gone): %v", err)
	}
	return nil
}

func setHybridHugetlb(lc *libcontainer.Container, limits []*cgroups.HugepageLimit) error {
	st, err := lc.State()
	if err != nil {
		return err
	}
	return libct.SetHybridHugetlb(st.CgroupPaths[""], limits)
}

// destroy undoes a failed create: kill the init (if any), remove the cgroup
// and the libcontainer state.
func (m *monitor) destroy(lc *libcontainer.Container) {
	if m.initPid > 0 {
		unix.Kill(m.initPid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(m.initPid, &ws, 0, nil)
	}
	if err := lc.Destroy(); err != nil {
		m.logf("destroy after failed create: %v", err)
	}
	os.RemoveAll(m.cfg.LibcontainerRoot())
	if m.ln != nil {
		m.ln.Close()
		os.Remove(m.cfg.SocketPath())
	}
}
