// Package monitor runs containers under a small per-container monitor
// process (cmd/crisp-monitor), in the manner of conmon: the monitor starts
// the container through libcontainer, holds its stdio, writes the CRI log,
// serves attach clients and records the exit status. The crisp daemon can
// therefore restart (or be SIGKILLed) without losing running containers,
// their logs or their exit codes.
//
// The daemon side is Create/Load and the methods of Container; the monitor
// side is Main.
package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/internal/helpercgroup"
)

// Files in Config.Bundle (persistent, survives reboots of the daemon).
const (
	specFile       = "spec.json"    // the OCI spec, written by Create
	configFile     = "monitor.json" // persistedConfig, written by Create
	statusFile     = "status.json"  // statusRecord, written by the monitor
	exitFile       = "exit.json"    // exitRecord, written by the monitor at exit
	monitorLogFile = "monitor.log"  // the monitor's own stderr
	lockFile       = "lock"         // flock serializing libcontainer operations
)

// Entries in Config.StateDir (volatile, under /run).
const (
	attachSocketName = "attach.sock"
	libcontainerDir  = "libcontainer" // libcontainer state root
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
	// LogPath is the CRI log file; "" discards the output.
	LogPath string
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

// persistedConfig is what the monitor needs besides the spec, and what Load
// needs to rebuild a Container.
type persistedConfig struct {
	ID        string `json:"id"`
	Bundle    string `json:"bundle"`
	StateDir  string `json:"state_dir"`
	LogPath   string `json:"log_path,omitempty"`
	Stdin     bool   `json:"stdin,omitempty"`
	StdinOnce bool   `json:"stdin_once,omitempty"`
	Tty       bool   `json:"tty,omitempty"`
	// Systemd and MonitorCgroup: see Config.
	SystemdCgroup bool              `json:"systemd_cgroup,omitempty"`
	MonitorCgroup helpercgroup.Leaf `json:"monitor_cgroup,omitzero"`
}

func (c *persistedConfig) path(name string) string { return filepath.Join(c.Bundle, name) }

func (c *persistedConfig) socketPath() string {
	return filepath.Join(c.StateDir, attachSocketName)
}

func (c *persistedConfig) libcontainerRoot() string {
	return filepath.Join(c.StateDir, libcontainerDir)
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
	if p := filepath.Join(c.StateDir, attachSocketName); len(p) > maxSocketPath {
		return fmt.Errorf("attach socket path %q is longer than %d bytes: use a shorter state dir", p, maxSocketPath)
	}
	return nil
}

func (c Config) persisted() persistedConfig {
	return persistedConfig{
		ID: c.ID, Bundle: c.Bundle, StateDir: c.StateDir, LogPath: c.LogPath,
		Stdin: c.Stdin, StdinOnce: c.StdinOnce, Tty: c.Tty,
		SystemdCgroup: c.SystemdCgroup, MonitorCgroup: c.MonitorCgroup,
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// writeJSONAtomic replaces path with v so that a reader (or a crash at any
// point) sees either the old or the new complete file: write a temporary
// file, fsync it, rename it over path, fsync the directory.
func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
