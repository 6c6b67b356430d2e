// Package monitor is the crisp daemon's side of running containers under a
// small per-container monitor process (cmd/crisp-monitor), in the manner of
// conmon: Create spawns the monitor, which starts the container through
// libcontainer, holds its stdio, writes the CRI log, serves attach clients
// and records the exit status. The crisp daemon can therefore restart (or
// be SIGKILLed) without losing running containers, their logs or their exit
// codes: Load rebuilds the handle, Container.
//
// Everything in this package runs in the daemon. The code that runs inside
// crisp-monitor is package monitor/process; what the two sides agree on (the
// bundle's files, the attach socket's protocol, the lock) is
// monitor/internal/proto.
package monitor

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/helpercgroup"
)

// maxSocketPath is sizeof(sockaddr_un.sun_path) minus the terminating NUL.
const maxSocketPath = 107

// Config describes a container to Create.
type Config struct {
	ID string // container id (also the libcontainer id)
	// Bundle is a persistent per-container directory: spec, status files,
	// the monitor's log and the lock file live here.
	Bundle string
	// StateDir is a volatile per-container directory (under /run): the
	// libcontainer state root and the attach socket. Keep it short: the
	// socket path must fit in 107 bytes.
	StateDir string
	// Spec is the complete OCI spec; the rootfs must already be at
	// Spec.Root.Path.
	Spec *specs.Spec
	// LogPath is the CRI log file; "" discards the output. LogRoot, the
	// pod's log directory, is a bound it may not leave, through symlinks
	// a container planted either ("" for none).
	LogPath, LogRoot string
	// Stdin keeps a stdin pipe open for attach; StdinOnce closes it when
	// the first attached client detaches. Tty allocates a pty.
	Stdin, StdinOnce, Tty bool
	// MonitorBinary is the path to crisp-monitor.
	MonitorBinary string
	// SystemdCgroup: Spec.Linux.CgroupsPath is systemd's slice:prefix:name
	// and libcontainer creates the container's scope over D-Bus.
	SystemdCgroup bool
	// MonitorCgroup is where the monitor moves itself before it creates
	// the container: out of the daemon's cgroup, so that it survives a
	// restart of the daemon's unit. Zero leaves it in the daemon's.
	MonitorCgroup helpercgroup.Leaf
}

func (c Config) validate() error {
	switch {
	case c.ID == "":
		return errors.New("container id is empty")
	case !filepath.IsAbs(c.Bundle) || !filepath.IsAbs(c.StateDir):
		return errors.New("bundle and state dir must be absolute paths")
	case c.Spec == nil || c.Spec.Process == nil || c.Spec.Root == nil || c.Spec.Linux == nil:
		return errors.New("spec must have process, root and linux sections")
	case c.MonitorBinary == "":
		return errors.New("monitor binary not set")
	}
	if p := filepath.Join(c.StateDir, proto.AttachSocketName); len(p) > maxSocketPath {
		return fmt.Errorf("attach socket path %q is longer than %d bytes: use a shorter state dir", p, maxSocketPath)
	}
	return nil
}

// persisted is what the monitor needs besides the spec, and what Load needs
// to rebuild a Container.
func (c Config) persisted() proto.Config {
	return proto.Config{
		ID: c.ID, Bundle: c.Bundle, StateDir: c.StateDir, LogPath: c.LogPath, LogRoot: c.LogRoot,
		Stdin: c.Stdin, StdinOnce: c.StdinOnce, Tty: c.Tty,
		SystemdCgroup: c.SystemdCgroup, MonitorCgroup: c.MonitorCgroup,
	}
}
