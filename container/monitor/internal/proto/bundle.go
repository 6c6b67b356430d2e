// Package proto is what the crisp daemon (package monitor) and the
// crisp-monitor process (package monitor/process) agree on: the files in a
// container's bundle and state dir and their records, the sync pipe that
// reports the outcome of a create, the framed protocol of the attach
// socket, and the bundle lock that serializes libcontainer operations
// between the two processes. Either side changing any of it must keep a
// monitor started by the previous daemon working.
package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/crisp-runtime/crisp/internal/helpercgroup"
)

// Files in Config.Bundle (persistent, survives reboots of the daemon).
const (
	SpecFile       = "spec.json"    // the OCI spec, written by the daemon
	ConfigFile     = "monitor.json" // Config, written by the daemon
	StatusFile     = "status.json"  // StatusRecord, written by the monitor
	ExitFile       = "exit.json"    // ExitRecord, written by the monitor at exit
	MonitorLogFile = "monitor.log"  // the monitor's own stderr
	LockFile       = "lock"         // flock serializing libcontainer operations
)

// Entries in Config.StateDir (volatile, under /run).
const (
	AttachSocketName = "attach.sock"
	LibcontainerDir  = "libcontainer" // libcontainer state root
)

// Config is what the monitor needs besides the spec, and what the daemon
// needs to rebuild its handle on a container after a restart.
type Config struct {
	ID        string `json:"id"`
	Bundle    string `json:"bundle"`
	StateDir  string `json:"state_dir"`
	LogPath   string `json:"log_path,omitempty"`
	LogRoot   string `json:"log_root,omitempty"`
	Stdin     bool   `json:"stdin,omitempty"`
	StdinOnce bool   `json:"stdin_once,omitempty"`
	Tty       bool   `json:"tty,omitempty"`
	// SystemdCgroup: the spec's CgroupsPath is systemd's slice:prefix:name
	// and libcontainer manages the container's scope over D-Bus.
	SystemdCgroup bool `json:"systemd_cgroup,omitempty"`
	// MonitorCgroup is the leaf the monitor moves itself into before it
	// creates the container, out of the daemon's cgroup; zero for records
	// written before it existed.
	MonitorCgroup helpercgroup.Leaf `json:"monitor_cgroup,omitzero"`
	// Phases asks the monitor to report when each step of the create
	// ended (SyncResult.Marks), for the daemon's -v=4 phase log.
	Phases bool `json:"phases,omitempty"`
}

// Path returns the path of the bundle file name.
func (c *Config) Path(name string) string { return filepath.Join(c.Bundle, name) }

// VolatilePath returns the path of name in the state dir, where the
// monitor records status.json and exit.json when the bundle's filesystem
// refuses them (full): the state dir is on another filesystem (/run) and
// lasts as long as the processes the records describe.
func (c *Config) VolatilePath(name string) string { return filepath.Join(c.StateDir, name) }

// SocketPath returns the path of the monitor's attach socket.
func (c *Config) SocketPath() string {
	return filepath.Join(c.StateDir, AttachSocketName)
}

// LibcontainerRoot returns libcontainer's state root for the container.
func (c *Config) LibcontainerRoot() string {
	return filepath.Join(c.StateDir, LibcontainerDir)
}

// ReadRecord reads the record name from the bundle, or from the state dir
// (see VolatilePath) if it is there: that copy was written because the
// bundle's was refused, so it is the newer one.
func ReadRecord(c *Config, name string, v any) error {
	verr := ReadJSON(c.VolatilePath(name), v)
	if verr == nil {
		return nil
	}
	err := ReadJSON(c.Path(name), v)
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(verr, fs.ErrNotExist) {
		return verr
	}
	return err
}

// ReadJSON reads the JSON file path into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// WriteJSONAtomic replaces path with v so that a reader (or a crash at any
// point) sees either the old or the new complete file: write a temporary
// file, fsync it, rename it over path, fsync the directory.
func WriteJSONAtomic(path string, v any) error { return writeJSON(path, v, true) }

// ReplaceJSON is WriteJSONAtomic without the fsyncs, for files that either
// are made durable later (SyncFiles) or describe only processes of this
// boot: a reader and a crashed daemon or monitor still see the old or the
// new complete file (the page cache outlives them); only a crash of the
// node may lose the file or cut it short, and then its processes are gone
// too.
func ReplaceJSON(path string, v any) error { return writeJSON(path, v, false) }

func writeJSON(path string, v any, durable bool) error {
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
	if err == nil && durable {
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
	if durable {
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

// SyncFiles makes files of dir written by ReplaceJSON durable, and their
// names in dir.
func SyncFiles(dir string, names ...string) error {
	for _, name := range append(names, ".") {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	}
	return nil
}
